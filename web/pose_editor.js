// The editor dialog: a full-window overlay with a canvas that shows the skeleton over the background, a
// toolbar, the joint list of the selected person and a timeline (frames, keys, play). All editing goes
// through PoseModel (the frame shown) and Timeline (the keys); this file only draws and routes input. Plain
// DOM: no ComfyUI UI modules, nothing fetched but the background it is given and the in-betweens its
// interpolate callback asks the pack's server for.
//
// The skeleton is drawn as stablepose_core.poses.skeleton.render_pose draws it (limbs in order, each a line of the
// spec's line_width in its limb colour with round ends; joints present only if drawn), so the preview is
// the picture the node renders; joint handles and hidden joints are drawn on top of it.

import { clonePose, isAbsent, isVisible, PoseModel } from "./pose_model.js";
import { CURVES } from "./pose_timeline.js";

const HIT_RADIUS_PX = 12; // screen pixels around a joint that grab it
const HANDLE_RADIUS_PX = 4; // screen radius of a joint handle
const STYLE_ID = "stable-pose-editor-style";
const PLAY_FPS = 12; // frames per second of the preview playback

const STYLE = `
.sp-editor-overlay { position: fixed; inset: 0; z-index: 100000; background: rgba(0,0,0,0.75);
  display: flex; align-items: center; justify-content: center; font: 13px sans-serif; color: #ddd; }
.sp-editor-panel { background: #222; border: 1px solid #555; border-radius: 6px; padding: 10px;
  display: flex; flex-direction: column; gap: 8px; max-width: 98vw; max-height: 98vh; }
.sp-editor-toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.sp-editor-panel button { background: #333; color: #eee; border: 1px solid #666; border-radius: 4px;
  padding: 4px 8px; cursor: pointer; font: inherit; }
.sp-editor-panel button:disabled { opacity: 0.4; cursor: default; }
.sp-editor-panel button.sp-primary { background: #2d6a9f; border-color: #4a90d9; }
.sp-editor-spacer { flex: 1; }
.sp-editor-body { display: flex; gap: 8px; min-height: 0; }
.sp-editor-canvas { display: block; background: #000; touch-action: none; cursor: crosshair; }
.sp-editor-joints { width: 150px; overflow-y: auto; font-size: 12px; }
.sp-editor-joints label { display: block; white-space: nowrap; cursor: pointer; padding: 1px 2px; }
.sp-editor-joints label.sp-selected { background: #444; }
.sp-editor-status { min-height: 1.2em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sp-editor-timeline { display: flex; gap: 6px; align-items: center; }
.sp-editor-track { flex: 1; display: flex; flex-direction: column; gap: 2px; }
.sp-editor-track input[type=range] { width: 100%; margin: 0; }
.sp-editor-keys { position: relative; height: 8px; margin: 0 7px; }
.sp-editor-keys span { position: absolute; top: 0; width: 6px; height: 8px; margin-left: -3px; background: #f5c542; }
.sp-editor-panel input[type=number] { width: 5em; }
`;

const BUTTONS = [
  ["load-input", "Load from input", "Replace this frame's pose with the node's last input pose of this frame"],
  ["add-person", "Add person", "Add a standing person"],
  ["delete-person", "Delete person", "Delete the selected person (Del)"],
  ["toggle-joint", "Hide/show joint", "Hide the selected joint or show it again (H, or double-click it)"],
  ["mirror", "Mirror", "Mirror left-right, swapping left and right joints (M)"],
  ["turn-around", "Turn around", "Swap left and right in place: a front view becomes a back view"],
  ["fit", "Fit to canvas", "Scale and centre the people to fill the canvas"],
  ["undo", "Undo", "Undo (Ctrl+Z)"],
  ["redo", "Redo", "Redo (Ctrl+Y, Ctrl+Shift+Z)"],
];

const TIMELINE_BUTTONS = [
  ["prev-frame", "◀", "Previous frame (,)"],
  ["play", "Play", "Play the clip / stop (Space)"],
  ["next-frame", "▶", "Next frame (.)"],
  ["toggle-key", "Set key", "Make this frame a key pose, or remove its key (K). Editing a frame makes it a key."],
  ["keys-from-input", "Keys from input", "Every input frame becomes a key, so single frames can be edited"],
];

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function injectStyle() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(element("style", { id: STYLE_ID, textContent: STYLE }));
}

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

/**
 * Open the editor.
 * @param {object} options
 * @param {object} options.spec skeleton spec of the canvas, from GET /stable_pose/skeleton_spec
 * @param {import("./pose_timeline.js").Timeline} options.timeline keys and input frames, on the node's canvas
 * @param {(document: object) => Promise<Array>} options.interpolate the clip's people per frame for a keyframe
 *   document (the server's POST /stable_pose/interpolate)
 * @param {HTMLImageElement|null} options.background loaded background image
 * @param {string} options.notice message shown in the status line until the first edit
 * @param {(result: {pose: object, timeline: object}) => void} options.onApply receives the frame shown and the
 *   timeline when the user applies
 * @returns {{ close: () => void, model: PoseModel, canvas: HTMLCanvasElement }}
 */
export function openPoseEditor({ spec, timeline, interpolate, background = null, notice = "", onApply }) {
  injectStyle();
  let current = 0; // frame shown
  let shown = timeline.poseAt(0, spec); // the pose the frame had when shown (edits differ from it)
  let player = null; // playback interval
  const model = new PoseModel(spec, shown);
  const colors = jointColors(spec);
  const canvas = element("canvas", { className: "sp-editor-canvas" });
  const joints = element("div", { className: "sp-editor-joints" });
  const status = element("div", { className: "sp-editor-status" });
  const opacity = element("input", { type: "range", min: 0, max: 1, step: 0.05, value: 0.5 });
  const buttons = Object.fromEntries(
    BUTTONS.map(([action, label, title]) => [action, element("button", { textContent: label, title })]),
  );
  const cancel = element("button", { textContent: "Cancel", title: "Close without storing (Esc)" });
  const apply = element("button", {
    textContent: "Apply",
    className: "sp-primary",
    title: "Store and close",
  });
  const timelineButtons = Object.fromEntries(
    TIMELINE_BUTTONS.map(([action, label, title]) => [action, element("button", { textContent: label, title })]),
  );
  for (const [action, button] of Object.entries({ ...buttons, ...timelineButtons, cancel, apply }))
    button.dataset.action = action;
  const scrub = element("input", { type: "range", min: 0, step: 1, value: 0, title: "Frame" });
  const keyMarks = element("div", { className: "sp-editor-keys" });
  const frameLabel = element("span");
  const frameCount = element("input", { type: "number", min: 1, max: 100000, step: 1, title: "Frames in the clip" });
  const curve = element(
    "select",
    { title: "In-betweens: linear (constant speed) or ease_in_out (slow into and out of each key)" },
    CURVES.map((name) => element("option", { value: name, textContent: name })),
  );
  Object.assign(scrub.dataset, { role: "scrub" });
  Object.assign(frameLabel.dataset, { role: "frame-label" });
  Object.assign(frameCount.dataset, { role: "frame-count" });
  Object.assign(curve.dataset, { role: "curve" });
  const timelineBar = element("div", { className: "sp-editor-timeline" }, [
    timelineButtons["prev-frame"],
    timelineButtons.play,
    timelineButtons["next-frame"],
    element("div", { className: "sp-editor-track" }, [scrub, keyMarks]),
    frameLabel,
    timelineButtons["toggle-key"],
    element("label", { textContent: "Frames " }, [frameCount]),
    curve,
    timelineButtons["keys-from-input"],
  ]);
  const toolbar = element("div", { className: "sp-editor-toolbar" }, [
    ...Object.values(buttons),
    element("span", { className: "sp-editor-spacer" }),
    element("label", { textContent: "Background ", title: "Background opacity" }, [opacity]),
    cancel,
    apply,
  ]);
  const body = element("div", { className: "sp-editor-body" }, [canvas, joints]);
  const panel = element("div", { className: "sp-editor-panel" }, [toolbar, body, timelineBar, status]);
  const overlay = element("div", { className: "sp-editor-overlay" }, [panel]);
  overlay.dataset.stablePoseEditor = "open";
  overlay.dataset.interpolation = "ready";
  if (!background) opacity.parentElement.hidden = true;

  /** Canvas pixels per screen pixel. */
  const pixelRatio = () => canvas.width / canvas.getBoundingClientRect().width || 1;

  function layout() {
    const { width, height } = model.pose;
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const scale = Math.min(
      (window.innerWidth * 0.95 - 190) / width,
      (window.innerHeight * 0.95 - 150) / height,
    );
    canvas.style.width = `${Math.round(width * scale)}px`;
    canvas.style.height = `${Math.round(height * scale)}px`;
    joints.style.maxHeight = canvas.style.height;
  }

  function draw() {
    if (canvas.width !== model.pose.width || canvas.height !== model.pose.height) layout();
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (background) drawBackground(ctx, background, canvas.width, canvas.height, Number(opacity.value));
    const ratio = pixelRatio();
    model.pose.people.slice(0, spec.max_people).forEach((person) => drawSkeleton(ctx, person));
    model.pose.people.forEach((person, p) => drawHandles(ctx, person, p, ratio));
    updatePanel();
  }

  /** The person's limbs as render_pose draws them. */
  function drawSkeleton(ctx, person) {
    const shown = person.map((joint) => isVisible(joint, model.pose, spec));
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

  /** Grab handles: filled for drawn joints, dashed rings for hidden ones, a white ring for the selection. */
  function drawHandles(ctx, person, p, ratio) {
    const radius = HANDLE_RADIUS_PX * ratio;
    person.forEach((joint, j) => {
      if (isAbsent(joint)) return;
      const [x, y] = joint;
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      if (isVisible(joint, model.pose, spec)) {
        ctx.fillStyle = colors[j] ? rgb(colors[j]) : "#888";
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
      const selected = model.selection;
      if (selected?.person === p && selected?.joint === j) {
        ctx.lineWidth = 2 * ratio;
        ctx.strokeStyle = "#fff";
        ctx.beginPath();
        ctx.arc(x, y, radius + 3 * ratio, 0, 2 * Math.PI);
        ctx.stroke();
      }
    });
  }

  /** Joint list of the selected person (a checkbox shows/hides each joint), status line, button states. */
  function updatePanel() {
    const { people, width, height } = model.pose;
    const selected = model.selection;
    const person = selected ? people[selected.person] : null;
    joints.replaceChildren(
      element("div", { textContent: person ? `Person ${selected.person + 1}` : "Click a joint to select" }),
      ...(person ?? []).map((joint, j) => {
        const box = element("input", { type: "checkbox", checked: isVisible(joint, model.pose, spec) });
        box.addEventListener("change", () => run(() => model.toggleJoint(selected.person, j)));
        const label = element("label", { className: j === selected.joint ? "sp-selected" : "" }, [
          box,
          spec.names[j],
        ]);
        label.addEventListener("click", (event) => {
          if (event.target !== box) run(() => model.select({ person: selected.person, joint: j }));
        });
        return label;
      }),
    );
    let text = `Canvas ${width}×${height} · ${people.length} ${people.length === 1 ? "person" : "people"}`;
    if (people.length > spec.max_people) text += ` (only the first ${spec.max_people} are drawn)`;
    if (person) {
      const [x, y] = person[selected.joint];
      text += ` · ${spec.names[selected.joint]} at (${x.toFixed(1)}, ${y.toFixed(1)})`;
    }
    status.textContent = notice || text;
    buttons["load-input"].disabled = timeline.inputFrames.length === 0;
    buttons["delete-person"].disabled = !person;
    buttons["toggle-joint"].disabled = !person;
    buttons.undo.disabled = !model.canUndo;
    buttons.redo.disabled = !model.canRedo;
    updateTimeline();
  }

  /** Frame slider, key marks, frame label and timeline buttons. */
  function updateTimeline() {
    const last = timeline.frameCount - 1;
    Object.assign(scrub, { max: last, value: current, disabled: last === 0 });
    if (document.activeElement !== frameCount) frameCount.value = timeline.frameCount; // not while typing
    curve.value = timeline.curve;
    keyMarks.replaceChildren(
      ...timeline.keyFrames().map((frame) => {
        const mark = element("span", { title: `key at frame ${frame}` });
        mark.style.left = `${last ? (100 * frame) / last : 0}%`;
        mark.dataset.keyFrame = frame;
        return mark;
      }),
    );
    const key = timeline.isKey(current);
    frameLabel.textContent = `frame ${current} / ${last}${key ? " · key" : ""}`;
    timelineButtons["toggle-key"].textContent = key ? "Remove key" : "Set key";
    timelineButtons["prev-frame"].disabled = current === 0;
    timelineButtons["next-frame"].disabled = current === last;
    timelineButtons.play.disabled = last === 0;
    timelineButtons.play.textContent = player ? "Stop" : "Play";
    timelineButtons["keys-from-input"].disabled = timeline.inputFrames.length === 0;
    overlay.dataset.frame = current;
    overlay.dataset.playing = player ? "yes" : "no";
  }

  /** Show frame `frame` (clamped): its key, in-between or input pose, with a fresh undo history. */
  function showFrame(frame) {
    current = Math.min(Math.max(0, Math.round(frame)), timeline.frameCount - 1);
    shown = timeline.poseAt(current, spec);
    model.reset(shown);
    if (overlay.isConnected) draw();
  }

  /** Ask the server for the in-betweens of the current keys (the node's own interpolation). */
  function refreshInbetweens() {
    if (timeline.isInterpolated(spec)) {
      overlay.dataset.interpolation = "ready";
      return;
    }
    const signature = timeline.signature(spec);
    overlay.dataset.interpolation = "pending";
    interpolate(timeline.document(spec)).then(
      (frames) => {
        if (timeline.signature(spec) !== signature) return; // keys changed meanwhile: a newer request runs
        timeline.setInterpolated(signature, frames);
        overlay.dataset.interpolation = "ready";
        if (!timeline.isKey(current) && !model.dragStart) showFrame(current);
      },
      (error) => {
        overlay.dataset.interpolation = "error";
        notice = `the in-between frames could not be computed: ${error.message}`;
        if (overlay.isConnected) draw();
      },
    );
  }

  /**
   * After an action: an edited frame becomes a key. With no keys yet and an input clip, every input frame
   * becomes a key first, so editing one frame keeps the others as they came in.
   */
  function commitEdit() {
    if (JSON.stringify(model.pose) === JSON.stringify(shown)) return;
    if (timeline.keys.size === 0 && timeline.inputFrames.length > 1) timeline.keysFromInput();
    timeline.setKey(current, model.pose);
    shown = clonePose(model.pose);
    refreshInbetweens();
  }

  function stopPlaying() {
    if (!player) return;
    clearInterval(player);
    player = null;
  }

  function togglePlay() {
    if (player) return stopPlaying();
    player = setInterval(() => showFrame((current + 1) % timeline.frameCount), 1000 / PLAY_FPS);
  }

  function toggleKey() {
    if (timeline.isKey(current)) timeline.removeKey(current);
    else if (timeline.keys.size === 0 && timeline.inputFrames.length > 1) timeline.keysFromInput();
    else timeline.setKey(current, model.pose);
    refreshInbetweens();
    showFrame(current);
  }

  /** Run an editor action, record an edit as a key, and redraw. */
  function run(action) {
    action();
    commitEdit();
    notice = "";
    if (overlay.isConnected) draw();
  }

  /** Canvas coordinates of a pointer event. */
  function toCanvas(event) {
    const rect = canvas.getBoundingClientRect();
    const ratio = canvas.width / rect.width;
    return [(event.clientX - rect.left) * ratio, (event.clientY - rect.top) * ratio];
  }

  const hitAt = (event) => model.hitTest(...toCanvas(event), HIT_RADIUS_PX * pixelRatio());

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    stopPlaying();
    if (model.beginDrag(hitAt(event))) canvas.setPointerCapture(event.pointerId);
    draw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (model.dragStart) {
      model.dragTo(...toCanvas(event));
      draw();
    } else {
      canvas.style.cursor = hitAt(event) ? "grab" : "crosshair";
    }
  });
  const finishDrag = () => run(() => model.endDrag());
  canvas.addEventListener("pointerup", finishDrag);
  canvas.addEventListener("pointercancel", finishDrag);
  canvas.addEventListener("dblclick", (event) => {
    const hit = hitAt(event);
    if (hit) run(() => model.toggleJoint(hit.person, hit.joint));
  });
  opacity.addEventListener("input", draw);
  scrub.addEventListener("input", () => {
    stopPlaying();
    showFrame(Number(scrub.value));
  });
  frameCount.addEventListener("change", () => {
    const count = Number(frameCount.value);
    if (!(count >= 1)) return draw();
    timeline.setFrameCount(Math.min(count, 100000));
    refreshInbetweens();
    showFrame(current);
  });
  curve.addEventListener("change", () => {
    timeline.curve = curve.value;
    refreshInbetweens();
    showFrame(current);
  });

  const inputPoseHere = () => timeline.inputFrames[Math.min(current, timeline.inputFrames.length - 1)];
  const actions = {
    "load-input": () => timeline.inputFrames.length && model.setPose(inputPoseHere()),
    "add-person": () => model.addPerson(),
    "delete-person": () => model.deletePerson(),
    "toggle-joint": () => model.toggleJoint(),
    mirror: () => model.mirror(),
    "turn-around": () => model.turnAround(),
    fit: () => model.fitToCanvas(),
    undo: () => model.undo(),
    redo: () => model.redo(),
  };
  for (const [action, handler] of Object.entries(actions)) {
    buttons[action].addEventListener("click", () => run(handler));
  }
  const timelineActions = {
    "prev-frame": () => showFrame(current - 1),
    "next-frame": () => showFrame(current + 1),
    play: togglePlay,
    "toggle-key": toggleKey,
    "keys-from-input": () => {
      timeline.keysFromInput();
      refreshInbetweens();
      showFrame(current);
    },
  };
  for (const [action, handler] of Object.entries(timelineActions)) {
    timelineButtons[action].addEventListener("click", () => {
      if (action !== "play") stopPlaying();
      handler();
      draw();
    });
  }

  function close() {
    stopPlaying();
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("resize", onResize);
    overlay.remove();
  }
  cancel.addEventListener("click", close);
  apply.addEventListener("click", () => {
    // No keys: an input clip of the same length passes through; else the frames shown become the keys.
    if (timeline.keys.size === 0 && timeline.frameCount !== timeline.inputFrames.length) {
      const frames = timeline.frameCount;
      if (!timeline.keysFromInput()) timeline.setKey(current, model.pose);
      timeline.setFrameCount(frames);
    }
    onApply({ pose: model.pose, timeline });
    close();
  });

  // While open, the editor owns the keyboard: ComfyUI's shortcuts must not act on the graph behind it.
  function onKey(event) {
    event.stopPropagation();
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    const keys = {
      escape: close,
      enter: () => apply.click(),
      delete: actions["delete-person"],
      backspace: actions["delete-person"],
      h: actions["toggle-joint"],
      m: actions.mirror,
    };
    const timelineKeys = { ",": "prev-frame", ".": "next-frame", k: "toggle-key", " ": "play" };
    let handler = null;
    if (mod && key === "z") handler = event.shiftKey ? actions.redo : actions.undo;
    else if (mod && key === "y") handler = actions.redo;
    else if (!mod && event.target.tagName !== "INPUT" && timelineKeys[key]) {
      event.preventDefault();
      timelineButtons[timelineKeys[key]].click();
      return;
    } else if (!mod && event.target.tagName !== "INPUT") handler = keys[key];
    if (!handler) return;
    event.preventDefault();
    run(handler);
  }
  function onResize() {
    layout();
    draw();
  }
  window.addEventListener("keydown", onKey, true);
  window.addEventListener("resize", onResize);

  document.body.append(overlay);
  overlay.stablePoseEditor = { model, timeline, showFrame, current: () => current };
  layout();
  draw();
  return { close, model, canvas };
}
