"""``OpenPoseExtract``: images -> Stable-Pose pose images (COCO-17, HumanSD colours) + ``POSE_KEYPOINT``.

Thin ComfyUI wrapper around ``stablepose_core.detect.backends`` (detection) and ``stablepose_core.poses.skeleton``
(drawing). Detector weights are looked up, never downloaded, in ``models/pose_detectors`` (settable in
``extra_model_paths.yaml`` as ``pose_detectors``), in the folder given by ``AUX_ANNOTATOR_CKPTS_PATH`` and in
``custom_nodes/comfyui_controlnet_aux*/ckpts``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
import torch

from ..stablepose_core.detect.backends import LEGACY_BACKENDS, backend_statuses, create_detector
from ..stablepose_core.detect.batches import FRAME_BATCH
from ..stablepose_core.poses.keypoints import PoseKeypoints, pose_keypoint_frames
from ..stablepose_core.poses.sequence import without_absent_people
from ..stablepose_core.poses.skeleton import MAX_PEOPLE, render_pose
from ..stablepose_core.poses.smoothing import smooth_poses
from ..stablepose_core.poses.tracking import track_people as track
from .pose_sequence import smoothing_inputs

log = logging.getLogger("stable_pose")

WEIGHTS_FOLDER = "pose_detectors"
NO_BACKEND = "none available (see tooltip)"
FIT_MODES = ("stretch", "fit")


def _register_weights_folder() -> None:
    # is_default=False: a pose_detectors path from extra_model_paths.yaml stays the first one searched
    folder_paths.add_model_folder_path(WEIGHTS_FOLDER, os.path.join(folder_paths.models_dir, WEIGHTS_FOLDER), False)


def weight_roots() -> list[str]:
    """Folders searched for detector weights, in order."""
    roots = list(folder_paths.get_folder_paths(WEIGHTS_FOLDER))
    if os.environ.get("AUX_ANNOTATOR_CKPTS_PATH"):
        roots.append(os.environ["AUX_ANNOTATOR_CKPTS_PATH"])
    for custom_nodes in folder_paths.get_folder_paths("custom_nodes"):
        if os.path.isdir(custom_nodes):
            roots += [
                os.path.join(custom_nodes, entry, "ckpts")
                for entry in sorted(os.listdir(custom_nodes))
                if entry.lower().startswith("comfyui_controlnet_aux")
            ]
    return roots


def to_uint8_rgb(frame: torch.Tensor) -> np.ndarray:
    """One ComfyUI image (H, W, C) float [0, 1] -> uint8 RGB."""
    pixels = (frame.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


def backend_input() -> tuple[list[str], dict]:
    """The ``backend`` combo: the detectors that can run here (first = default), the tooltip says how to enable
    the others."""
    statuses = backend_statuses(weight_roots())
    names = [status.name for status in statuses if status.available] or [NO_BACKEND]
    tooltip = "Pose detector; each runs offline, on batches of frames. " + "; ".join(
        f"{status.name}: {'ready' if status.available else 'unavailable'} ({status.detail})" for status in statuses
    )
    return names, {"default": names[0], "tooltip": tooltip}


def given_poses(
    pose_keypoint: Any, batch: int, width: int, height: int, fit: str = "stretch", name: str = "pose_keypoint"
) -> list[PoseKeypoints]:
    """``POSE_KEYPOINT`` (one frame for all images, or one per image; one image may take several frames) on a
    ``width`` × ``height`` canvas each: stretched, fitted (letterbox) or centre-cropped (``fit``: "stretch", "fit",
    "crop") onto it. ``name`` is the input's name in error messages."""
    frames = pose_keypoint_frames(pose_keypoint)
    if len(frames) != batch and 1 not in (len(frames), batch):
        raise ValueError(
            f"{name} has {len(frames)} frames but image has {batch}: give one frame, one image, "
            "or as many frames as images"
        )
    place = {
        "stretch": PoseKeypoints.scale_to,
        "fit": PoseKeypoints.fit_to_canvas,
        "crop": PoseKeypoints.crop_to_canvas,
    }
    poses = []
    for index in range(max(len(frames), batch)):
        pose = PoseKeypoints.from_pose_keypoint(frames[index % len(frames)], default_size=(width, height))
        poses.append(place[fit](pose, width, height))
    return poses


def detect_poses(image: torch.Tensor, backend: str) -> list[PoseKeypoints]:
    """Run ``backend`` on a ComfyUI batch, handing it :data:`FRAME_BATCH` images at a time (BlazePose runs them
    through each network at once, DWPose in its device's batches), on ComfyUI's device (float16 where ComfyUI would
    use it), with ComfyUI's progress bar and interruption between batches."""
    if backend == NO_BACKEND:
        statuses = backend_statuses(weight_roots())
        raise RuntimeError(
            "no pose detector can run; connect a pose_keypoint input or enable one: "
            + "; ".join(f"{status.name}: {status.detail}" for status in statuses)
        )
    device = comfy.model_management.get_torch_device()
    half = comfy.model_management.should_use_fp16(device)
    detector = create_detector(backend, weight_roots(), str(device), half)
    progress = comfy.utils.ProgressBar(image.shape[0])
    poses = []
    try:
        for frames in image.split(FRAME_BATCH):
            comfy.model_management.throw_exception_if_processing_interrupted()
            poses += detector.detect([to_uint8_rgb(frame) for frame in frames])
            progress.update(len(frames))
    finally:
        detector.close()
    return poses


class OpenPoseExtract:
    """Detect (or take) COCO-17 poses and draw them as Stable-Pose was trained to see them."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to detect people in; the pose images get their size."}),
                "backend": backend_input(),
            },
            "optional": {
                "fit": (
                    list(FIT_MODES),
                    {
                        "default": "stretch",
                        "tooltip": "For a pose_keypoint input whose canvas has another aspect ratio than the image: "
                        "stretch it onto the image, or fit it (scale uniformly and centre).",
                    },
                ),
                "pose_keypoint": (
                    "POSE_KEYPOINT",
                    {
                        "tooltip": "Render these poses (OpenPose/DWPose JSON of comfyui_controlnet_aux or a file) "
                        "instead of detecting. One frame for all images, or one per image."
                    },
                ),
                "track_people": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Video: give each person one identity across frames (person k is the same in "
                        "every output frame; frames where someone is missed hold an empty slot).",
                    },
                ),
                "smooth": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Video: remove detector jitter (tracks people first, then a One-Euro filter per "
                        "joint with the settings below; short gaps filled).",
                    },
                ),
                **smoothing_inputs(),
            },
        }

    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("pose_image", "pose_keypoint")
    OUTPUT_TOOLTIPS = (
        "Stable-Pose pose images (COCO-17 limbs in HumanSD colours on black), the image's size.",
        "The poses as OpenPose BODY-18 JSON frames, pixel coordinates; blazepose adds each person's 3D joints in "
        "metres (pose_keypoints_3d), without tracking or smoothing.",
    )
    FUNCTION = "extract"
    CATEGORY = "Stable-Pose/pose"
    DESCRIPTION = (
        "Finds people in images (or takes POSE_KEYPOINT from other packs) and draws their COCO-17 skeleton in "
        "the colours Stable-Pose was trained on (not ControlNet's OpenPose colours), whatever the detector."
    )

    @classmethod
    def VALIDATE_INPUTS(cls, backend: str) -> bool | str:
        """Accept the runnable backends and earlier releases' names of them (saved workflows say "mediapipe")."""
        names = {status.name for status in backend_statuses(weight_roots()) if status.available} | {NO_BACKEND}
        if LEGACY_BACKENDS.get(backend, backend) in names:
            return True
        return f"pose backend {backend!r} cannot run here; choose one of {sorted(names - {NO_BACKEND})}"

    def extract(
        self,
        image: torch.Tensor,
        backend: str,
        fit: str = "stretch",
        pose_keypoint: Any = None,
        track_people: bool = False,
        smooth: bool = False,
        **smoothing: Any,
    ) -> tuple[torch.Tensor, list[dict]]:
        if fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
        if image.ndim != 4 or image.shape[0] == 0:
            raise ValueError(f"image must be a batch of at least one image, got shape {tuple(image.shape)}")
        height, width = int(image.shape[1]), int(image.shape[2])
        if pose_keypoint is not None:
            poses = given_poses(pose_keypoint, image.shape[0], width, height, fit)
        else:
            poses = detect_poses(image, backend)
        if track_people or smooth:
            sequence = track(poses)
            poses = (smooth_poses(sequence, **smoothing) if smooth else sequence).poses()
        self._warn_about(poses)
        pose_images = np.stack([render_pose(without_absent_people(pose)) for pose in poses])
        return torch.from_numpy(pose_images).float() / 255.0, [pose.to_pose_keypoint() for pose in poses]

    @staticmethod
    def _warn_about(poses: list[PoseKeypoints]) -> None:
        empty = [index for index, pose in enumerate(poses) if not pose.visible.any()]
        if empty:
            log.warning("Stable-Pose: no person found in frame(s) %s: their pose images are black", empty)
        crowded = [index for index, pose in enumerate(poses) if without_absent_people(pose).num_people > MAX_PEOPLE]
        if crowded:
            log.warning(
                "Stable-Pose: frame(s) %s have more than %d people; only the first %d are drawn (as in training)",
                crowded,
                MAX_PEOPLE,
                MAX_PEOPLE,
            )


_register_weights_folder()

NODE_CLASS_MAPPINGS = {"OpenPoseExtract": OpenPoseExtract}
NODE_DISPLAY_NAME_MAPPINGS = {"OpenPoseExtract": "Extract Poses (Stable-Pose)"}
