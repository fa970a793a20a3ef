// The editor's canvas drawing: the background, the skeleton and the joint handles of a PoseModel.
//
// The skeleton is drawn as stablepose_core.poses.skeleton.render_pose draws it (limbs in order, each a line of
// the spec's line_width in its limb colour with round ends; joints present only if drawn), so the preview is
// the picture the node renders; joint handles and hidden joints are drawn on top of it.

import { isAbsent, isVisible } from "./pose_model.js";

const HANDLE_RADIUS_PX = 4; // screen radius of a joint handle

const rgb = ([r, g, b]) => `rgb(${r}, ${g}, ${b})`;

/** Colour of each joint in the render: that of the last limb drawn through it (limbs overwrite in order). */
function jointColors(spec) {
  const colors = spec.names.map(() => null);
  spec.limbs.forEach(([a, b], i) => {
    colors[a] = spec.limb_colors[i];
    colors[b] = spec.limb_colors[i];
  });
  return colors;
}

/** Draw a background image letterboxed (scaled uniformly, centred) into the canvas, like fit_to_canvas. */
function drawBackground(ctx, image, width, height, alpha) {
  const scale = Math.min(width / image.naturalWidth, height / image.naturalHeight);
  const [w, h] = [image.naturalWidth * scale, image.naturalHeight * scale];
  ctx.globalAlpha = alpha;
  ctx.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
  ctx.globalAlpha = 1;
}

/** The person's limbs as render_pose draws them. */
function drawSkeleton(ctx, person, pose, spec) {
  const shown = person.map((joint) => isVisible(joint, pose, spec));
  ctx.lineWidth = spec.line_width;
  ctx.lineCap = "round";
  spec.limbs.forEach(([a, b], i) => {
    if (!shown[a] || !shown[b]) return;
    ctx.strokeStyle = rgb(spec.limb_colors[i]);
    ctx.beginPath();
    ctx.moveTo(Math.trunc(person[a][0]) + 0.5, Math.trunc(person[a][1]) + 0.5);
    ctx.lineTo(Math.trunc(person[b][0]) + 0.5, Math.trunc(person[b][1]) + 0.5);
    ctx.stroke();
  });
}

/** A filled handle in the joint's render colour for a drawn joint, a dashed ring for a hidden one. */
function drawHandle(ctx, [x, y], visible, color, ratio) {
  ctx.beginPath();
  ctx.arc(x, y, HANDLE_RADIUS_PX * ratio, 0, 2 * Math.PI);
  if (visible) {
    ctx.fillStyle = color ? rgb(color) : "#888";
    ctx.fill();
    ctx.lineWidth = ratio;
    ctx.strokeStyle = "#000";
    ctx.stroke();
  } else {
    ctx.setLineDash([3 * ratio, 3 * ratio]);
    ctx.lineWidth = 1.5 * ratio;
    ctx.strokeStyle = "#aaa";
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

/** The white ring around the selected joint. */
function drawSelection(ctx, [x, y], ratio) {
  ctx.lineWidth = 2 * ratio;
  ctx.strokeStyle = "#fff";
  ctx.beginPath();
  ctx.arc(x, y, (HANDLE_RADIUS_PX + 3) * ratio, 0, 2 * Math.PI);
  ctx.stroke();
}

/** Draws a PoseModel onto the editor's canvas over an optional background image. */
export class PoseRenderer {
  /**
   * @param {HTMLCanvasElement} canvas the editor's canvas, sized to the pose's canvas
   * @param {object} spec skeleton spec (limbs, limb_colors, line_width, max_people, ...)
   * @param {HTMLImageElement|null} background loaded background image
   */
  constructor(canvas, spec, background) {
    this.canvas = canvas;
    this.spec = spec;
    this.background = background;
    this.colors = jointColors(spec);
  }

  /**
   * Draw the background at opacity, the first max_people people's skeletons, then every joint's grab handle
   * (ratio: canvas pixels per screen pixel, so handles keep their size on screen) and the selection.
   */
  draw(model, opacity, ratio) {
    const { canvas, spec, background } = this;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (background) drawBackground(ctx, background, canvas.width, canvas.height, opacity);
    const { pose, selection } = model;
    pose.people.slice(0, spec.max_people).forEach((person) => drawSkeleton(ctx, person, pose, spec));
    pose.people.forEach((person, p) => {
      person.forEach((joint, j) => {
        if (isAbsent(joint)) return;
        drawHandle(ctx, joint, isVisible(joint, pose, spec), this.colors[j], ratio);
        if (selection?.person === p && selection?.joint === j) drawSelection(ctx, joint, ratio);
      });
    });
  }
}
