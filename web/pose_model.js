// Editing model of the Stable-Pose editor: plain data, no DOM, so node's test runner covers it.
//
// A pose is { width, height, people } where each person is an array of COCO-17 joints [x, y, conf] in pixel
// coordinates of a width x height canvas: stablepose_core.poses.keypoints.PoseKeypoints, whose JSON document
// (PoseKeypoints.to_json) parsePose/serializePose read and write. The skeleton spec ({ format, names,
// limbs, limb_colors, flip_pairs, visibility_threshold, ... }) is served by the pack
// (GET /stable_pose/skeleton_spec, nodes/editor.py) from the Python core, so joint order, limbs, colours
// and left/right pairs have one source.

// A standing person seen from the front (their left on the image's right), as offsets from the body centre
// line in units of the person's height; y is measured from the top of the head.
const DEFAULT_PERSON = {
  nose: [0.0, 0.06],
  left_eye: [0.02, 0.045],
  right_eye: [-0.02, 0.045],
  left_ear: [0.045, 0.055],
  right_ear: [-0.045, 0.055],
  left_shoulder: [0.11, 0.17],
  right_shoulder: [-0.11, 0.17],
  left_elbow: [0.15, 0.33],
  right_elbow: [-0.15, 0.33],
  left_wrist: [0.17, 0.47],
  right_wrist: [-0.17, 0.47],
  left_hip: [0.07, 0.5],
  right_hip: [-0.07, 0.5],
  left_knee: [0.08, 0.73],
  right_knee: [-0.08, 0.73],
  left_ankle: [0.08, 0.95],
  right_ankle: [-0.08, 0.95],
};

function clamp(value, low, high) {
  return Math.min(Math.max(value, low), high);
}

function posesEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Map every joint of every person through fn(x, y) -> [x, y], keeping confidences; absent joints stay. */
function mapJoints(pose, fn) {
  pose.people = pose.people.map((person) =>
    person.map((joint) => (isAbsent(joint) ? joint : [...fn(joint[0], joint[1]), joint[2]])),
  );
}

/** Swap each left/right pair of joints in every person (labels only, positions stay). */
function swapPairs(pose, flipPairs) {
  for (const person of pose.people) {
    for (const [left, right] of flipPairs) [person[left], person[right]] = [person[right], person[left]];
  }
}

/** The default person's joints as [x, y] in units of its height, in the spec's joint order. */
function template(spec) {
  return spec.names.map((name) => {
    if (!DEFAULT_PERSON[name]) throw new Error(`no default position for joint "${name}"`);
    return DEFAULT_PERSON[name];
  });
}

/** Deep copy of a pose. */
export function clonePose(pose) {
  return {
    width: pose.width,
    height: pose.height,
    people: pose.people.map((person) => person.map((joint) => [...joint])),
  };
}

/** A pose without people on a width x height canvas. */
export function emptyPose(width, height) {
  return { width, height, people: [] };
}

/** Whether the renderer draws a joint: confident enough and on the canvas (PoseKeypoints.visible). */
export function isVisible([x, y, c], pose, spec) {
  return c > spec.visibility_threshold && x >= 0 && x < pose.width && y >= 0 && y < pose.height;
}

/** A joint that was never there: (0, 0, 0), the PoseKeypoints convention. Transforms leave it alone. */
export function isAbsent([x, y, c]) {
  return x === 0 && y === 0 && c === 0;
}

/** Parse a PoseKeypoints.to_json document; throws an Error saying what is wrong. */
export function parsePose(text, spec) {
  const data = JSON.parse(text);
  if (data?.format !== spec.format) throw new Error(`not a "${spec.format}" pose document`);
  if (data.joints && JSON.stringify(data.joints) !== JSON.stringify(spec.names)) {
    throw new Error("joints must be the COCO-17 names in COCO order");
  }
  const { width, height, people } = data;
  if (!(Number.isInteger(width) && width >= 1 && Number.isInteger(height) && height >= 1)) {
    throw new Error("width and height must be positive integers");
  }
  if (!Array.isArray(people)) throw new Error('"people" must be a list');
  people.forEach((person, p) => {
    if (!Array.isArray(person) || person.length !== spec.names.length) {
      throw new Error(`person ${p} must have ${spec.names.length} joints`);
    }
    person.forEach((joint, j) => {
      if (!Array.isArray(joint) || joint.length !== 3 || !joint.every(Number.isFinite)) {
        throw new Error(`person ${p}, joint ${j} (${spec.names[j]}) must be [x, y, confidence] numbers`);
      }
    });
  });
  return clonePose({ width, height, people });
}

/** People with positions rounded to 1/100 pixel (confidences kept), as documents store them. */
export function roundPeople(people) {
  const round = (v) => Math.round(v * 100) / 100;
  return people.map((person) => person.map(([x, y, c]) => [round(x), round(y), c]));
}

/** The pose as a PoseKeypoints.to_json document; positions rounded to 1/100 pixel. */
export function serializePose(pose, spec) {
  return JSON.stringify({
    format: spec.format,
    width: pose.width,
    height: pose.height,
    joints: spec.names,
    people: roundPeople(pose.people),
  });
}

/**
 * The pose on a width x height canvas: unchanged if it is already there, else scaled uniformly and centred,
 * as PoseKeypoints.fit_to_canvas (what the node does with a pose made on another canvas).
 */
export function poseOnCanvas(pose, width, height) {
  const moved = clonePose(pose);
  if (pose.width === width && pose.height === height) return moved;
  const scale = Math.min(width / pose.width, height / pose.height);
  const [dx, dy] = [(width - pose.width * scale) / 2, (height - pose.height * scale) / 2];
  mapJoints(moved, (x, y) => [x * scale + dx, y * scale + dy]);
  return { ...moved, width, height };
}

/**
 * The pose with every confident joint that lies off the canvas hidden (confidence 0, place kept), and how
 * many there were. The renderer does not draw such joints (as in training); hidden, they stay undrawn and
 * the node does not clip them onto the border.
 */
export function hideOffCanvas(pose, spec) {
  const result = clonePose(pose);
  let count = 0;
  for (const joint of result.people.flat()) {
    if (joint[2] > spec.visibility_threshold && !isVisible(joint, result, spec)) {
      joint[2] = 0;
      count += 1;
    }
  }
  return { pose: result, count };
}

/** The default person (all joints visible), 80 % of the canvas height, centred at centreX. */
export function defaultPerson(spec, width, height, centreX = width / 2) {
  const size = 0.8 * height;
  return template(spec).map(([dx, dy]) => [
    clamp(centreX + dx * size, 0, width - 1),
    clamp(0.1 * height + dy * size, 0, height - 1),
    1,
  ]);
}

/**
 * Where joint j of a person most likely is: the default person's joint, moved and scaled so the default
 * person's other drawn joints match this person's (least squares); the default person's if none is drawn.
 */
export function estimateJoint(spec, pose, person, j) {
  const shape = template(spec);
  const known = person.map((joint, i) => i).filter((i) => i !== j && isVisible(person[i], pose, spec));
  if (known.length === 0) return defaultPerson(spec, pose.width, pose.height)[j].slice(0, 2);
  const mean = (points) =>
    [0, 1].map((k) => points.reduce((sum, point) => sum + point[k], 0) / points.length);
  const spread = (points, [cx, cy]) => points.reduce((sum, [x, y]) => sum + (x - cx) ** 2 + (y - cy) ** 2, 0);
  const ours = known.map((i) => person[i]);
  const theirs = known.map((i) => shape[i]);
  const [px, py] = mean(ours);
  const [tx, ty] = mean(theirs);
  const scale =
    known.length > 1 ? Math.sqrt(spread(ours, [px, py]) / spread(theirs, [tx, ty])) : 0.8 * pose.height;
  return [
    clamp(px + (shape[j][0] - tx) * scale, 0, pose.width - 1),
    clamp(py + (shape[j][1] - ty) * scale, 0, pose.height - 1),
  ];
}

/**
 * The editor's state: the pose, the selection and the undo/redo history.
 * Every edit is one undo step; a drag (beginDrag .. endDrag) is one step however many moves it has.
 */
export class PoseModel {
  constructor(spec, pose, { historyLimit = 200 } = {}) {
    this.spec = spec;
    this.pose = clonePose(pose);
    this.historyLimit = historyLimit;
    this.undoStack = [];
    this.redoStack = [];
    this.selection = null; // { person, joint } or null
    this.dragStart = null; // the pose before the drag in progress
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** Apply mutate(pose) as one undoable step; returns false (and records nothing) when nothing changed. */
  edit(mutate) {
    const before = clonePose(this.pose);
    mutate(this.pose);
    if (posesEqual(before, this.pose)) return false;
    this.pushUndo(before);
    return true;
  }

  pushUndo(before) {
    this.undoStack.push(before);
    if (this.undoStack.length > this.historyLimit) this.undoStack.shift();
    this.redoStack = [];
  }

  undo() {
    if (!this.canUndo) return false;
    this.redoStack.push(this.pose);
    this.pose = this.undoStack.pop();
    this.fixSelection();
    return true;
  }

  redo() {
    if (!this.canRedo) return false;
    this.undoStack.push(this.pose);
    this.pose = this.redoStack.pop();
    this.fixSelection();
    return true;
  }

  /** Show another pose (e.g. another frame of the timeline): a fresh history, the selection kept if valid. */
  reset(pose) {
    this.pose = clonePose(pose);
    this.undoStack = [];
    this.redoStack = [];
    this.dragStart = null;
    this.fixSelection();
  }

  /** Drop a selection that no longer points at an existing person. */
  fixSelection() {
    if (this.selection && this.selection.person >= this.pose.people.length) this.selection = null;
  }

  /** Replace the whole pose (e.g. "Load from input") as one undoable step. */
  setPose(pose) {
    const changed = this.edit((current) => Object.assign(current, clonePose(pose)));
    this.fixSelection();
    return changed;
  }

  /**
   * The joint nearest to (x, y) within radius (canvas pixels), absent joints excepted, or null. Later people
   * are drawn on top, so on equal distance the later person wins.
   */
  hitTest(x, y, radius) {
    let best = null;
    this.pose.people.forEach((person, p) => {
      person.forEach((joint, j) => {
        if (isAbsent(joint)) return;
        const distance = Math.hypot(joint[0] - x, joint[1] - y);
        if (distance <= radius && (!best || distance <= best.distance))
          best = { person: p, joint: j, distance };
      });
    });
    return best && { person: best.person, joint: best.joint };
  }

  select(hit) {
    this.selection = hit ? { person: hit.person, joint: hit.joint } : null;
  }

  /** Select the joint hit and start dragging it; returns false (selection cleared) when hit is null. */
  beginDrag(hit) {
    this.select(hit);
    if (!hit) return false;
    this.dragStart = clonePose(this.pose);
    return true;
  }

  /** Move the dragged joint to (x, y), clipped to the canvas' pixels (as the node clips edits). */
  dragTo(x, y) {
    if (!this.dragStart) return;
    const { person, joint } = this.selection;
    const target = this.pose.people[person][joint];
    target[0] = clamp(x, 0, this.pose.width - 1);
    target[1] = clamp(y, 0, this.pose.height - 1);
  }

  /** Finish the drag: one undo step if the joint moved. */
  endDrag() {
    if (!this.dragStart) return false;
    const before = this.dragStart;
    this.dragStart = null;
    if (posesEqual(before, this.pose)) return false;
    this.pushUndo(before);
    return true;
  }

  /** Move one joint to (x, y), clipped to the canvas, as one step. */
  moveJoint(person, joint, x, y) {
    return this.edit((pose) => {
      const target = pose.people[person][joint];
      target[0] = clamp(x, 0, pose.width - 1);
      target[1] = clamp(y, 0, pose.height - 1);
    });
  }

  /** Add the default person, shifted sideways so it does not cover earlier ones; selects its nose. */
  addPerson() {
    const { width, height } = this.pose;
    const count = this.pose.people.length;
    const side = ((count + 1) >> 1) * (count % 2 ? 1 : -1); // 0, +1, -1, +2, -2, ...
    this.edit((pose) =>
      pose.people.push(defaultPerson(this.spec, width, height, width * (0.5 + 0.15 * side))),
    );
    this.selection = { person: this.pose.people.length - 1, joint: 0 };
  }

  /** Delete a person (default: the selected one). */
  deletePerson(person = this.selection?.person) {
    if (person === undefined || person >= this.pose.people.length) return false;
    const changed = this.edit((pose) => pose.people.splice(person, 1));
    this.selection = null;
    return changed;
  }

  /**
   * Hide a drawn joint (confidence 0, position kept) or show a hidden one (confidence 1, moved onto the
   * canvas if it lies off it); an absent joint is shown where estimateJoint puts it. Default: the selection.
   */
  toggleJoint(person = this.selection?.person, joint = this.selection?.joint) {
    if (person === undefined || joint === undefined) return false;
    return this.edit((pose) => {
      const target = pose.people[person][joint];
      if (target[2] > this.spec.visibility_threshold) {
        target[2] = 0;
        return;
      }
      if (isAbsent(target))
        target.splice(0, 2, ...estimateJoint(this.spec, pose, pose.people[person], joint));
      target.splice(0, 3, clamp(target[0], 0, pose.width - 1), clamp(target[1], 0, pose.height - 1), 1);
    });
  }

  /** Mirror left-right as PoseKeypoints.flip_horizontal: x -> width - 1 - x, left/right joints swapped. */
  mirror() {
    return this.edit((pose) => {
      mapJoints(pose, (x, y) => [pose.width - 1 - x, y]);
      swapPairs(pose, this.spec.flip_pairs);
    });
  }

  /** Swap left and right labels without moving anything: a front view becomes a back view and back. */
  turnAround() {
    return this.edit((pose) => swapPairs(pose, this.spec.flip_pairs));
  }

  /**
   * Scale (aspect kept) and centre everyone so the box around the drawn joints fills the canvas up to
   * margin (a fraction of each side). Hidden joints move along.
   */
  fitToCanvas(margin = 0.05) {
    const drawn = this.pose.people.flat().filter((joint) => isVisible(joint, this.pose, this.spec));
    if (drawn.length === 0) return false;
    const xs = drawn.map(([x]) => x);
    const ys = drawn.map(([, y]) => y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const { width, height } = this.pose;
    const scale = Math.min(
      ((width - 1) * (1 - 2 * margin)) / Math.max(x1 - x0, 1e-6),
      ((height - 1) * (1 - 2 * margin)) / Math.max(y1 - y0, 1e-6),
    );
    const [cx, cy] = [(x0 + x1) / 2, (y0 + y1) / 2];
    return this.edit((pose) =>
      mapJoints(pose, (x, y) => [
        clamp((width - 1) / 2 + (x - cx) * scale, 0, width - 1),
        clamp((height - 1) / 2 + (y - cy) * scale, 0, height - 1),
      ]),
    );
  }
}
