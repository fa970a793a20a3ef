"""Pose-sequence nodes: track, pick people, smooth, interpolate keys, transform, retarget, draw, save, load.

Thin wrappers: each reads ``POSE_KEYPOINT`` into a ``stablepose_core.poses.sequence.PoseSequence``, calls one
core function and writes ``POSE_KEYPOINT`` back (OpenPose BODY-18 frames, pixels; after tracking, person k of
every frame is the same person and absent people are all-zero). Files live only in ComfyUI's output (save)
and input or output (load) folders. Details: ``docs/poses.md``.
"""

from __future__ import annotations

import os
from typing import Any

import folder_paths
import numpy as np
import torch

from ..stablepose_core.poses import smoothing as smoothing
from ..stablepose_core.poses import tracking as tracking
from ..stablepose_core.poses import transforms as transforms
from ..stablepose_core.poses.files import load_pose_keypoint, safe_path, save_pose_keypoint
from ..stablepose_core.poses.interpolation import CURVES, interpolate_keys
from ..stablepose_core.poses.sequence import PoseSequence, without_absent_people
from ..stablepose_core.poses.skeleton import render_pose

CATEGORY = "Stable-Pose/pose sequence"
POSES = ("POSE_KEYPOINT", {"tooltip": "Poses: one frame or a list of frames (comfyui_controlnet_aux format)."})
OUT_TOOLTIP = ("The poses as OpenPose BODY-18 frames, pixel coordinates; person k is the same in every frame.",)
FIT_MODES = ("fit", "stretch", "fill")
LOAD_FOLDERS = ("input", "output")


def _read(pose_keypoint: Any) -> PoseSequence:
    return PoseSequence.from_pose_keypoint(pose_keypoint)


class _SequenceNode:
    RETURN_TYPES = ("POSE_KEYPOINT",)
    RETURN_NAMES = ("pose_keypoint",)
    OUTPUT_TOOLTIPS = OUT_TOOLTIP
    FUNCTION = "run"
    CATEGORY = CATEGORY


class PoseTrackPeople(_SequenceNode):
    DESCRIPTION = "Give each person one identity across frames (OKS matching, Hungarian algorithm)."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": POSES,
                "min_similarity": (
                    "FLOAT",
                    {
                        "default": tracking.DEFAULT_MIN_SIMILARITY,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Keypoint similarity (OKS) a detection needs to continue a person. Higher: "
                        "fewer identity swaps between people close together, but more broken tracks on fast motion.",
                    },
                ),
                "max_missed": (
                    "INT",
                    {
                        "default": tracking.DEFAULT_MAX_MISSED,
                        "min": 0,
                        "max": 1000,
                        "tooltip": "Frames a person may go undetected and keep its identity. Higher: survives longer "
                        "occlusions, but someone new entering there may take over the identity.",
                    },
                ),
            }
        }

    def run(self, pose_keypoint: Any, min_similarity: float, max_missed: int) -> tuple[list[dict]]:
        return (tracking.track_people(_read(pose_keypoint), min_similarity, max_missed).to_pose_keypoint(),)


class PoseSelectPeople(_SequenceNode):
    DESCRIPTION = "Keep one person (by identity) or the n largest people of a tracked pose sequence."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "Tracked poses (Track People first)."}),
                "mode": (
                    ["largest", "person"],
                    {
                        "tooltip": "largest: keep the `count` largest people (mean box area); "
                        "person: keep person number `count`."
                    },
                ),
                "count": (
                    "INT",
                    {
                        "default": 1,
                        "min": 0,
                        "max": 1000,
                        "tooltip": "How many people (largest) or which one (person, 0-based).",
                    },
                ),
            }
        }

    def run(self, pose_keypoint: Any, mode: str, count: int) -> tuple[list[dict]]:
        return (tracking.select_people(_read(pose_keypoint), mode, count).to_pose_keypoint(),)


def smoothing_inputs() -> dict[str, tuple[str, dict[str, Any]]]:
    """The smoother's parameters with tooltips saying what each trades (shared with OpenPoseExtract)."""
    return {
        "min_cutoff": (
            "FLOAT",
            {
                "default": smoothing.DEFAULT_MIN_CUTOFF,
                "min": 0.01,
                "max": 30.0,
                "step": 0.05,
                "tooltip": "One-Euro cutoff (Hz) for still joints. Lower: less jitter when people hold still, but "
                "slow motions are flattened. Higher: keeps fine motion, keeps more jitter.",
            },
        ),
        "beta": (
            "FLOAT",
            {
                "default": smoothing.DEFAULT_BETA,
                "min": 0.0,
                "max": 100.0,
                "step": 0.1,
                "tooltip": "How fast the cutoff rises with speed (per person-height/second). Higher: fast moves "
                "(kicks, swings) are followed closely but jitter during them stays; lower: smoother, fast "
                "moves cut short.",
            },
        ),
        "max_gap": (
            "INT",
            {
                "default": smoothing.DEFAULT_MAX_GAP,
                "min": 0,
                "max": 1000,
                "tooltip": "Missing joints are filled in (linearly) over gaps of at most this many frames; longer "
                "gaps stay missing. Higher: fewer flickering limbs, but invented positions over longer gaps.",
            },
        ),
        "fps": (
            "FLOAT",
            {
                "default": smoothing.DEFAULT_FPS,
                "min": 1.0,
                "max": 240.0,
                "step": 1.0,
                "tooltip": "Frame rate of the clip; min_cutoff and beta are per second.",
            },
        ),
    }


class PoseSmooth(_SequenceNode):
    DESCRIPTION = "Remove detector jitter: confidence-aware One-Euro filter per person and joint, short gaps filled."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "Tracked poses (Track People first)."}),
                **smoothing_inputs(),
            }
        }

    def run(self, pose_keypoint: Any, min_cutoff: float, beta: float, max_gap: int, fps: float) -> tuple[list[dict]]:
        smoothed = smoothing.smooth_poses(_read(pose_keypoint), min_cutoff, beta, max_gap, fps)
        return (smoothed.to_pose_keypoint(),)


def parse_key_frames(text: str, keys: int, frames: int) -> list[int]:
    """Frame numbers from ``"0, 12, 24"``; empty = the keys spread evenly over the clip."""
    if not text.strip():
        if keys == 1:
            return [0]
        return [round(i * (frames - 1) / (keys - 1)) for i in range(keys)]
    try:
        return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"key_frames must be whole frame numbers separated by commas, got {text!r}") from None


class PoseInterpolate(_SequenceNode):
    DESCRIPTION = "Key poses at frame numbers -> a clip of in-between poses (people matched by identity)."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "The key poses, one frame per key, in time order."}),
                "frames": ("INT", {"default": 24, "min": 1, "max": 100000, "tooltip": "Frames in the clip."}),
                "key_frames": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Frame number of each key, e.g. 0, 12, 23 (0-based, increasing). "
                        "Empty: the keys spread evenly from the first to the last frame.",
                    },
                ),
                "curve": (
                    list(CURVES),
                    {"tooltip": "linear: constant speed between keys; ease_in_out: slows into and out of each key."},
                ),
            }
        }

    def run(self, pose_keypoint: Any, frames: int, key_frames: str, curve: str) -> tuple[list[dict]]:
        keys = _read(pose_keypoint)
        at = parse_key_frames(key_frames, keys.num_frames, frames)
        return (interpolate_keys(keys, at, frames, curve).to_pose_keypoint(),)


class PoseTransform(_SequenceNode):
    DESCRIPTION = "Mirror, scale, rotate, move and fit poses onto a canvas (every frame alike)."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        size = {"default": 0, "min": 0, "max": 8192, "step": 1}
        return {
            "required": {
                "pose_keypoint": POSES,
                "mirror": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Mirror left-right, swapping left and right joints."},
                ),
                "scale": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.01,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "Scale about the canvas centre.",
                    },
                ),
                "rotate_degrees": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -360.0,
                        "max": 360.0,
                        "step": 1.0,
                        "tooltip": "Clockwise, about the canvas centre.",
                    },
                ),
                "translate_x": (
                    "FLOAT",
                    {"default": 0.0, "min": -8192.0, "max": 8192.0, "tooltip": "Pixels to the right."},
                ),
                "translate_y": ("FLOAT", {"default": 0.0, "min": -8192.0, "max": 8192.0, "tooltip": "Pixels down."}),
                "width": ("INT", {**size, "tooltip": "New canvas width; 0 keeps it."}),
                "height": ("INT", {**size, "tooltip": "New canvas height; 0 keeps it."}),
                "fit": (
                    list(FIT_MODES),
                    {
                        "tooltip": "Onto a new canvas: fit (uniform scale, centred, whole canvas kept), stretch "
                        "(x and y scaled separately) or fill (uniform scale, centred, canvas covered)."
                    },
                ),
            }
        }

    def run(
        self,
        pose_keypoint: Any,
        mirror: bool,
        scale: float,
        rotate_degrees: float,
        translate_x: float,
        translate_y: float,
        width: int,
        height: int,
        fit: str,
    ) -> tuple[list[dict]]:
        sequence = _read(pose_keypoint)
        if mirror:
            sequence = transforms.mirror(sequence)
        sequence = transforms.rotate(transforms.scale(sequence, scale), rotate_degrees)
        sequence = transforms.translate(sequence, translate_x, translate_y)
        if width or height:
            sequence = transforms.fit_to_canvas(sequence, width or sequence.width, height or sequence.height, fit)
        return (sequence.to_pose_keypoint(),)


class PoseRetarget(_SequenceNode):
    DESCRIPTION = "Keep the motion, change the body: every limb gets a reference person's length, angles kept."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "The motion to retarget (every person, every frame)."}),
                "reference": ("POSE_KEYPOINT", {"tooltip": "Poses holding the body whose limb lengths to use."}),
                "reference_frame": (
                    "INT",
                    {"default": 0, "min": 0, "max": 100000, "tooltip": "Frame of the reference."},
                ),
                "reference_person": (
                    "INT",
                    {"default": 0, "min": 0, "max": 1000, "tooltip": "Person (0-based) in it."},
                ),
            }
        }

    def run(self, pose_keypoint: Any, reference: Any, reference_frame: int, reference_person: int) -> tuple[list[dict]]:
        body = _read(reference)
        if reference_frame >= body.num_frames or reference_person >= body.num_people:
            raise ValueError(
                f"reference frame {reference_frame}, person {reference_person} does not exist: the reference has "
                f"{body.num_frames} frame(s) and {body.num_people} person slot(s) (both 0-based)"
            )
        person = body.keypoints[reference_frame, reference_person]
        return (transforms.retarget(_read(pose_keypoint), person).to_pose_keypoint(),)


class PoseDraw:
    DESCRIPTION = "Draw poses as Stable-Pose was trained to see them (COCO-17, HumanSD colours), one image per frame."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("pose_image",)
    OUTPUT_TOOLTIPS = ("One pose image per frame, for Apply Adapter (Stable-Pose).",)
    FUNCTION = "run"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        size = {"default": 0, "min": 0, "max": 8192, "step": 1}
        return {
            "required": {
                "pose_keypoint": POSES,
                "width": ("INT", {**size, "tooltip": "Image width; 0 = the poses' canvas (or kept aspect)."}),
                "height": ("INT", {**size, "tooltip": "Image height; 0 = the poses' canvas (or kept aspect)."}),
            }
        }

    def run(self, pose_keypoint: Any, width: int, height: int) -> tuple[torch.Tensor]:
        poses = _read(pose_keypoint).poses()
        images = [render_pose(without_absent_people(pose), width or None, height or None) for pose in poses]
        return (torch.from_numpy(np.stack(images)).float() / 255.0,)


class PoseSaveJSON:
    DESCRIPTION = "Save poses as JSON (comfyui_controlnet_aux layout) in ComfyUI's output folder."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "Stable-Pose/files"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pose_keypoint": POSES,
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "poses/pose",
                        "tooltip": "Name inside the output folder, '/' for subfolders; a counter is added "
                        "(pose_00001.json). Letters, digits, space, '.', '_', '-' only; nothing outside the folder.",
                    },
                ),
                "per_frame": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Off: one file holding every frame. On: a folder <prefix>_<counter> with one "
                        "file per frame.",
                    },
                ),
            }
        }

    def run(self, pose_keypoint: Any, filename_prefix: str, per_frame: bool) -> dict[str, Any]:
        root = folder_paths.get_output_directory()
        paths = save_pose_keypoint(pose_keypoint, root, filename_prefix, per_frame)
        names = [os.path.relpath(path, root).replace(os.sep, "/") for path in paths]
        return {"ui": {"text": names[:1] if not per_frame else [os.path.dirname(names[0])]}}


class PoseLoadJSON(_SequenceNode):
    DESCRIPTION = "Load poses saved as JSON (this pack's or comfyui_controlnet_aux's files) from input or output."
    CATEGORY = "Stable-Pose/files"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "folder": (list(LOAD_FOLDERS), {"tooltip": "ComfyUI folder to read from."}),
                "name": (
                    "STRING",
                    {
                        "default": "poses/pose_00001.json",
                        "tooltip": "File (all frames) or folder (one file per frame, read in name order) inside "
                        "the chosen folder.",
                    },
                ),
            }
        }

    @staticmethod
    def _root(folder: str) -> str:
        if folder not in LOAD_FOLDERS:
            raise ValueError(f"folder must be one of {LOAD_FOLDERS}, got {folder!r}")
        return folder_paths.get_input_directory() if folder == "input" else folder_paths.get_output_directory()

    @classmethod
    def IS_CHANGED(cls, folder: str, name: str) -> str:
        try:
            path = safe_path(cls._root(folder), name)
            files = sorted(path.iterdir()) if path.is_dir() else [path]
            return ";".join(f"{file.name}:{file.stat().st_mtime_ns}" for file in files)
        except (OSError, ValueError):
            return ""

    def run(self, folder: str, name: str) -> tuple[list[dict]]:
        return (load_pose_keypoint(self._root(folder), name),)


NODE_CLASS_MAPPINGS = {
    "StablePoseTrackPeople": PoseTrackPeople,
    "StablePoseSelectPeople": PoseSelectPeople,
    "StablePoseSmooth": PoseSmooth,
    "StablePoseInterpolate": PoseInterpolate,
    "StablePoseTransform": PoseTransform,
    "StablePoseRetarget": PoseRetarget,
    "StablePoseDraw": PoseDraw,
    "StablePoseSaveJSON": PoseSaveJSON,
    "StablePoseLoadJSON": PoseLoadJSON,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StablePoseTrackPeople": "Track People in Poses (Stable-Pose)",
    "StablePoseSelectPeople": "Select People in Poses (Stable-Pose)",
    "StablePoseSmooth": "Smooth Pose Sequence (Stable-Pose)",
    "StablePoseInterpolate": "Interpolate Key Poses (Stable-Pose)",
    "StablePoseTransform": "Transform Poses (Stable-Pose)",
    "StablePoseRetarget": "Retarget Poses to a Body (Stable-Pose)",
    "StablePoseDraw": "Draw Poses (Stable-Pose)",
    "StablePoseSaveJSON": "Save Poses as JSON (Stable-Pose)",
    "StablePoseLoadJSON": "Load Poses from JSON (Stable-Pose)",
}
