// The editor's timeline part: which frame the PoseModel shows, how edits become keys of the Timeline
// (pose_timeline.js), the server's in-betweens and playback. No DOM: the editor is told through callbacks.

import { clonePose, PoseModel } from "./pose_model.js";

const PLAY_FPS = 12; // frames per second of the preview playback

export class TimelineControl {
  /**
   * @param {object} options
   * @param {object} options.spec skeleton spec of the canvas
   * @param {import("./pose_timeline.js").Timeline} options.timeline keys and input frames
   * @param {(document: object) => Promise<Array>} options.interpolate the clip's people per frame for a
   *   keyframe document (the server's POST /stable_pose/interpolate)
   * @param {() => void} options.onFrame called when another frame (or the same one anew) is shown
   * @param {(state: string, error?: Error) => void} options.onInterpolation the in-betweens' state: "pending",
   *   "ready" or "error"
   */
  constructor({ spec, timeline, interpolate, onFrame, onInterpolation }) {
    Object.assign(this, { spec, timeline, interpolate, onFrame, onInterpolation });
    this.current = 0; // frame shown
    this.shown = timeline.poseAt(0, spec); // the pose the frame had when shown (edits differ from it)
    this.player = null; // playback interval
    this.model = new PoseModel(spec, this.shown);
  }

  get playing() {
    return this.player !== null;
  }

  /** Show frame `frame` (clamped): its key, in-between or input pose, with a fresh undo history. */
  showFrame(frame) {
    const { timeline, spec } = this;
    this.current = Math.min(Math.max(0, Math.round(frame)), timeline.frameCount - 1);
    this.shown = timeline.poseAt(this.current, spec);
    this.model.reset(this.shown);
    this.onFrame();
  }

  /** Ask the server for the in-betweens of the current keys (the node's own interpolation). */
  refreshInbetweens() {
    const { timeline, spec } = this;
    if (timeline.isInterpolated(spec)) {
      this.onInterpolation("ready");
      return;
    }
    const signature = timeline.signature(spec);
    this.onInterpolation("pending");
    this.interpolate(timeline.document(spec)).then(
      (frames) => {
        if (timeline.signature(spec) !== signature) return; // keys changed meanwhile: a newer request runs
        timeline.setInterpolated(signature, frames);
        this.onInterpolation("ready");
        if (!timeline.isKey(this.current) && !this.model.dragStart) this.showFrame(this.current);
      },
      (error) => this.onInterpolation("error", error),
    );
  }

  /** With no keys yet and an input clip, every input frame becomes a key: editing one keeps the others. */
  keysFromInputFirst() {
    const { timeline } = this;
    if (timeline.keys.size === 0 && timeline.inputFrames.length > 1) return timeline.keysFromInput();
    return false;
  }

  /** After an action: an edited frame becomes a key (see keysFromInputFirst). */
  commitEdit() {
    const { model, timeline } = this;
    if (JSON.stringify(model.pose) === JSON.stringify(this.shown)) return;
    this.keysFromInputFirst();
    timeline.setKey(this.current, model.pose);
    this.shown = clonePose(model.pose);
    this.refreshInbetweens();
  }

  /** After a change of the keys, the clip length or the curve: new in-betweens, the frame shown anew. */
  keysChanged() {
    this.refreshInbetweens();
    this.showFrame(this.current);
  }

  /** Make the frame shown a key (as it is), or remove its key. */
  toggleKey() {
    const { timeline, current } = this;
    if (timeline.isKey(current)) timeline.removeKey(current);
    else if (!this.keysFromInputFirst()) timeline.setKey(current, this.model.pose);
    this.keysChanged();
  }

  keysFromInput() {
    this.timeline.keysFromInput();
    this.keysChanged();
  }

  setFrameCount(count) {
    this.timeline.setFrameCount(Math.min(count, 100000));
    this.keysChanged();
  }

  setCurve(curve) {
    this.timeline.curve = curve;
    this.keysChanged();
  }

  /** The node's input pose of the frame shown (the last input frame past the input's end), or undefined. */
  inputPose() {
    const { inputFrames } = this.timeline;
    return inputFrames[Math.min(this.current, inputFrames.length - 1)];
  }

  stopPlaying() {
    if (!this.player) return;
    clearInterval(this.player);
    this.player = null;
  }

  /** Loop the clip at PLAY_FPS, or stop. */
  togglePlay() {
    if (this.player) return this.stopPlaying();
    this.player = setInterval(
      () => this.showFrame((this.current + 1) % this.timeline.frameCount),
      1000 / PLAY_FPS,
    );
  }

  /**
   * The timeline as Apply stores it. With no keys, an input clip of the clip's length passes through; else the
   * input frames become the keys, or the frame shown the only key, the clip length kept.
   */
  finalTimeline() {
    const { timeline } = this;
    if (timeline.keys.size === 0 && timeline.frameCount !== timeline.inputFrames.length) {
      const frames = timeline.frameCount;
      if (!timeline.keysFromInput()) timeline.setKey(this.current, this.model.pose);
      timeline.setFrameCount(frames);
    }
    return timeline;
  }
}
