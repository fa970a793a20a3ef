// The editor dialog: a full-window overlay with a canvas that shows the skeleton over the background, a
// toolbar, the joint list of the selected person and a timeline (frames, keys, play). All editing goes
// through PoseModel (the frame shown) and Timeline (the keys); this file puts the parts together:
// pose_editor_view.js (DOM), pose_editor_render.js (canvas), pose_editor_input.js (pointer, buttons, keys) and
// pose_editor_timeline.js (frame shown, keys, in-betweens, playback). Plain DOM: no ComfyUI UI modules,
// nothing fetched but the background it is given and the in-betweens its interpolate callback asks the pack's
// server for.

import { bindInput } from "./pose_editor_input.js";
import { PoseRenderer } from "./pose_editor_render.js";
import { TimelineControl } from "./pose_editor_timeline.js";
import {
  buildView,
  layoutView,
  pixelRatio,
  showJoints,
  statusText,
  updateTimelineBar,
  updateToolbar,
} from "./pose_editor_view.js";

class PoseEditor {
  constructor({ spec, timeline, interpolate, background, notice, onApply }) {
    this.timeline = timeline;
    this.notice = notice; // shown in the status line until the next edit
    this.onApply = onApply;
    this.view = buildView({ hasBackground: Boolean(background) });
    this.renderer = new PoseRenderer(this.view.canvas, spec, background);
    this.timelineControl = new TimelineControl({
      spec,
      timeline,
      interpolate,
      onFrame: () => this.redraw(),
      onInterpolation: (state, error) => this.showInterpolation(state, error),
    });
    this.model = this.timelineControl.model;
    this.jointActions = {
      onToggle: (person, joint) => this.run(() => this.model.toggleJoint(person, joint)),
      onSelect: (person, joint) => this.run(() => this.model.select({ person, joint })),
    };
    this.unbind = bindInput(this);
  }

  layout() {
    layoutView(this.view, this.model.pose.width, this.model.pose.height);
  }

  /** Draw the canvas and bring the joint list, status line, toolbar and timeline bar up to date. */
  draw() {
    const { view, model, timelineControl } = this;
    if (view.canvas.width !== model.pose.width || view.canvas.height !== model.pose.height) this.layout();
    this.renderer.draw(model, Number(view.opacity.value), pixelRatio(view.canvas));
    showJoints(view, model, this.jointActions);
    view.status.textContent = this.notice || statusText(model);
    updateToolbar(view, model, this.timeline);
    updateTimelineBar(view, this.timeline, timelineControl.current, timelineControl.playing);
  }

  /** Draw while the editor is open (not after closing, when a late answer or timer arrives). */
  redraw() {
    if (this.view.overlay.isConnected) this.draw();
  }

  /** Run an editor action, record an edit as a key, and redraw. */
  run(action) {
    action();
    this.timelineControl.commitEdit();
    this.notice = "";
    this.redraw();
  }

  showInterpolation(state, error) {
    this.view.overlay.dataset.interpolation = state;
    if (!error) return;
    this.notice = `the in-between frames could not be computed: ${error.message}`;
    this.redraw();
  }

  open() {
    const { overlay } = this.view;
    document.body.append(overlay);
    const { model, timeline, timelineControl } = this;
    overlay.stablePoseEditor = {
      model,
      timeline,
      showFrame: (frame) => timelineControl.showFrame(frame),
      current: () => timelineControl.current,
    };
    this.layout();
    this.draw();
  }

  close() {
    this.timelineControl.stopPlaying();
    this.unbind();
    this.view.overlay.remove();
  }

  apply() {
    this.onApply({ pose: this.model.pose, timeline: this.timelineControl.finalTimeline() });
    this.close();
  }
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
 * @returns {{ close: () => void, model: import("./pose_model.js").PoseModel, canvas: HTMLCanvasElement }}
 */
export function openPoseEditor({ spec, timeline, interpolate, background = null, notice = "", onApply }) {
  const editor = new PoseEditor({ spec, timeline, interpolate, background, notice, onApply });
  editor.open();
  return { close: () => editor.close(), model: editor.model, canvas: editor.view.canvas };
}
