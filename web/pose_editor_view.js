// The editor's DOM: the overlay with its toolbar, canvas, joint list, timeline bar and status line, their
// layout, and the panels' text and button states. Plain DOM, no ComfyUI UI modules; it never edits anything:
// pose_editor_input.js routes the events of these elements to the model.

import { isVisible } from "./pose_model.js";
import { CURVES } from "./pose_timeline.js";

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
.sp-editor-timeline { display: flex; gap: 6px; align-items: center; }
.sp-editor-track { flex: 1; display: flex; flex-direction: column; gap: 2px; }
.sp-editor-track input[type=range] { width: 100%; margin: 0; }
.sp-editor-keys { position: relative; height: 8px; margin: 0 7px; }
.sp-editor-keys span { position: absolute; top: 0; width: 6px; height: 8px; margin-left: -3px; background: #f5c542; }
.sp-editor-panel input[type=number] { width: 5em; }
`;

/** Toolbar buttons: [data-action, label, tooltip]; pose_editor_input.js gives each its action. */
const BUTTONS = [
  [
    "load-input",
    "Load from input",
    "Replace this frame's pose with the node's last input pose of this frame",
  ],
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
  [
    "toggle-key",
    "Set key",
    "Make this frame a key pose, or remove its key (K). Editing a frame makes it a key.",
  ],
  ["keys-from-input", "Keys from input", "Every input frame becomes a key, so single frames can be edited"],
];

/** data-role of the timeline bar's inputs (the browser test finds them by it). */
const ROLES = { scrub: "scrub", frameLabel: "frame-label", frameCount: "frame-count", curve: "curve" };

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function injectStyle() {
  if (document.getElementById(STYLE_ID)) return;
  document.head.append(element("style", { id: STYLE_ID, textContent: STYLE }));
}

/** Buttons by action, each marked with its data-action. */
function makeButtons(table) {
  return Object.fromEntries(
    table.map(([action, label, title]) => {
      const button = element("button", { textContent: label, title });
      button.dataset.action = action;
      return [action, button];
    }),
  );
}

/** The timeline bar's controls: frame buttons, scrub slider with key marks, frame label, length and curve. */
function timelineControls() {
  const controls = {
    timelineButtons: makeButtons(TIMELINE_BUTTONS),
    scrub: element("input", { type: "range", min: 0, step: 1, value: 0, title: "Frame" }),
    keyMarks: element("div", { className: "sp-editor-keys" }),
    frameLabel: element("span"),
    frameCount: element("input", {
      type: "number",
      min: 1,
      max: 100000,
      step: 1,
      title: "Frames in the clip",
    }),
    curve: element(
      "select",
      { title: "In-betweens: linear (constant speed) or ease_in_out (slow into and out of each key)" },
      CURVES.map((name) => element("option", { value: name, textContent: name })),
    ),
  };
  for (const [name, role] of Object.entries(ROLES)) controls[name].dataset.role = role;
  return controls;
}

function timelineBar({ timelineButtons, scrub, keyMarks, frameLabel, frameCount, curve }) {
  return element("div", { className: "sp-editor-timeline" }, [
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
}

/** The toolbar's controls: edit buttons, background opacity, Cancel and Apply. */
function toolbarControls() {
  const { cancel, apply } = makeButtons([
    ["cancel", "Cancel", "Close without storing (Esc)"],
    ["apply", "Apply", "Store and close"],
  ]);
  apply.className = "sp-primary";
  const opacity = element("input", { type: "range", min: 0, max: 1, step: 0.05, value: 0.5 });
  return { buttons: makeButtons(BUTTONS), opacity, cancel, apply };
}

function toolbar({ buttons, opacity, cancel, apply }) {
  return element("div", { className: "sp-editor-toolbar" }, [
    ...Object.values(buttons),
    element("span", { className: "sp-editor-spacer" }),
    element("label", { textContent: "Background ", title: "Background opacity" }, [opacity]),
    cancel,
    apply,
  ]);
}

/**
 * Build the (not yet attached) editor overlay. Returns its elements by name: overlay, canvas, joints,
 * status, the toolbar's buttons (by action), opacity, cancel, apply, and the timeline bar's timelineButtons
 * (by action), scrub, keyMarks, frameLabel, frameCount and curve.
 */
export function buildView({ hasBackground }) {
  injectStyle();
  const view = {
    ...toolbarControls(),
    ...timelineControls(),
    canvas: element("canvas", { className: "sp-editor-canvas" }),
    joints: element("div", { className: "sp-editor-joints" }),
    status: element("div", { className: "sp-editor-status" }),
  };
  const body = element("div", { className: "sp-editor-body" }, [view.canvas, view.joints]);
  const panel = element("div", { className: "sp-editor-panel" }, [
    toolbar(view),
    body,
    timelineBar(view),
    view.status,
  ]);
  view.overlay = element("div", { className: "sp-editor-overlay" }, [panel]);
  view.overlay.dataset.stablePoseEditor = "open";
  view.overlay.dataset.interpolation = "ready";
  if (!hasBackground) view.opacity.parentElement.hidden = true;
  return view;
}

/** Canvas pixels per screen pixel. */
export function pixelRatio(canvas) {
  return canvas.width / canvas.getBoundingClientRect().width || 1;
}

/** Size the canvas to the pose's canvas and scale it on screen to fit the window beside the joint list. */
export function layoutView({ canvas, joints }, width, height) {
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const scale = Math.min(
    (window.innerWidth * 0.95 - 190) / width,
    (window.innerHeight * 0.95 - 150) / height,
  );
  canvas.style.width = `${Math.round(width * scale)}px`;
  canvas.style.height = `${Math.round(height * scale)}px`;
  joints.style.maxHeight = canvas.style.height;
}

/**
 * The joint list of the selected person: a checkbox shows/hides each joint (onToggle(person, joint)), a
 * click on its name selects it (onSelect(person, joint)).
 */
export function showJoints({ joints }, model, { onToggle, onSelect }) {
  const selected = model.selection;
  const person = selected ? model.pose.people[selected.person] : null;
  joints.replaceChildren(
    element("div", { textContent: person ? `Person ${selected.person + 1}` : "Click a joint to select" }),
    ...(person ?? []).map((joint, j) => {
      const box = element("input", { type: "checkbox", checked: isVisible(joint, model.pose, model.spec) });
      box.addEventListener("change", () => onToggle(selected.person, j));
      const label = element("label", { className: j === selected.joint ? "sp-selected" : "" }, [
        box,
        model.spec.names[j],
      ]);
      label.addEventListener("click", (event) => {
        if (event.target !== box) onSelect(selected.person, j);
      });
      return label;
    }),
  );
}

/** The status line's text: canvas, number of people, the selected joint and where it is. */
export function statusText(model) {
  const { pose, selection, spec } = model;
  const { people, width, height } = pose;
  let text = `Canvas ${width}×${height} · ${people.length} ${people.length === 1 ? "person" : "people"}`;
  if (people.length > spec.max_people) text += ` (only the first ${spec.max_people} are drawn)`;
  if (selection && people[selection.person]) {
    const [x, y] = people[selection.person][selection.joint];
    text += ` · ${spec.names[selection.joint]} at (${x.toFixed(1)}, ${y.toFixed(1)})`;
  }
  return text;
}

/** Toolbar buttons that have nothing to act on are disabled. */
export function updateToolbar({ buttons }, model, timeline) {
  const person = model.selection ? model.pose.people[model.selection.person] : null;
  buttons["load-input"].disabled = timeline.inputFrames.length === 0;
  buttons["delete-person"].disabled = !person;
  buttons["toggle-joint"].disabled = !person;
  buttons.undo.disabled = !model.canUndo;
  buttons.redo.disabled = !model.canRedo;
}

/** Frame slider, key marks, frame label and timeline buttons for the frame shown and the playback state. */
export function updateTimelineBar(view, timeline, current, playing) {
  const { scrub, frameCount, curve, keyMarks, frameLabel, timelineButtons, overlay } = view;
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
  timelineButtons.play.textContent = playing ? "Stop" : "Play";
  timelineButtons["keys-from-input"].disabled = timeline.inputFrames.length === 0;
  overlay.dataset.frame = current;
  overlay.dataset.playing = playing ? "yes" : "no";
}
