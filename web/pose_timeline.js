// Timeline model of the Stable-Pose editor: key poses on frame numbers, plain data, no DOM.
//
// The keys travel as the keyframe document of stablepose_core/poses/keyframes.py ({ format, width, height,
// joints, frames, curve, keys: [{ frame, people }] }); the in-between frames are never computed here: the
// editor asks the server (POST /stable_pose/interpolate), which runs the same core function the node runs,
// and stores the answer with setInterpolated. Person k of every key is the same person.

import { clonePose, emptyPose, roundPeople } from "./pose_model.js";

export const CURVES = ["linear", "ease_in_out"];

export class Timeline {
  /**
   * @param {object} options
   * @param {number} options.width canvas width
   * @param {number} options.height canvas height
   * @param {number} [options.frameCount] frames in the clip
   * @param {string} [options.curve] "linear" or "ease_in_out"
   * @param {object[]} [options.inputFrames] the node's input poses, one per frame (shown while there is no key)
   */
  constructor({ width, height, frameCount = 1, curve = "linear", inputFrames = [] }) {
    this.width = width;
    this.height = height;
    this.frameCount = Math.max(1, frameCount);
    this.curve = curve;
    this.inputFrames = inputFrames;
    this.keys = new Map(); // frame -> pose
    this.interpolated = null; // { signature, frames: people per frame } from the server
  }

  /** A timeline holding the keys of a keyframe document (already on the canvas). */
  static fromDocument(data, { inputFrames = [] } = {}) {
    const timeline = new Timeline({
      width: data.width,
      height: data.height,
      frameCount: data.frames,
      curve: data.curve ?? "linear",
      inputFrames,
    });
    for (const { frame, people } of data.keys) {
      timeline.keys.set(frame, { width: data.width, height: data.height, people });
    }
    return timeline;
  }

  isKey(frame) {
    return this.keys.has(frame);
  }

  keyFrames() {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  setKey(frame, pose) {
    this.keys.set(frame, clonePose(pose));
  }

  removeKey(frame) {
    return this.keys.delete(frame);
  }

  /** Change the clip length; keys beyond the new end are dropped. */
  setFrameCount(count) {
    this.frameCount = Math.max(1, Math.floor(count));
    for (const frame of this.keys.keys()) if (frame >= this.frameCount) this.keys.delete(frame);
  }

  /** Every input frame becomes a key (the clip gets the input's length): then any frame can be edited. */
  keysFromInput() {
    if (this.inputFrames.length === 0) return false;
    this.frameCount = this.inputFrames.length;
    this.keys = new Map(this.inputFrames.map((pose, frame) => [frame, clonePose(pose)]));
    return true;
  }

  /** The keyframe document of stablepose_core.poses.keyframes (positions rounded to 1/100 pixel). */
  document(spec) {
    return {
      format: spec.keyframes_format,
      width: this.width,
      height: this.height,
      joints: spec.names,
      frames: this.frameCount,
      curve: this.curve,
      keys: this.keyFrames().map((frame) => ({ frame, people: roundPeople(this.keys.get(frame).people) })),
    };
  }

  /** What the server's answer must belong to: the document as text. */
  signature(spec) {
    return JSON.stringify(this.document(spec));
  }

  /** Store the server's frames (people per frame) for the document with this signature. */
  setInterpolated(signature, frames) {
    this.interpolated = { signature, frames };
  }

  /** Whether the stored in-betweens belong to the current keys. */
  isInterpolated(spec) {
    return this.keys.size === 0 || this.interpolated?.signature === this.signature(spec);
  }

  /**
   * The pose shown at a frame: its key; with no keys at all, the input frame (or nothing); else the
   * server's in-between while it is current, else the nearest key before (or the first key).
   */
  poseAt(frame, spec) {
    if (this.keys.has(frame)) return clonePose(this.keys.get(frame));
    if (this.keys.size === 0) {
      const input = this.inputFrames[Math.min(frame, this.inputFrames.length - 1)];
      return input ? clonePose(input) : emptyPose(this.width, this.height);
    }
    if (this.isInterpolated(spec) && this.interpolated.frames[frame]) {
      return clonePose({ width: this.width, height: this.height, people: this.interpolated.frames[frame] });
    }
    const frames = this.keyFrames();
    const before = frames.filter((key) => key <= frame).pop() ?? frames[0];
    return clonePose(this.keys.get(before));
  }
}
