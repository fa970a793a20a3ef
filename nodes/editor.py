"""``StablePoseEditor``: edit COCO-17 poses, one or a timeline of keyframes, in the pack's own offline editor.

The node holds the edit as JSON in its ``pose_json`` widget (hidden by ``web/stable_pose_editor.js``): one pose
in the ``stable-pose-coco17`` format of ``PoseKeypoints.to_json``, or keyframes on a timeline in the
``stable-pose-coco17-keyframes`` format (``stablepose_core.poses.keyframes``), whose clip is the core's key
interpolation. Every frame is rendered with ``stablepose_core.poses.skeleton``, so what the editor shows is exactly
the stick figure Stable-Pose was trained on (HumanSD's COCO-17 drawing). Editing rules (also in
``docs/editor.md``):

* ``pose_json`` holds the editor's ``stable-pose-coco17`` document, its keyframe document
  (``stable-pose-coco17-keyframes``, whose clip is the core's interpolation of the keys), or pasted
  ``POSE_KEYPOINT`` frames; empty: no edit yet, the input poses (every frame of ``pose_keypoint``) pass through;
  with neither, the output is an empty pose, i.e. a black image;
* the canvas is ``width`` × ``height``; a 0 takes that side from the input pose, else the background image,
  else the edited pose, else 512 × 768; a pose made on another canvas is scaled uniformly and centred onto it;
* malformed JSON, a person without exactly 17 ``[x, y, confidence]`` joints, non-finite numbers, or a canvas
  side over 8192 px (the widgets' limit) raise a ``PoseDataError`` (a ``ValueError``) saying what is wrong;
  edited joints outside the canvas are clipped onto its border (the editor itself never writes one: it hides
  input joints that lie off the canvas, which are not drawn).

After each run the node sends the input poses (every frame, on the node's canvas) and a preview of the
background to the editor, as ``seed_pose``, ``background`` and ``canvas`` in its UI output. The skeleton spec
the editor draws with comes from the same core constants through ``GET /stable_pose/skeleton_spec``; the
timeline's in-betweens come from ``POST /stable_pose/interpolate`` (the same function the node runs), which
refuses a document over the clip limit (``MAX_CLIP_POSES``) at once and interpolates off the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..stablepose_core.poses.interpolation import interpolate_keys
from ..stablepose_core.poses.keyframes import KEYFRAMES_FORMAT, Keyframes, clip_from_keyframes, read_keyframes
from ..stablepose_core.poses.keypoints import (
    COCO17_FLIP_PAIRS,
    COCO17_LIMBS,
    COCO17_NAMES,
    JSON_FORMAT,
    MAX_CANVAS_SIZE,
    VISIBILITY_THRESHOLD,
    PoseDataError,
    PoseKeypoints,
    is_pose_keypoint_frame,
    parse_json,
    pose_from_data,
)
from ..stablepose_core.poses.sequence import PoseSequence
from ..stablepose_core.poses.skeleton import LIMB_COLORS, MAX_PEOPLE, line_width, render_pose
from ..stablepose_core.poses.transforms import fit_to_canvas

log = logging.getLogger("stable_pose")

NODE_NAME = "StablePoseEditor"
ROUTE_PREFIX = "/stable_pose"
DEFAULT_SIZE = (512, 768)
MAX_SIZE = MAX_CANVAS_SIZE
PREVIEW_MAX_SIDE = 1024


def skeleton_spec(width: int, height: int) -> dict[str, Any]:
    """What the editor draws with on a ``width`` × ``height`` canvas, straight from the core's constants."""
    return {
        "format": JSON_FORMAT,
        "names": list(COCO17_NAMES),
        "limbs": [list(limb) for limb in COCO17_LIMBS],
        "limb_colors": [list(color) for color in LIMB_COLORS],
        "flip_pairs": [list(pair) for pair in COCO17_FLIP_PAIRS],
        "visibility_threshold": VISIBILITY_THRESHOLD,
        "max_people": MAX_PEOPLE,
        "line_width": line_width(width, height),
        "default_size": list(DEFAULT_SIZE),
        "keyframes_format": KEYFRAMES_FORMAT,
    }


def parse_edit(text: str) -> PoseSequence | None:
    """The edit in ``pose_json`` as a clip, or None when it is empty (no edit); ``PoseDataError`` says what is wrong.

    Accepts the editor's ``stable-pose-coco17`` document (one frame), its keyframe document (the clip the keys
    interpolate to, :mod:`stablepose_core.poses.keyframes`), or ComfyUI ``POSE_KEYPOINT`` frames as OpenPose/DWPose
    JSON, so a pose copied from elsewhere can be pasted in.
    """
    if not text.strip():
        return None
    data = parse_json(text, "pose_json")
    if isinstance(data, dict) and data.get("format") == KEYFRAMES_FORMAT:
        return clip_from_keyframes(data)
    if isinstance(data, list) and len(data) > 1 and all(isinstance(frame, dict) for frame in data):
        return PoseSequence.from_pose_keypoint(data)
    if isinstance(data, dict) and data.get("format") != JSON_FORMAT and not is_pose_keypoint_frame(data):
        raise PoseDataError(f'pose_json must be a "{JSON_FORMAT}" or "{KEYFRAMES_FORMAT}" document or POSE_KEYPOINT')
    pose = pose_from_data(data, "pose_json")
    return PoseSequence(pose.keypoints[None], pose.width, pose.height)


def clip_to_canvas(clip: PoseSequence) -> PoseSequence:
    """Move confident joints that lie off the canvas onto its nearest border pixel (logged when any moved).

    Hidden joints (confidence at most the visibility threshold) keep their place: they are not drawn.
    """
    points = clip.keypoints.copy()
    clipped = np.stack(
        [np.clip(points[..., 0], 0, clip.width - 1), np.clip(points[..., 1], 0, clip.height - 1)], axis=-1
    )
    moved = (points[..., 2] > VISIBILITY_THRESHOLD) & np.any(clipped != points[..., :2], axis=-1)
    if moved.any():
        points[..., :2] = np.where(moved[..., None], clipped, points[..., :2])
        log.warning(
            "Stable-Pose editor: %d joint(s) outside the %dx%d canvas clipped", moved.sum(), clip.width, clip.height
        )
    return clip.replace(points)


def seed_clip(pose_keypoint: Any) -> PoseSequence | None:
    """Every frame of a ``POSE_KEYPOINT`` input (the editor's timeline shows them all), or None."""
    if pose_keypoint is None:
        return None
    return PoseSequence.from_pose_keypoint(pose_keypoint)


def resolve_canvas(width: int, height: int, candidates: list[tuple[int, int] | None]) -> tuple[int, int]:
    """``width`` × ``height``, each 0 taken from the first known size of ``candidates``, else 512 × 768."""
    fallback = next((size for size in candidates if size is not None), DEFAULT_SIZE)
    return (width or fallback[0], height or fallback[1])


def on_canvas(clip: PoseSequence, size: tuple[int, int]) -> PoseSequence:
    """The clip on a ``size`` canvas: unchanged if it is its own, else scaled uniformly and centred."""
    return clip if (clip.width, clip.height) == size else fit_to_canvas(clip, *size)


def save_preview(image: torch.Tensor) -> dict[str, str]:
    """Write the first image of a batch as a PNG (long side at most 1024) to ComfyUI's temp folder."""
    import folder_paths

    pixels = (image[0, ..., :3].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    picture = Image.fromarray(pixels)
    picture.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    filename = f"stable_pose_editor_{uuid.uuid4().hex[:16]}.png"
    picture.save(os.path.join(folder_paths.get_temp_directory(), filename), compress_level=1)
    return {"filename": filename, "subfolder": "", "type": "temp"}


class StablePoseEditor:
    """Edit the pose in the pack's editor; output it rendered as Stable-Pose saw poses in training."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        size = {"default": 0, "min": 0, "max": MAX_SIZE, "step": 1}
        return {
            "required": {
                "width": ("INT", {**size, "tooltip": "Canvas width; 0 = from the input pose or background."}),
                "height": ("INT", {**size, "tooltip": "Canvas height; 0 = from the input pose or background."}),
                "pose_json": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": False,
                        "tooltip": "The edit: one pose or pose keyframes (set by the editor; empty = input poses).",
                    },
                ),
            },
            "optional": {
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": 'Pose to start from ("Load from input").'}),
                "background": ("IMAGE", {"tooltip": "Image shown behind the skeleton in the editor."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("pose_image", "pose_keypoint")
    OUTPUT_TOOLTIPS = (
        "The pose drawn as Stable-Pose was trained on (COCO-17 limbs in HumanSD colours on black).",
        "The pose as an OpenPose BODY-18 frame, pixel coordinates (as OpenPoseExtract emits).",
    )
    OUTPUT_NODE = True  # runs on its own, so one queue fills "Load from input" without a downstream node
    FUNCTION = "edit"
    CATEGORY = "Stable-Pose/pose"
    DESCRIPTION = "Edit poses in an offline editor that draws exactly what Stable-Pose sees."

    def edit(
        self,
        width: int,
        height: int,
        pose_json: str,
        pose_keypoint: Any = None,
        background: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        seed = seed_clip(pose_keypoint)
        edited = parse_edit(pose_json)
        background_size = None if background is None else (int(background.shape[2]), int(background.shape[1]))
        canvas = resolve_canvas(
            width,
            height,
            [
                None if seed is None else (seed.width, seed.height),
                background_size,
                None if edited is None else (edited.width, edited.height),
            ],
        )
        seed = None if seed is None else on_canvas(seed, canvas)
        if edited is not None:
            clip = clip_to_canvas(on_canvas(edited, canvas))
        else:
            clip = seed if seed is not None else PoseSequence.from_poses([PoseKeypoints.empty(*canvas)])
        if clip.num_people > MAX_PEOPLE:
            log.warning("Stable-Pose editor: %d people; only the first %d are drawn", clip.num_people, MAX_PEOPLE)
        images = np.stack([render_pose(pose) for pose in clip.poses()])
        ui = {
            "seed_pose": [] if seed is None else [pose.to_json() for pose in seed.poses()],
            "background": [] if background is None else [save_preview(background)],
            "canvas": list(canvas),
        }
        return {"ui": ui, "result": (torch.from_numpy(images).float().div(255.0), clip.to_pose_keypoint())}


def read_request(text: str) -> Keyframes:
    """The interpolate route's keyframe document, read and checked (limits included); ``ValueError`` if bad."""
    return read_keyframes(parse_json(text, "the keyframe document"))


def interpolate_response(keyframes: Keyframes) -> str:
    """The interpolate route's JSON answer: ``{"frames": [people per frame]}``."""
    return json.dumps({"frames": interpolate_keys(*keyframes).keypoints.tolist()})


# The interpolations the route runs, one at a time (each at most MAX_CLIP_POSES poses), off the server's event loop.
_INTERPOLATE_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stable_pose_interpolate")


def _register_routes() -> None:
    """``GET /stable_pose/skeleton_spec?width=&height=`` and ``POST /stable_pose/interpolate`` on ComfyUI's
    server (skipped outside ComfyUI)."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return

    @instance.routes.get(f"{ROUTE_PREFIX}/skeleton_spec")
    async def get_skeleton_spec(request: web.Request) -> web.Response:
        try:
            width = int(request.query.get("width", DEFAULT_SIZE[0]))
            height = int(request.query.get("height", DEFAULT_SIZE[1]))
        except ValueError:
            return web.json_response({"error": "width and height must be integers"}, status=400)
        if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
            return web.json_response({"error": f"width and height must be in 1..{MAX_SIZE}"}, status=400)
        return web.json_response(skeleton_spec(width, height))

    @instance.routes.post(f"{ROUTE_PREFIX}/interpolate")
    async def post_interpolate(request: web.Request) -> web.Response:
        """A keyframe document -> ``{"frames": [people per frame]}``: the clip the node will output. The work runs
        on one worker thread, so the server keeps answering other requests meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            text = await request.text()
            keyframes = await loop.run_in_executor(None, read_request, text)  # quick: a clip too large is refused
            body = await loop.run_in_executor(_INTERPOLATE_WORKER, interpolate_response, keyframes)
        except (ValueError, TypeError) as error:  # malformed JSON, a bad document, a clip too large
            return web.json_response({"error": str(error)}, status=400)
        return web.Response(text=body, content_type="application/json")


_register_routes()

NODE_CLASS_MAPPINGS = {NODE_NAME: StablePoseEditor}
NODE_DISPLAY_NAME_MAPPINGS = {NODE_NAME: "Edit Poses (Stable-Pose)"}
