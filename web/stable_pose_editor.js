// ComfyUI extension of the Stable-Pose pack: the "Open pose editor" button of the StablePoseEditor node.
//
// The node's pose_json widget holds the edit and is hidden: one pose (a PoseKeypoints.to_json document) or,
// once the clip has more than one frame, the timeline's keyframe document (stablepose_core/poses/keyframes.py).
// The editor writes it, so saving or copying the node and queuing the prompt all carry the edit. After a run
// the node sends its input poses (every frame), a background preview and its canvas size (UI output
// seed_pose/background/canvas), which feed the timeline's input frames, "Load from input" and the background.
// The timeline's in-betweens come from the pack's POST /stable_pose/interpolate: the node's own function. Only `app` and `api` of ComfyUI's frontend are used,
// imported from the module paths that ComfyUI 0.3.x and 0.8.x frontends both serve.

import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import { openPoseEditor } from "./pose_editor.js";
import { hideOffCanvas, parsePose, poseOnCanvas, serializePose } from "./pose_model.js";
import { Timeline } from "./pose_timeline.js";

const NODE_TYPE = "StablePoseEditor";
const POSE_WIDGET = "pose_json";

const findWidget = (node, name) => node.widgets?.find((widget) => widget.name === name);

function notify(message) {
  const toast = app.extensionManager?.toast;
  if (toast) toast.add({ severity: "error", summary: "Edit Poses (Stable-Pose)", detail: message, life: 8000 });
  else window.alert(`Edit Poses (Stable-Pose): ${message}`);
}

async function fetchSpec(size) {
  const query = size ? `?width=${size[0]}&height=${size[1]}` : "";
  const response = await api.fetchApi(`/stable_pose/skeleton_spec${query}`);
  if (!response.ok) throw new Error(`the server did not send the skeleton (HTTP ${response.status})`);
  return response.json();
}

function loadImage(file) {
  const query = new URLSearchParams({
    filename: file.filename,
    subfolder: file.subfolder ?? "",
    type: file.type,
  });
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => resolve(null); // e.g. the temp folder was cleared by a restart: edit without it
    image.src = api.apiURL(`/view?${query}`);
  });
}

async function interpolate(document) {
  const response = await api.fetchApi(`/stable_pose/interpolate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(document),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error ?? `HTTP ${response.status}`);
  return answer.frames;
}

/** Width and height of a stored pose document without validating it, or null. */
function storedSize(text) {
  try {
    const { width, height } = JSON.parse(text);
    return Number.isInteger(width) && Number.isInteger(height) ? [width, height] : null;
  } catch {
    return null;
  }
}

/**
 * The node's canvas, as the node resolves it: a non-zero width/height widget, else the canvas of its last
 * run (input pose, else background, else edit), else the stored edit's, else the spec's default (null here).
 */
function canvasSize(node, text) {
  const known = node.stablePoseInput?.canvas ?? storedSize(text);
  const width = findWidget(node, "width")?.value || known?.[0];
  const height = findWidget(node, "height")?.value || known?.[1];
  return width && height ? [width, height] : null;
}

/** A pose document on the node's canvas, with joints off the canvas hidden; counts them into notes. */
function loadPose(text, spec, [width, height], notes, what) {
  const { pose, count } = hideOffCanvas(poseOnCanvas(parsePose(text, spec), width, height), spec);
  if (count) notes.push(`${count} joint(s) of the ${what} lie off the canvas and are hidden`);
  return pose;
}

/** The stored edit as a timeline on the node's canvas: keyframes, one pose (one frame), or none yet. */
function storedTimeline(text, spec, size, inputFrames, notes) {
  const [width, height] = size;
  const empty = new Timeline({ width, height, frameCount: Math.max(1, inputFrames.length), inputFrames });
  if (!text.trim()) return empty;
  try {
    const data = JSON.parse(text);
    if (data?.format !== spec.keyframes_format) {
      const timeline = new Timeline({ width, height, inputFrames });
      timeline.setKey(0, loadPose(text, spec, size, notes, "stored pose"));
      return timeline;
    }
    if (!Array.isArray(data.keys)) throw new Error('"keys" must be a list');
    const timeline = new Timeline({ width, height, frameCount: data.frames, curve: data.curve, inputFrames });
    for (const { frame, people } of data.keys) {
      const key = JSON.stringify({ format: spec.format, width: data.width, height: data.height, people });
      timeline.setKey(frame, loadPose(key, spec, size, notes, `key at frame ${frame}`));
    }
    return timeline;
  } catch (error) {
    notes.push(`the stored pose could not be read (${error.message}); Apply replaces it`);
    return empty;
  }
}

async function openEditor(node) {
  const poseWidget = findWidget(node, POSE_WIDGET);
  const text = poseWidget.value ?? "";
  const spec = await fetchSpec(canvasSize(node, text));
  const size = canvasSize(node, text) ?? spec.default_size;
  const input = node.stablePoseInput;
  const notes = [];
  const inputNotes = [];
  const inputFrames = (input?.seeds ?? []).map((seed) => loadPose(seed, spec, size, inputNotes, "input pose"));
  if (inputNotes.length === 1) notes.push(inputNotes[0]);
  else if (inputNotes.length > 1) notes.push(`joints of ${inputNotes.length} input frames lie off the canvas and are hidden`);
  const timeline = storedTimeline(text, spec, size, inputFrames, notes);
  const background = input?.background ? await loadImage(input.background) : null;
  openPoseEditor({
    spec,
    timeline,
    interpolate,
    background,
    notice: notes.join("; "),
    onApply({ pose, timeline: edited }) {
      if (edited.frameCount === 1) poseWidget.value = serializePose(pose, spec);
      else if (edited.keys.size === 0) poseWidget.value = ""; // unedited input clip: it passes through
      else poseWidget.value = JSON.stringify(edited.document(spec));
      poseWidget.callback?.(poseWidget.value);
      node.setDirtyCanvas(true, true);
    },
  });
}

function setUpNode(node) {
  const poseWidget = findWidget(node, POSE_WIDGET);
  if (!poseWidget) return;
  poseWidget.hidden = true; // litegraph: not drawn, no input socket label
  poseWidget.computeSize = () => [0, -4]; // litegraph: no room taken (its layout counts hidden widgets)
  poseWidget.options = { ...poseWidget.options, hidden: true }; // Vue node renderer
  const button = node.addWidget("button", "Open pose editor", null, () =>
    openEditor(node).catch((error) => notify(error.message)),
  );
  button.serialize = false;
  button.options = { ...button.options, serialize: false };
  const [width, height] = node.computeSize();
  node.setSize([Math.max(node.size[0], width), height]); // without the hidden widget, with the button
}

app.registerExtension({
  name: "StablePose.PoseEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = onNodeCreated?.apply(this, args);
      setUpNode(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output, ...args) {
      onExecuted?.apply(this, [output, ...args]);
      this.stablePoseInput = {
        seeds: output?.seed_pose ?? [],
        background: output?.background?.[0] ?? null,
        canvas: output?.canvas?.length === 2 ? output.canvas : null,
      };
    };
  },
});
