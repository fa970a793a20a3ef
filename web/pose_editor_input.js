// The editor's input: pointer on the canvas (drag a joint, double-click to hide/show it), the toolbar and
// timeline buttons, the timeline bar's inputs and the keyboard, each routed to one call of the editor
// (pose_editor.js), its PoseModel or its TimelineControl.

import { pixelRatio } from "./pose_editor_view.js";

const HIT_RADIUS_PX = 12; // screen pixels around a joint that grab it

/** Canvas coordinates of a pointer event. */
function toCanvas(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  const ratio = canvas.width / rect.width;
  return [(event.clientX - rect.left) * ratio, (event.clientY - rect.top) * ratio];
}

/** Drag a joint (one undo step), hover shows the grab cursor, double-click hides or shows a joint. */
function bindPointer(editor) {
  const { view, model, timelineControl } = editor;
  const { canvas } = view;
  const hitAt = (event) => model.hitTest(...toCanvas(canvas, event), HIT_RADIUS_PX * pixelRatio(canvas));
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    timelineControl.stopPlaying();
    if (model.beginDrag(hitAt(event))) canvas.setPointerCapture(event.pointerId);
    editor.draw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (model.dragStart) {
      model.dragTo(...toCanvas(canvas, event));
      editor.draw();
    } else {
      canvas.style.cursor = hitAt(event) ? "grab" : "crosshair";
    }
  });
  const finishDrag = () => editor.run(() => model.endDrag());
  canvas.addEventListener("pointerup", finishDrag);
  canvas.addEventListener("pointercancel", finishDrag);
  canvas.addEventListener("dblclick", (event) => {
    const hit = hitAt(event);
    if (hit) editor.run(() => model.toggleJoint(hit.person, hit.joint));
  });
}

/** The toolbar's edit actions by data-action (also the keyboard's). */
function editActions({ model, timelineControl, timeline }) {
  return {
    "load-input": () => timeline.inputFrames.length && model.setPose(timelineControl.inputPose()),
    "add-person": () => model.addPerson(),
    "delete-person": () => model.deletePerson(),
    "toggle-joint": () => model.toggleJoint(),
    mirror: () => model.mirror(),
    "turn-around": () => model.turnAround(),
    fit: () => model.fitToCanvas(),
    undo: () => model.undo(),
    redo: () => model.redo(),
  };
}

/** Timeline buttons step, play and make keys; any but Play stops the playback first. */
function bindTimelineButtons(editor) {
  const { timelineControl } = editor;
  const actions = {
    "prev-frame": () => timelineControl.showFrame(timelineControl.current - 1),
    "next-frame": () => timelineControl.showFrame(timelineControl.current + 1),
    play: () => timelineControl.togglePlay(),
    "toggle-key": () => timelineControl.toggleKey(),
    "keys-from-input": () => timelineControl.keysFromInput(),
  };
  for (const [action, handler] of Object.entries(actions)) {
    editor.view.timelineButtons[action].addEventListener("click", () => {
      if (action !== "play") timelineControl.stopPlaying();
      handler();
      editor.draw();
    });
  }
}

/** The frame slider, the clip length, the curve menu and the background opacity. */
function bindTimelineInputs(editor) {
  const { view, timelineControl } = editor;
  view.opacity.addEventListener("input", () => editor.draw());
  view.scrub.addEventListener("input", () => {
    timelineControl.stopPlaying();
    timelineControl.showFrame(Number(view.scrub.value));
  });
  view.frameCount.addEventListener("change", () => {
    const count = Number(view.frameCount.value);
    if (count >= 1) timelineControl.setFrameCount(count);
    else editor.draw();
  });
  view.curve.addEventListener("change", () => timelineControl.setCurve(view.curve.value));
}

const TIMELINE_KEYS = { ",": "prev-frame", ".": "next-frame", k: "toggle-key", " ": "play" };

/**
 * The key handler: while open, the editor owns the keyboard, so ComfyUI's shortcuts do not act on the graph
 * behind it. Timeline keys click their button; the others run their action as an edit.
 */
function keyHandler(editor, actions) {
  const keys = {
    escape: () => editor.close(),
    enter: () => editor.view.apply.click(),
    delete: actions["delete-person"],
    backspace: actions["delete-person"],
    h: actions["toggle-joint"],
    m: actions.mirror,
  };
  return (event) => {
    event.stopPropagation();
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    const typing = event.target.tagName === "INPUT";
    let handler = null;
    if (mod && key === "z") handler = event.shiftKey ? actions.redo : actions.undo;
    else if (mod && key === "y") handler = actions.redo;
    else if (!mod && !typing && TIMELINE_KEYS[key]) {
      event.preventDefault();
      editor.view.timelineButtons[TIMELINE_KEYS[key]].click();
      return;
    } else if (!mod && !typing) handler = keys[key];
    if (!handler) return;
    event.preventDefault();
    editor.run(handler);
  };
}

/**
 * Route the editor's input: pointer, buttons, timeline bar, Cancel/Apply, and the window's keyboard and
 * resize events. Returns the function that removes the window listeners (on close).
 */
export function bindInput(editor) {
  const { view } = editor;
  const actions = editActions(editor);
  for (const [action, handler] of Object.entries(actions)) {
    view.buttons[action].addEventListener("click", () => editor.run(handler));
  }
  bindPointer(editor);
  bindTimelineButtons(editor);
  bindTimelineInputs(editor);
  view.cancel.addEventListener("click", () => editor.close());
  view.apply.addEventListener("click", () => editor.apply());
  const onKey = keyHandler(editor, actions);
  const onResize = () => {
    editor.layout();
    editor.draw();
  };
  window.addEventListener("keydown", onKey, true);
  window.addEventListener("resize", onResize);
  return () => {
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("resize", onResize);
  };
}
