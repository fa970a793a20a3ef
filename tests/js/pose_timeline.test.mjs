// Unit tests of the editor's timeline (web/pose_timeline.js): node --test tests/js/
//
// fixtures.json's "keyframes" is a keyframe document written by the Python core (pose_keyframes.py); the
// timeline must read it and write it back unchanged, since the server interpolates what the timeline writes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { emptyPose } from "../../web/pose_model.js";
import { Timeline } from "../../web/pose_timeline.js";

const fixtures = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url), "utf8"));
const { spec, keyframes } = fixtures;
const poseAt = (people) => ({ width: keyframes.width, height: keyframes.height, people });

describe("keyframe document", () => {
  test("reads and writes the core's document unchanged", () => {
    const timeline = Timeline.fromDocument(keyframes);
    assert.deepEqual(timeline.keyFrames(), [0, 8]);
    assert.deepEqual(timeline.document(spec), keyframes);
  });

  test("keys are written in frame order, positions rounded to 1/100 pixel", () => {
    const timeline = new Timeline({ width: 64, height: 64, frameCount: 5 });
    timeline.setKey(4, { width: 64, height: 64, people: [[[1.23456, 2, 1]]] });
    timeline.setKey(1, emptyPose(64, 64));
    const document = timeline.document(spec);
    assert.deepEqual(
      document.keys.map((key) => key.frame),
      [1, 4],
    );
    assert.deepEqual(document.keys[1].people, [[[1.23, 2, 1]]]);
    assert.equal(document.format, spec.keyframes_format);
  });
});

describe("frames shown", () => {
  test("without keys: the input frame (the last one past its end), else an empty pose", () => {
    const inputs = [poseAt([]), poseAt(keyframes.keys[0].people)];
    const timeline = new Timeline({ width: 512, height: 768, frameCount: 3, inputFrames: inputs });
    assert.deepEqual(timeline.poseAt(1, spec), inputs[1]);
    assert.deepEqual(timeline.poseAt(2, spec), inputs[1]);
    assert.deepEqual(new Timeline({ width: 8, height: 8 }).poseAt(0, spec), emptyPose(8, 8));
  });

  test("between keys: the server's in-between while current, else the key before", () => {
    const timeline = Timeline.fromDocument(keyframes);
    assert.deepEqual(timeline.poseAt(4, spec), poseAt(keyframes.keys[0].people));
    assert.equal(timeline.isInterpolated(spec), false);
    const frames = Array.from({ length: 9 }, (_, frame) => [[[frame, frame, 1]]]);
    timeline.setInterpolated(timeline.signature(spec), frames);
    assert.deepEqual(timeline.poseAt(4, spec).people, frames[4]);
    assert.deepEqual(timeline.poseAt(8, spec), poseAt(keyframes.keys[1].people), "keys win");
    timeline.setKey(6, poseAt([]));
    assert.equal(timeline.isInterpolated(spec), false, "a new key makes the in-betweens stale");
    assert.deepEqual(timeline.poseAt(7, spec), poseAt([]));
  });

  test("shorter clips drop the keys past their end; input frames become keys", () => {
    const timeline = Timeline.fromDocument(keyframes);
    timeline.setFrameCount(5);
    assert.deepEqual(timeline.keyFrames(), [0]);
    const inputs = [poseAt([]), poseAt([]), poseAt([])];
    const fromInput = new Timeline({ width: 512, height: 768, inputFrames: inputs });
    assert.ok(fromInput.keysFromInput());
    assert.equal(fromInput.frameCount, 3);
    assert.deepEqual(fromInput.keyFrames(), [0, 1, 2]);
  });
});
