"""Pose detectors: RGB image -> COCO-17 :class:`PoseKeypoints` in the image's pixels.

Backends (none downloads anything; each is offered only when it can run):

* ``blazepose`` (default): MediaPipe's BlazePose (full) networks shipped with the pack and run in PyTorch
  (:mod:`.blazepose`), one person, BlazePose-33 mapped to COCO-17 with each landmark's visibility as confidence,
  and its world landmarks as the pose's 3D points (:attr:`PoseKeypoints.world`).
  Works on every Python ComfyUI runs on, needs no extra package. ``mediapipe``, its name before the pack
  embedded the networks, is accepted for saved workflows and gives the same detector.
* ``openpose``: controlnet_aux's OpenPose body estimator (multi-person) from a local ``body_pose_model.pth``,
  loaded by controlnet_aux's own ``Body`` class; joints keep their heat-map peak score.
* ``dwpose``: DWPose (multi-person) from local YOLOX + DWPose ONNX files (``yolox_l.onnx`` +
  ``dw-ll_ucoco_384.onnx``, or the smaller variants of :data:`.dwpose.DETECTOR_FILES` / :data:`.dwpose.POSE_FILES`)
  converted to PyTorch (:mod:`.onnx_torch`) and run in batches on the given device, float16 where asked.
* ``dwpose-onnxruntime``: the same files and pipeline with the networks in onnxruntime (the user's onnxruntime or
  onnxruntime-gpu), offered only where it is installed. controlnet_aux 0.0.10's own ``DWposeDetector`` needs
  mmcv/mmdet/mmpose and ``.pth`` files instead, so the pack runs the ONNX files comfyui_controlnet_aux downloads.

Weights are searched under *roots* (folders the caller chooses: ComfyUI's model folders, comfyui_controlnet_aux's
``ckpts``), directly or in the layouts those tools use (:data:`DWPOSE_SUBFOLDERS`, :data:`OPENPOSE_SUBFOLDERS`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..poses.formats import to_coco17
from ..poses.keypoints import PoseKeypoints
from .blazepose import DETECTOR_STEM, LANDMARK_STEM, MODEL_DIR, BlazePose
from .dwpose import DETECTOR_FILES, POSE_FILES, dwpose_detector, rgb_uint8
from .tflite_graph import shard_paths

BLAZEPOSE = "blazepose"
OPENPOSE = "openpose"
DWPOSE = "dwpose"
DWPOSE_ONNXRUNTIME = "dwpose-onnxruntime"

OPENPOSE_FILE = "body_pose_model.pth"
# Where ControlNet / controlnet_aux / comfyui_controlnet_aux keep it below a checkpoints root
# (comfyui_controlnet_aux: ckpts/<hub repo>/<file>).
OPENPOSE_SUBFOLDERS = ("", "lllyasviel/Annotators", "lllyasviel/ControlNet/annotator/ckpts", "annotator/ckpts")
# comfyui_controlnet_aux: ckpts/yzd-v/DWPose/ (yolox_l, dw-ll_ucoco_384), hr16/yolox-onnx/, hr16/UnJIT-DWPose/
DWPOSE_SUBFOLDERS = ("", "yzd-v/DWPose", "hr16/yolox-onnx", "hr16/UnJIT-DWPose")
# Backend names of earlier releases, still accepted (saved workflows, training scripts) -> today's name.
LEGACY_BACKENDS = {"mediapipe": BLAZEPOSE}


class PoseDetector(Protocol):
    """Detects the people of images; ``close()`` frees the model."""

    def __call__(self, image: np.ndarray) -> PoseKeypoints: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[PoseKeypoints]:
        """The people of each image; batched where the backend can (each network called once per batch)."""
        ...

    def close(self) -> None: ...


class BlazePoseDetector:
    """The embedded BlazePose (single person, :mod:`.blazepose`) as a :class:`PoseDetector`."""

    def __init__(self, device: str = "cpu") -> None:
        self._model: BlazePose | None = BlazePose(device)

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        return self.detect([image])[0]

    def detect(self, images: Sequence[np.ndarray]) -> list[PoseKeypoints]:
        images = [rgb_uint8(image) for image in images]
        return [
            _blazepose_keypoints(image, landmarks)
            for image, landmarks in zip(images, self._model.detect(images), strict=True)
        ]

    def close(self) -> None:
        self._model = None


def _blazepose_keypoints(image: np.ndarray, landmarks: np.ndarray | None) -> PoseKeypoints:
    """BlazePose's (33, 6) landmarks (or None) -> one person's COCO-17 joints and world joints (x, y, z metres, c)."""
    height, width = image.shape[:2]
    if landmarks is None:
        return PoseKeypoints.empty(width, height)
    world = np.concatenate([landmarks[:, 3:], landmarks[:, 2:3]], axis=1)  # x, y, z (metres), visibility
    return PoseKeypoints(
        to_coco17(landmarks[None, :, :3], "blazepose33"), width, height, to_coco17(world[None], "blazepose33")
    )


class OpenPoseBodyDetector:
    """controlnet_aux's OpenPose body model (BODY-18, multi-person), people ordered by total score."""

    def __init__(self, weights: str | os.PathLike, device: str = "cpu") -> None:
        from controlnet_aux.open_pose.body import Body

        self._body = Body(str(weights)).to(device)

    def detect(self, images: Sequence[np.ndarray]) -> list[PoseKeypoints]:
        """One image at a time: controlnet_aux's ``Body`` takes one."""
        return [self(image) for image in images]

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        image = rgb_uint8(image)
        candidate, subset = self._body(np.ascontiguousarray(image[:, :, ::-1]))  # Body expects BGR
        bodies = self._body.format_body_result(candidate, subset)
        return bodies_to_keypoints(bodies, image.shape[1], image.shape[0])

    def close(self) -> None:
        del self._body


def bodies_to_keypoints(bodies: Sequence, width: int, height: int) -> PoseKeypoints:
    """controlnet_aux ``BodyResult`` list (BODY-18 ``Keypoint`` or None, pixels) -> COCO-17, best score first."""
    bodies = sorted(bodies, key=lambda body: -body.total_score)
    points = np.zeros((len(bodies), 18, 3), np.float32)
    for person, body in enumerate(bodies):
        for joint, keypoint in enumerate(body.keypoints):
            if keypoint is not None:
                points[person, joint] = (keypoint.x, keypoint.y, keypoint.score)
    return PoseKeypoints(to_coco17(points, "openpose18"), width, height)


def find_weights(filename: str, roots: Sequence[str | os.PathLike], subfolders: Sequence[str]) -> Path | None:
    """First existing ``root/subfolder/filename``, roots in order, subfolders in order."""
    for root in roots:
        for subfolder in subfolders:
            candidate = Path(root, subfolder, filename)
            if candidate.is_file():
                return candidate
    return None


@dataclass(frozen=True)
class BackendStatus:
    """A backend, whether it can run, and the weights it uses or how to make it runnable."""

    name: str
    available: bool
    detail: str
    create: Callable[[str, bool], PoseDetector] | None = None  # (device, half) -> detector, when available


def _blazepose_status() -> BackendStatus:
    try:
        for stem in (DETECTOR_STEM, LANDMARK_STEM):
            shard_paths(MODEL_DIR, stem)
    except FileNotFoundError as error:
        return BackendStatus(BLAZEPOSE, False, f"{error}")
    detail = "BlazePose, 1 person, built in, PyTorch on ComfyUI's device"
    return BackendStatus(BLAZEPOSE, True, detail, lambda device, half: BlazePoseDetector(device))


def _put_in(files: str, roots: Sequence[str | os.PathLike]) -> str:
    folders = ", ".join(str(Path(root)) for root in roots) or "(no folder configured)"
    return f"put {files} in one of: {folders}"


def _openpose_status(roots: Sequence[str | os.PathLike]) -> BackendStatus:
    how = _put_in(f"{OPENPOSE_FILE} (hub repo lllyasviel/Annotators)", roots)
    if importlib.util.find_spec("controlnet_aux") is None:
        return BackendStatus(OPENPOSE, False, f"pip install controlnet_aux, then {how}")
    weights = find_weights(OPENPOSE_FILE, roots, OPENPOSE_SUBFOLDERS)
    if weights is None:
        return BackendStatus(OPENPOSE, False, how)
    return BackendStatus(
        OPENPOSE, True, f"multi-person, {weights}", lambda device, half: OpenPoseBodyDetector(weights, device)
    )


def find_first(filenames: Sequence[str], roots: Sequence[str | os.PathLike], subfolders: Sequence[str]) -> Path | None:
    """:func:`find_weights` of the first of ``filenames`` (best first) found anywhere."""
    return next(filter(None, (find_weights(name, roots, subfolders) for name in filenames)), None)


def _dwpose_status(roots: Sequence[str | os.PathLike], name: str, package: str, runs: str) -> BackendStatus:
    """``dwpose`` (``package`` onnx2torch) or ``dwpose-onnxruntime`` (onnxruntime): the files and the package."""
    how = _put_in(f"{DETECTOR_FILES[0]} and {POSE_FILES[0]} (hub repo yzd-v/DWPose)", roots)
    if importlib.util.find_spec(package) is None:
        install = "onnx onnx2torch" if package == "onnx2torch" else "onnxruntime-gpu (or onnxruntime)"
        return BackendStatus(name, False, f"pip install {install}, then {how}")
    detector, pose = (find_first(files, roots, DWPOSE_SUBFOLDERS) for files in (DETECTOR_FILES, POSE_FILES))
    if detector is None or pose is None:
        return BackendStatus(name, False, how)
    runtime = "torch" if package == "onnx2torch" else "onnxruntime"

    def create(device: str, half: bool) -> PoseDetector:
        return dwpose_detector(detector, pose, device, runtime, torch.float16 if half else torch.float32)

    return BackendStatus(name, True, f"multi-person, {runs}, {detector.name} + {pose.name} in {pose.parent}", create)


def backend_statuses(roots: Sequence[str | os.PathLike]) -> list[BackendStatus]:
    """Every backend with its status, in order of preference (the first available one is the default)."""
    return [
        _blazepose_status(),
        _dwpose_status(roots, DWPOSE, "onnx2torch", "PyTorch on ComfyUI's device (float16 on GPUs)"),
        _dwpose_status(roots, DWPOSE_ONNXRUNTIME, "onnxruntime", "onnxruntime (CUDA with onnxruntime-gpu)"),
        _openpose_status(roots),
    ]


def create_detector(
    name: str, roots: Sequence[str | os.PathLike], device: str = "cpu", half: bool = False
) -> PoseDetector:
    """Build backend ``name`` (or a legacy name of it) on ``device``, in float16 where ``half`` and the backend
    supports it; a clear error says how to enable it when it cannot run."""
    name = LEGACY_BACKENDS.get(name, name)
    for status in backend_statuses(roots):
        if status.name == name:
            if status.create is None:
                raise RuntimeError(f"pose backend {name!r} is not available: {status.detail}")
            return status.create(device, half)
    raise ValueError(f"unknown pose backend {name!r}")
