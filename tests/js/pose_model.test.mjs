// Unit tests of the editor's model (web/pose_model.js): node --test tests/js/
//
// fixtures.json holds the skeleton spec the server sends and a pose with its transforms made by the Python
// core (flip_horizontal, fit_to_canvas); tests/test_editor_node.py keeps it in step with the core.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  clonePose,
  defaultPerson,
  emptyPose,
  estimateJoint,
  hideOffCanvas,
  isAbsent,
  isVisible,
  parsePose,
  PoseModel,
  poseOnCanvas,
  serializePose,
} from "../../web/pose_model.js";

const fixtures = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url), "utf8"));
const { spec } = fixtures;
const joint = (name) => spec.names.indexOf(name);
const RIGHT_WRIST = joint("right_wrist");
const LEFT_WRIST = joint("left_wrist");
const poseOf = (document) => parsePose(JSON.stringify(document), spec);

function assertPosesClose(actual, expected, tolerance = 1e-3) {
  assert.equal(actual.width, expected.width);
  assert.equal(actual.height, expected.height);
  assert.equal(actual.people.length, expected.people.length);
  actual.people.flat().forEach((values, i) => {
    values.forEach((value, k) => {
      const wanted = expected.people.flat()[i][k];
      assert.ok(Math.abs(value - wanted) <= tolerance, `joint ${i % 17} value ${k}: ${value} != ${wanted}`);
    });
  });
}

describe("serialisation", () => {
  test("reads and writes the PoseKeypoints.to_json document", () => {
    const pose = poseOf(fixtures.pose);
    assert.equal(pose.people.length, 1);
    assert.deepEqual(JSON.parse(serializePose(pose, spec)), fixtures.pose);
  });

  test("rounds positions to 1/100 pixel", () => {
    const pose = {
      width: 10,
      height: 10,
      people: [defaultPerson(spec, 10, 10).map(() => [1.23456, 2.5, 1])],
    };
    const people = JSON.parse(serializePose(pose, spec)).people;
    assert.deepEqual(people[0][0], [1.23, 2.5, 1]);
  });

  test("rejects malformed documents with a reason", () => {
    const bad = (change) => JSON.stringify({ ...fixtures.pose, ...change });
    assert.throws(() => parsePose("{nope", spec), SyntaxError);
    assert.throws(
      () => parsePose(bad({ format: "openpose" }), spec),
      /not a "stable-pose-coco17" pose document/,
    );
    assert.throws(() => parsePose(bad({ width: 0 }), spec), /width and height must be positive integers/);
    assert.throws(() => parsePose(bad({ people: {} }), spec), /"people" must be a list/);
    const short = [fixtures.pose.people[0].slice(1)];
    assert.throws(() => parsePose(bad({ people: short }), spec), /person 0 must have 17 joints/);
    const broken = [fixtures.pose.people[0].map((values, i) => (i === 3 ? [1, null, 1] : values))];
    assert.throws(() => parsePose(bad({ people: broken }), spec), /person 0, joint 3 \(left_ear\)/);
    assert.throws(() => parsePose(bad({ joints: [...spec.names].reverse() }), spec), /COCO-17 names/);
  });
});

describe("canvas", () => {
  test("poseOnCanvas scales and centres as PoseKeypoints.fit_to_canvas", () => {
    assertPosesClose(poseOnCanvas(poseOf(fixtures.pose), 640, 480), poseOf(fixtures.fitted_640x480));
  });

  test("visibility follows the renderer: confident and on the canvas", () => {
    const pose = emptyPose(100, 50);
    assert.ok(isVisible([99.9, 49.9, 0.5], pose, spec));
    assert.ok(!isVisible([100, 10, 1], pose, spec));
    assert.ok(!isVisible([-0.1, 10, 1], pose, spec));
    assert.ok(!isVisible([10, 10, spec.visibility_threshold], pose, spec));
  });

  test("hideOffCanvas hides confident joints off the canvas and counts them", () => {
    const pose = poseOf(fixtures.pose);
    pose.people[0][RIGHT_WRIST] = [-5, 100, 0.9];
    pose.people[0][joint("nose")] = [100, 800, 1];
    const { pose: hidden, count } = hideOffCanvas(pose, spec);
    assert.equal(count, 2);
    assert.deepEqual(hidden.people[0][RIGHT_WRIST], [-5, 100, 0]);
    assert.equal(pose.people[0][RIGHT_WRIST][2], 0.9, "the input pose is not changed");
  });
});

describe("hit-testing", () => {
  const pose = {
    width: 512,
    height: 768,
    people: [defaultPerson(spec, 512, 768), defaultPerson(spec, 512, 768)],
  };

  test("finds the nearest joint within the radius, preferring the person drawn last", () => {
    const model = new PoseModel(spec, pose);
    const [x, y] = pose.people[0][RIGHT_WRIST];
    assert.deepEqual(model.hitTest(x + 3, y - 2, 10), { person: 1, joint: RIGHT_WRIST });
    assert.equal(model.hitTest(x + 30, y, 10), null);
  });

  test("hidden joints can be grabbed, absent ones cannot", () => {
    const model = new PoseModel(spec, { ...pose, people: [defaultPerson(spec, 512, 768)] });
    model.toggleJoint(0, RIGHT_WRIST);
    const [x, y] = model.pose.people[0][RIGHT_WRIST];
    assert.deepEqual(model.hitTest(x, y, 5), { person: 0, joint: RIGHT_WRIST });
    model.pose.people[0][joint("nose")] = [0, 0, 0];
    assert.ok(isAbsent(model.pose.people[0][joint("nose")]));
    assert.equal(model.hitTest(1, 1, 5), null);
  });
});

describe("dragging and history", () => {
  const start = () => new PoseModel(spec, poseOf(fixtures.pose));

  test("a drag moves the joint and is one undo step", () => {
    const model = start();
    const before = clonePose(model.pose);
    const [x, y] = model.pose.people[0][RIGHT_WRIST];
    assert.ok(model.beginDrag(model.hitTest(x, y, 8)));
    for (let step = 1; step <= 5; step += 1) model.dragTo(x + 10 * step, y + 4 * step);
    assert.ok(model.endDrag());
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [x + 50, y + 20, 1]);
    assert.equal(model.undoStack.length, 1);
    assert.ok(model.undo());
    assert.deepEqual(model.pose, before);
    assert.ok(model.redo());
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [x + 50, y + 20, 1]);
  });

  test("reset shows another pose with a fresh history and drops a selection it cannot keep", () => {
    const model = start();
    model.moveJoint(0, RIGHT_WRIST, 10, 10);
    model.select({ person: 0, joint: RIGHT_WRIST });
    model.reset(emptyPose(512, 768));
    assert.deepEqual(model.pose, emptyPose(512, 768));
    assert.ok(!model.canUndo && !model.canRedo);
    assert.equal(model.selection, null);
  });

  test("drags are clipped to the canvas pixels and a click without a move records nothing", () => {
    const model = start();
    const [x, y] = model.pose.people[0][RIGHT_WRIST];
    model.beginDrag({ person: 0, joint: RIGHT_WRIST });
    model.dragTo(-40, 5000);
    model.endDrag();
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [0, 767, 1]);
    model.beginDrag({ person: 0, joint: LEFT_WRIST });
    assert.ok(!model.endDrag());
    assert.equal(model.undoStack.length, 1);
    assert.ok(!model.beginDrag(model.hitTest(x + 200, y + 200, 1)), "empty space: nothing to drag");
    assert.equal(model.selection, null);
  });

  test("a new edit clears redo; undo and redo stop at the ends; history is bounded", () => {
    const model = new PoseModel(spec, poseOf(fixtures.pose), { historyLimit: 3 });
    model.mirror();
    model.undo();
    assert.ok(model.canRedo);
    model.moveJoint(0, RIGHT_WRIST, 10, 10);
    assert.ok(!model.canRedo && !model.redo());
    for (let i = 0; i < 5; i += 1) model.moveJoint(0, RIGHT_WRIST, 20 + i, 10);
    assert.equal(model.undoStack.length, 3);
    while (model.undo());
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [21, 10, 1]);
  });

  test("edits that change nothing are not recorded", () => {
    const model = start();
    const [x, y] = model.pose.people[0][RIGHT_WRIST];
    assert.ok(!model.moveJoint(0, RIGHT_WRIST, x, y));
    assert.ok(!model.canUndo);
  });
});

describe("mirror and turn around", () => {
  test("mirror equals PoseKeypoints.flip_horizontal: x -> width - 1 - x with left and right swapped", () => {
    const model = new PoseModel(spec, poseOf(fixtures.pose));
    model.mirror();
    assertPosesClose(model.pose, poseOf(fixtures.flipped));
    const original = poseOf(fixtures.pose).people[0];
    assert.deepEqual(model.pose.people[0][LEFT_WRIST], [
      511 - original[RIGHT_WRIST][0],
      original[RIGHT_WRIST][1],
      1,
    ]);
    model.mirror();
    assertPosesClose(model.pose, poseOf(fixtures.pose));
  });

  test("turn around swaps left and right in place and leaves the rest", () => {
    const model = new PoseModel(spec, poseOf(fixtures.pose));
    const original = clonePose(model.pose).people[0];
    model.turnAround();
    const turned = model.pose.people[0];
    for (const [left, right] of spec.flip_pairs) {
      assert.deepEqual(turned[left], original[right]);
      assert.deepEqual(turned[right], original[left]);
    }
    assert.deepEqual(turned[joint("nose")], original[joint("nose")]);
  });

  test("absent joints stay absent", () => {
    const pose = poseOf(fixtures.pose);
    pose.people[0][joint("left_ear")] = [0, 0, 0];
    const model = new PoseModel(spec, pose);
    model.mirror();
    assert.deepEqual(model.pose.people[0][joint("right_ear")], [0, 0, 0]);
  });
});

describe("people and joints", () => {
  test("add person: the default pose, every joint drawn, later people shifted sideways", () => {
    const model = new PoseModel(spec, emptyPose(512, 768));
    model.addPerson();
    model.addPerson();
    assert.equal(model.pose.people.length, 2);
    for (const person of model.pose.people)
      assert.ok(person.every((values) => isVisible(values, model.pose, spec)));
    const [first, second] = model.pose.people;
    assert.ok(second[joint("nose")][0] > first[joint("nose")][0] + 50);
    assert.ok(
      first[RIGHT_WRIST][0] < first[LEFT_WRIST][0],
      "seen from the front: right side on the image left",
    );
    assert.deepEqual(model.selection, { person: 1, joint: 0 });
  });

  test("delete person removes the selected one; undo brings it back", () => {
    const model = new PoseModel(spec, emptyPose(512, 768));
    model.addPerson();
    model.addPerson();
    model.select({ person: 0, joint: 3 });
    const kept = clonePose(model.pose).people[1];
    assert.ok(model.deletePerson());
    assert.deepEqual(model.pose.people, [kept]);
    assert.equal(model.selection, null);
    assert.ok(!model.deletePerson(), "nothing selected");
    model.undo();
    assert.equal(model.pose.people.length, 2);
  });

  test("hide keeps the place, show restores confidence 1", () => {
    const model = new PoseModel(spec, poseOf(fixtures.pose));
    const [x, y] = model.pose.people[0][RIGHT_WRIST];
    model.select({ person: 0, joint: RIGHT_WRIST });
    model.toggleJoint();
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [x, y, 0]);
    model.toggleJoint();
    assert.deepEqual(model.pose.people[0][RIGHT_WRIST], [x, y, 1]);
    assert.equal(model.pose.people[0][LEFT_WRIST][2], 0, "the fixture's hidden left wrist");
    model.toggleJoint(0, LEFT_WRIST);
    assert.equal(model.pose.people[0][LEFT_WRIST][2], 1);
  });

  test("showing an absent joint puts it where the rest of the body says", () => {
    const person = defaultPerson(spec, 512, 768, 200);
    const truth = person[RIGHT_WRIST].slice(0, 2);
    person[RIGHT_WRIST] = [0, 0, 0];
    const model = new PoseModel(spec, { width: 512, height: 768, people: [person] });
    model.toggleJoint(0, RIGHT_WRIST);
    const [x, y, c] = model.pose.people[0][RIGHT_WRIST];
    assert.equal(c, 1);
    assert.ok(Math.hypot(x - truth[0], y - truth[1]) < 1, `${x},${y} vs ${truth}`);
    const lonely = { width: 512, height: 768, people: [person.map(() => [0, 0, 0])] };
    assert.deepEqual(
      estimateJoint(spec, lonely, lonely.people[0], RIGHT_WRIST),
      defaultPerson(spec, 512, 768)[RIGHT_WRIST].slice(0, 2),
    );
  });
});

describe("fit to canvas", () => {
  const span = (points, k) => Math.max(...points.map((p) => p[k])) - Math.min(...points.map((p) => p[k]));

  test("the drawn joints fill the canvas up to the margin, aspect kept", () => {
    const before = defaultPerson(spec, 512, 768).map(([x, y, c]) => [x / 4 + 10, y / 4 + 20, c]);
    const model = new PoseModel(spec, { width: 512, height: 768, people: [before] });
    assert.ok(model.fitToCanvas(0.05));
    const after = model.pose.people[0];
    const top = Math.min(...after.map(([, y]) => y));
    const centreX = (Math.max(...after.map(([x]) => x)) + Math.min(...after.map(([x]) => x))) / 2;
    assert.ok(Math.abs(span(after, 1) - 767 * 0.9) < 1e-6, `height ${span(after, 1)}`);
    assert.ok(Math.abs(top - 767 * 0.05) < 1e-6 && Math.abs(centreX - 511 / 2) < 1e-6);
    assert.ok(Math.abs(span(after, 0) / span(after, 1) - span(before, 0) / span(before, 1)) < 1e-9);
    assert.ok(!new PoseModel(spec, emptyPose(64, 64)).fitToCanvas(), "nothing drawn, nothing to fit");
  });
});
