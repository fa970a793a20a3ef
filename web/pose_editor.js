// The editor dialog: a full-window overlay with a canvas that shows the skeleton over the background, a
// toolbar and the joint list of the selected person. All editing goes through PoseModel; this file only
// draws and routes input. Plain DOM: no ComfyUI UI modules, nothing fetched but the background it is given.
//
// The skeleton is drawn as stablepose_core.skeleton.render_pose draws it (limbs in order, each a line of the
// spec's line_width in its limb colour with round ends; joints present only if drawn), so the preview is
// the picture the node renders; joint handles and hidden joints are drawn on top of it.

import { isAbsent, isVisible, PoseModel } from "./pose_model.js";

const HIT_RADIUS_PX = 12; // screen pixels around a joint that grab it
const HANDLE_RADIUS_PX = 4; // screen radius of a joint handle
const STYLE_ID = "stable-pose-editor-style";

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
`;

const BUTTONS = [
  ["load-input", "Load from input", "Replace the pose with the last pose the node received"],
  ["add-person", "Add person", "Add a standing person"],
  ["delete-person", "Delete person", "Delete the selected person (Del)"],
  ["toggle-joint", "Hide/show joint", "Hide the selected joint or show it again (H, or double-click it)"],
  ["mirror", "Mirror", "Mirror left-right, swapping left and right joints (M)"],
  ["turn-around", "Turn around", "Swap left and right in place: a front view becomes a back view"],
  ["fit", "Fit to canvas", "Scale and centre the people to fill the canvas"],
  ["undo", "Undo", "Undo (Ctrl+Z)"],
  ["redo", "Redo", "Redo (Ctrl+Y, Ctrl+Shift+Z)"],
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
 * @param {object} options.pose pose to edit, on the node's canvas
 * @param {object|null} options.inputPose last input pose of the node on the same canvas ("Load from input")
 * @param {HTMLImageElement|null} options.background loaded background image
 * @param {string} options.notice message shown in the status line until the first edit
 * @param {(pose: object) => void} options.onApply receives the edited pose when the user applies
 * @returns {{ close: () => void, model: PoseModel, canvas: HTMLCanvasElement }}
 */
export function openPoseEditor({ spec, pose, inputPose = null, background = null, notice = "", onApply }) {
  injectStyle();
  const model = new PoseModel(spec, pose);
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
  for (const [action, button] of Object.entries({ ...buttons, cancel, apply }))
    button.dataset.action = action;
  const toolbar = element("div", { className: "sp-editor-toolbar" }, [
    ...Object.values(buttons),
    element("span", { className: "sp-editor-spacer" }),
    element("label", { textContent: "Background ", title: "Background opacity" }, [opacity]),
    cancel,
    apply,
  ]);
  const body = element("div", { className: "sp-editor-body" }, [canvas, joints]);
  const panel = element("div", { className: "sp-editor-panel" }, [toolbar, body, status]);
  const overlay = element("div", { className: "sp-editor-overlay" }, [panel]);
  overlay.dataset.stablePoseEditor = "open";
  if (!background) opacity.parentElement.hidden = true;

  /** Canvas pixels per screen pixel. */
  const pixelRatio = () => canvas.width / canvas.getBoundingClientRect().width || 1;

  function layout() {
    const { width, height } = model.pose;
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const scale = Math.min(
      (window.innerWidth * 0.95 - 190) / width,
      (window.innerHeight * 0.95 - 110) / height,
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
    buttons["load-input"].disabled = !inputPose;
    buttons["delete-person"].disabled = !person;
    buttons["toggle-joint"].disabled = !person;
    buttons.undo.disabled = !model.canUndo;
    buttons.redo.disabled = !model.canRedo;
  }

  /** Run an editor action and redraw. */
  function run(action) {
    action();
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

  const actions = {
    "load-input": () => inputPose && model.setPose(inputPose),
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

  function close() {
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("resize", onResize);
    overlay.remove();
  }
  cancel.addEventListener("click", close);
  apply.addEventListener("click", () => {
    onApply(model.pose);
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
    let handler = null;
    if (mod && key === "z") handler = event.shiftKey ? actions.redo : actions.undo;
    else if (mod && key === "y") handler = actions.redo;
    else if (!mod && event.target.tagName !== "INPUT") handler = keys[key];
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
  layout();
  draw();
  return { close, model, canvas };
}
