"""``StablePoseFitBody`` and ``StablePoseRenderBody``: the 3D body prior (``docs/body.md``).

Thin ComfyUI wrappers over ``stablepose_core.body``: the open body model Anny fitted to each person of a pose
(Diffusion-HPC's HMR step), its plausibility (the VPoser step) and its depth, silhouette and skeleton. Needs the
optional ``anny`` package; without it this module does not load and the console says how to install it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anny  # noqa: F401  (the optional dependency: a missing package disables these nodes with one log line)
import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
import torch

from ..stablepose_core.body.bodies import BodyBatch
from ..stablepose_core.body.fit import fit_bodies
from ..stablepose_core.body.model import BodyModel, load_body_model
from ..stablepose_core.body.render import render_bodies
from ..stablepose_core.body.smplify import FitSettings
from ..stablepose_core.poses.files import load_text, safe_path, save_new_text
from ..stablepose_core.poses.skeleton import render_pose
from .extract import given_poses

CATEGORY = "Stable-Pose/body"
BODY_TYPE = "STABLE_POSE_BODY"
FOLDERS = {"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory}
CACHE_FOLDER = "anny"  # models/anny: Anny's built model data (made once, about 1–2 minutes on a CPU)


def body_model() -> BodyModel:
    """The body model on ComfyUI's device, its cache in ``models/anny`` (or ``$ANNY_CACHE_DIR``); built outside
    ComfyUI's inference mode, so the fit can differentiate through it whichever node loads it first."""
    cache = os.environ.get("ANNY_CACHE_DIR") or os.path.join(folder_paths.models_dir, CACHE_FOLDER)
    with torch.inference_mode(False):
        return load_body_model(comfy.model_management.get_torch_device(), cache)


class StablePoseFitBody:
    """Fit the open 3D body model to every person of a pose and say whether each pose is humanly possible."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images the poses belong to (their size places the camera)."}),
                "pose_keypoint": (
                    "POSE_KEYPOINT",
                    {
                        "tooltip": "People to fit (any backend or the editor): one frame per image or one for all. "
                        "BlazePose's 3D points, when present, also guide depth and orientation."
                    },
                ),
                "iterations": (
                    "INT",
                    {
                        "default": 250,
                        "min": 20,
                        "max": 2000,
                        "step": 10,
                        "tooltip": "Optimisation steps of the pose stage; more fit closer and take longer.",
                    },
                ),
            }
        }

    RETURN_TYPES = (BODY_TYPE, "POSE_KEYPOINT", "FLOAT", "STRING")
    RETURN_NAMES = ("body", "fitted_pose", "plausibility", "report")
    OUTPUT_TOOLTIPS = (
        "The fitted bodies (people nearest first) for Render Body (Stable-Pose), the rectify nodes or Save Body.",
        "The fitted bodies' COCO-17 joints on each image, one frame per image.",
        "Plausibility score of the least plausible person in the batch: below 1.0 is humanly possible (docs/body.md).",
        "JSON per image: each person's score, plausible, yaw_deg (0 facing the camera, ±180 facing away), fit "
        "error in px, the score's terms and the worst joints; people too incomplete to fit, with the reason.",
    )
    FUNCTION = "fit"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Fits the open body model Anny to each person (SMPLify-style optimisation of pose, body shape and camera) "
        "and judges the pose against human joint limits, body proportions and the fit error. The open stand-in for "
        "Diffusion-HPC's BEV + VPoser step."
    )

    def fit(self, image: torch.Tensor, pose_keypoint: Any, iterations: int) -> tuple:
        batch, height, width = (int(size) for size in image.shape[:3])
        poses = given_poses(pose_keypoint, batch, width, height)
        settings = FitSettings(pose_iterations=iterations)
        total = settings.camera_iterations + settings.pose_iterations + settings.body_iterations
        progress = comfy.utils.ProgressBar(total)

        def on_step(done: int, steps: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update_absolute(done * total // max(steps, 1), total)

        with torch.inference_mode(False), torch.enable_grad():  # ComfyUI runs nodes in inference mode
            bodies = fit_bodies(body_model(), poses, settings, on_step)
        fitted = [frame.pose().to_pose_keypoint() for frame in bodies.frames]
        report = json.dumps([frame.report() for frame in bodies.frames], indent=1)
        return bodies, fitted, max(bodies.least_plausible(), default=0.0), report


class StablePoseRenderBody:
    """Render fitted bodies as a depth map, a silhouette mask and a Stable-Pose skeleton."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        size = {"default": 512, "min": 64, "max": 8192, "step": 8}
        return {
            "required": {
                "body": (BODY_TYPE, {"tooltip": "Bodies from Fit Body (Stable-Pose) or Load Body."}),
                "width": ("INT", {**size, "tooltip": "Output width (the fitted image is stretched to it)."}),
                "height": ("INT", {**size, "tooltip": "Output height."}),
            },
            "optional": {
                "occluders": (
                    "MASK",
                    {
                        "tooltip": "Objects in front of the people (white): body parts there are cut from the depth "
                        "and the mask (Diffusion-HPC's occluder step). One mask for all images or one per image."
                    },
                )
            },
        }

    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("depth", "mask", "pose_image")
    OUTPUT_TOOLTIPS = (
        "Depth of the bodies, near bright and background black (the convention of SD1.5 depth ControlNets).",
        "The bodies' silhouette (1 on the body), minus the occluders.",
        "The bodies' joints drawn as a Stable-Pose skeleton (for Apply Stable-Pose).",
    )
    FUNCTION = "render"
    CATEGORY = CATEGORY
    DESCRIPTION = "Renders fitted bodies: depth for a depth ControlNet, the silhouette as a mask, and the skeleton."

    def render(self, body: BodyBatch, width: int, height: int, occluders: torch.Tensor | None = None) -> tuple:
        if not isinstance(body, BodyBatch):
            raise ValueError("body must come from Fit Body (Stable-Pose) or Load Body")
        hidden = None
        if occluders is not None:
            masks = occluders.reshape(-1, *occluders.shape[-2:])
            if masks.shape[0] not in (1, len(body.frames)):
                raise ValueError(
                    f"occluders has {masks.shape[0]} masks for {len(body.frames)} images: give 1 or one each"
                )
            resized = torch.nn.functional.interpolate(masks[:, None].float(), size=(height, width), mode="bilinear")
            hidden = resized[:, 0].nan_to_num(0.0).cpu().numpy()
        frames = render_bodies(body_model(), body, width, height, hidden)
        depth = torch.from_numpy(np.stack([f.depth for f in frames]))[..., None].repeat(1, 1, 1, 3)
        mask = torch.from_numpy(np.stack([f.silhouette for f in frames]))
        skeleton = torch.from_numpy(np.stack([render_pose(f.pose) for f in frames])).float() / 255
        return depth, mask, skeleton


class StablePoseSaveBody:
    """Save fitted bodies as JSON in the output folder, next to the pose files."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "body": (BODY_TYPE, {"tooltip": "Bodies from Fit Body (Stable-Pose)."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "bodies/body",
                        "tooltip": "Path inside the output folder; _00001.json etc. is added "
                        "(an existing file is never replaced).",
                    },
                ),
            }
        }

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "Stable-Pose/files"
    DESCRIPTION = "Saves fitted bodies (pose angles, body shape, camera, plausibility) as a stable-pose-body JSON file."

    def save(self, body: BodyBatch, filename_prefix: str) -> dict[str, Any]:
        root = folder_paths.get_output_directory()
        path = save_new_text(body.to_json(), root, filename_prefix)
        return {"ui": {"text": [os.path.relpath(path, root).replace(os.sep, "/")]}}


class StablePoseLoadBody:
    """Load bodies saved by Save Body (Stable-Pose)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "folder": (list(FOLDERS), {"tooltip": "ComfyUI folder to read from."}),
                "name": ("STRING", {"default": "bodies/body_00001.json", "tooltip": "File inside that folder."}),
            }
        }

    RETURN_TYPES = (BODY_TYPE,)
    RETURN_NAMES = ("body",)
    FUNCTION = "load"
    CATEGORY = "Stable-Pose/files"
    DESCRIPTION = "Loads a stable-pose-body JSON file saved by Save Body (Stable-Pose)."

    @classmethod
    def IS_CHANGED(cls, folder: str, name: str) -> str:
        try:
            return str(safe_path(FOLDERS[folder](), name).stat().st_mtime_ns)
        except (OSError, ValueError, KeyError):
            return ""

    def load(self, folder: str, name: str) -> tuple[BodyBatch]:
        if folder not in FOLDERS:
            raise ValueError(f"folder must be one of {tuple(FOLDERS)}, got {folder!r}")
        return (BodyBatch.from_json(load_text(FOLDERS[folder](), name)),)


NODE_CLASS_MAPPINGS = {
    "StablePoseFitBody": StablePoseFitBody,
    "StablePoseRenderBody": StablePoseRenderBody,
    "StablePoseSaveBody": StablePoseSaveBody,
    "StablePoseLoadBody": StablePoseLoadBody,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StablePoseFitBody": "Fit Body (Stable-Pose)",
    "StablePoseRenderBody": "Render Body (Stable-Pose)",
    "StablePoseSaveBody": "Save Body (Stable-Pose)",
    "StablePoseLoadBody": "Load Body (Stable-Pose)",
}
