"""Generate the bundled workflows (``workflows/*.json``) and their sample inputs from compact descriptions.

A workflow is described here as nodes (type, place, widget values by input name, links by output name) and
groups. What ComfyUI's frontend needs on top (input sockets, the order of ``widgets_values`` including the
hidden control-after-generate value after seeds and the upload button value of ``LoadImage``, output names and
types, execution order) is read from the node definitions registered in a real headless ComfyUI with this pack
loaded (``tools/comfy_host.py``), so rerunning this after a node changes keeps the files right. Each workflow is
validated against those definitions before it is written (``ComfyHost.validate_workflow``).

The sample inputs the workflows name are written next to them (the headless runner reads ``LoadImage`` files
from the workflow's folder; in ComfyUI, upload them):

- ``stable_pose_astronaut.jpg``: scikit-image's astronaut photo (NASA, public domain), 512 × 512;
- ``stable_pose_example_pose.png``: a dancing person drawn by the pack's skeleton renderer, 512 × 768;
- ``stable_pose_pose_sequence.webp``: four frames of a jumping jack, animated lossless WebP, 512 × 768.

It also writes the template-browser thumbnails ``<workflow>.jpg`` (the inputs and poses each workflow works
with; the photo ones come from running ``photo_to_pose_preview``).

Usage (from the repo root): ``python -m tools.make_workflows [--check]``; ``--check`` writes nothing and
fails when a committed file differs from what would be generated.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import sys
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from stablepose_core.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.skeleton import render_pose
from tools.comfy_host import REPO_ROOT, WIDGET_TYPES, ComfyHost, _has_control_widget

WORKFLOWS_DIR = REPO_ROOT / "workflows"
SD15_CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
SD15_CHECKPOINT_URL = (
    "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
    "v1-5-pruned-emaonly-fp16.safetensors?download=true"
)
ADAPTER = "stable_pose_humanart.safetensors"
MODEL_FILES = {"checkpoints": SD15_CHECKPOINT, "stable_pose": ADAPTER}  # model folder -> file the workflows name
PHOTO = "stable_pose_astronaut.jpg"
EXAMPLE_POSE = "stable_pose_example_pose.png"
POSE_SEQUENCE = "stable_pose_pose_sequence.webp"
SAMPLE_NAMES = (PHOTO, EXAMPLE_POSE, POSE_SEQUENCE)
POSE_SIZE = (512, 768)
SEQUENCE_FRAME_MS = 250
THUMBNAIL_SIDE = 768
JPEG_TOLERANCE = 3.0  # mean absolute error (of 255) a quality-90 JPEG of the photo stays within
SEED = 20241210
UPLOAD_VALUE = "image"  # what the frontend stores for LoadImage's upload button
NOTE_COLOR = ("#432", "#653")
GROUP_COLOR = "#3f789e"
UUID_NAMESPACE = uuid.UUID("6f0d5f6e-3c1a-4b7e-9a55-5751ab1e905e")
TITLE_HEIGHT = 30  # litegraph draws a node's title bar above its pos
GROUP_PADDING, GROUP_TITLE = 15, 40


# ----- compact descriptions -----


@dataclass(frozen=True)
class Node:
    """One node: ``links`` maps an input to ``"<node key>.<output name>"``; unset widgets keep their defaults."""

    key: str
    type: str
    pos: tuple[int, int]
    size: tuple[int, int]
    title: str | None = None
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    colors: tuple[str, str] | None = None


@dataclass(frozen=True)
class Group:
    title: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    nodes: tuple[Node, ...]
    groups: tuple[Group, ...] = ()


def note(key: str, pos: tuple[int, int], size: tuple[int, int], text: str, title: str = "Read me") -> Node:
    return Node(key, "Note", pos, size, title, widgets={"text": text.strip()}, colors=NOTE_COLOR)


def save_image(key: str, pos: tuple[int, int], size: tuple[int, int], title: str, prefix: str, images: str) -> Node:
    return Node(key, "SaveImage", pos, size, title, {"filename_prefix": prefix}, {"images": images})


def checkpoint(pos: tuple[int, int]) -> Node:
    model = {"name": SD15_CHECKPOINT, "url": SD15_CHECKPOINT_URL, "directory": "checkpoints"}
    return Node(
        "ckpt",
        "CheckpointLoaderSimple",
        pos,
        (340, 100),
        "Load Checkpoint (SD1.5)",
        widgets={"ckpt_name": SD15_CHECKPOINT},
        properties={"models": [model]},
    )


def adapter(pos: tuple[int, int]) -> Node:
    return Node("adapter", "LoadStablePose", pos, (340, 60), widgets={"adapter_name": ADAPTER})


def prompts(x: int, y: int, positive: str) -> tuple[Node, Node]:
    negative = "lowres, bad anatomy, bad hands, missing fingers, extra limbs, cropped, worst quality, blurry"
    return (
        Node(
            "positive",
            "CLIPTextEncode",
            (x, y),
            (400, 170),
            "Positive prompt",
            {"text": positive},
            {"clip": "ckpt.CLIP"},
            colors=("#232", "#353"),
        ),
        Node(
            "negative",
            "CLIPTextEncode",
            (x, y + 210),
            (400, 130),
            "Negative prompt",
            {"text": negative},
            {"clip": "ckpt.CLIP"},
            colors=("#322", "#533"),
        ),
    )


def apply_stable_pose(pos: tuple[int, int], pose: str) -> Node:
    return Node(
        "apply",
        "ApplyStablePose",
        pos,
        (400, 250),
        links={"model": "ckpt.MODEL", "stable_pose": "adapter.STABLE_POSE", "pose_image": pose},
    )


def sampling(x: int, y: int, latent: str) -> tuple[Node, Node]:
    """KSampler (fixed seed, so reruns and frames reproduce) -> VAEDecode, one above the other at ``x, y``."""
    widgets = {"seed": SEED, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"}
    links = {
        "model": "apply.MODEL",
        "positive": "positive.CONDITIONING",
        "negative": "negative.CONDITIONING",
        "latent_image": latent,
    }
    return (
        Node("sampler", "KSampler", (x, y), (320, 270), widgets=widgets, links=links),
        Node("decode", "VAEDecode", (x, y + 320), (320, 50), links={"samples": "sampler.LATENT", "vae": "ckpt.VAE"}),
    )


MODELS_TEXT = f"""
Models:
- Load Checkpoint: an SD1.5 checkpoint in models/checkpoints ({SD15_CHECKPOINT}; ComfyUI offers to download it,
  any SD1.5 fine-tune works). SDXL, SD2 and Flux are refused: Stable-Pose adapters are trained on SD1.5.
- Load Stable-Pose Adapter: an adapter in models/stable_pose. The authors' checkpoint (.pth/.ckpt, linked from
  the official Stable-Pose repository) loads as is; "python -m stablepose_core.convert final.pth {ADAPTER}"
  (in the pack folder) makes the smaller file this workflow names.
"""

APPLY_TEXT = """
Apply Stable-Pose: strength 1 is the paper's setting; start/end percent limit the steps it acts on. The mask
settings (schedule, kernels, sigma, threshold) default to the released model's.
"""


def txt2img() -> Spec:
    text = f"""
Stable-Pose text-to-image: an SD1.5 image of a person in the pose of a pose image.
{MODELS_TEXT}
Pose image: a Stable-Pose pose image (COCO-17 skeleton in HumanSD colours on black), e.g. {EXAMPLE_POSE}
from this pack's workflows/ folder (upload it), or one made with OpenPose Extract or the Stable-Pose Editor.
ControlNet OpenPose pictures are drawn differently: redraw them with OpenPose Extract.

Empty Latent Image: 512x768 like the pose; other sizes work (the pose is resized and centre-cropped onto the
latent), keep the aspect ratio close.
{APPLY_TEXT}
Stable-Pose Mask Preview: where pose-masked attention looks, per ViT layer (left the latent grid, right the
patch grid).
"""
    nodes = (
        checkpoint((40, 100)),
        adapter((40, 260)),
        Node("pose", "LoadImage", (40, 420), (340, 520), "Pose image", {"image": EXAMPLE_POSE}),
        *prompts(440, 100, "a dancer in a red dress on a stage, full body, photograph, detailed, high quality"),
        apply_stable_pose((440, 500), "pose.IMAGE"),
        Node("latent", "EmptyLatentImage", (440, 800), (400, 110), widgets={"width": 512, "height": 768}),
        Node("masks", "PoseMaskPreview", (440, 1000), (400, 250), links={"pose_image": "pose.IMAGE"}),
        Node("masks_view", "PreviewImage", (900, 1000), (520, 330), "Mask preview", links={"images": "masks.preview"}),
        *sampling(900, 100, "latent.LATENT"),
        save_image("save", (1300, 80), (520, 760), "Generated image", "stable_pose/txt2img", "decode.IMAGE"),
        note("note", (-420, 100), (380, 840), text),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Pose", ("pose",)),
        Group("Prompt and Stable-Pose", ("positive", "negative", "apply", "latent")),
        Group("Sampling", ("sampler", "decode", "save")),
    )
    return Spec("stable_pose_txt2img", nodes, groups)


def photo_to_image() -> Spec:
    text = f"""
Photo -> pose -> image: the pose of the person in a photo, adjusted if you like, drives a new image.

Photo: any photo of people ({PHOTO} from this pack's workflows/ folder is an example: upload it). "Resize to
the generated size" scales and centre-crops it to 512x768; for a landscape photo set 768x512 there and in Empty
Latent Image.

OpenPose Extract finds the people (mediapipe runs offline; the other detectors are listed in its tooltip) and
draws them as Stable-Pose was trained to see poses.

Stable-Pose Editor: after a first run, click "Open pose editor", then "Load from input" to edit the detected
pose over the photo; "Apply" stores the edit in the node. With no edit the detected pose passes through.
{MODELS_TEXT}{APPLY_TEXT}"""
    nodes = (
        Node("photo", "LoadImage", (40, 100), (340, 460), "Photo", {"image": PHOTO}),
        Node(
            "resize",
            "ImageScale",
            (40, 620),
            (340, 140),
            "Resize to the generated size",
            {"upscale_method": "lanczos", "width": POSE_SIZE[0], "height": POSE_SIZE[1], "crop": "center"},
            {"image": "photo.IMAGE"},
        ),
        Node(
            "extract",
            "OpenPoseExtract",
            (440, 100),
            (340, 110),
            widgets={"backend": "mediapipe"},
            links={"image": "resize.IMAGE"},
        ),
        Node(
            "extracted_view",
            "PreviewImage",
            (440, 260),
            (340, 480),
            "Extracted pose",
            links={"images": "extract.pose_image"},
        ),
        Node(
            "editor",
            "StablePoseEditor",
            (840, 100),
            (340, 150),
            links={"pose_keypoint": "extract.pose_keypoint", "background": "resize.IMAGE"},
        ),
        Node("masks", "PoseMaskPreview", (840, 320), (340, 250), links={"pose_image": "editor.pose_image"}),
        Node("masks_view", "PreviewImage", (840, 620), (340, 330), "Mask preview", links={"images": "masks.preview"}),
        checkpoint((1240, 100)),
        adapter((1240, 260)),
        *prompts(
            1240, 380, "a medieval knight in shining armour, upper body portrait, photograph, detailed, high quality"
        ),
        apply_stable_pose((1240, 780), "editor.pose_image"),
        Node(
            "latent",
            "EmptyLatentImage",
            (1240, 1080),
            (400, 110),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1]},
        ),
        *sampling(1700, 100, "latent.LATENT"),
        save_image("save", (2060, 80), (520, 760), "Generated image", "stable_pose/from_photo", "decode.IMAGE"),
        note("note", (-420, 100), (380, 860), text),
    )
    groups = (
        Group("Photo", ("photo", "resize")),
        Group("Pose", ("extract", "extracted_view", "editor", "masks", "masks_view")),
        Group("Models, prompt and Stable-Pose", ("ckpt", "adapter", "positive", "negative", "apply", "latent")),
        Group("Sampling", ("sampler", "decode", "save")),
    )
    return Spec("photo_to_pose_to_image", nodes, groups)


def pose_batch() -> Spec:
    text = f"""
Pose sequence -> frames: one generated frame per pose, with the same prompt and the same noise for every frame
(Latent Batch Seed Behavior "fixed", KSampler seed "fixed"), so frames differ where the poses differ.

Pose sequence: a Load Image of a multi-frame image (animated WebP or GIF) gives all its frames as a batch;
{POSE_SEQUENCE} in this pack's workflows/ folder is an example (upload it). Single poses work too: join them
with Batch Images nodes. Get Image Size sets the latent size and batch size from the poses, so there is always
one latent per pose.
{MODELS_TEXT}{APPLY_TEXT}
Frames are saved one by one and as an animated WebP (Save Animated WEBP: fps sets the speed).
"""
    nodes = (
        checkpoint((40, 100)),
        adapter((40, 260)),
        Node("poses", "LoadImage", (40, 420), (340, 520), "Pose sequence", {"image": POSE_SEQUENCE}),
        Node("size", "GetImageSize", (40, 1000), (340, 100), links={"image": "poses.IMAGE"}),
        *prompts(
            440,
            100,
            "an astronaut in a white spacesuit doing jumping jacks on the moon, full body, "
            "photograph, detailed, high quality",
        ),
        apply_stable_pose((440, 500), "poses.IMAGE"),
        Node(
            "latent",
            "EmptyLatentImage",
            (440, 800),
            (400, 110),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1], "batch_size": 4},
            links={"width": "size.width", "height": "size.height", "batch_size": "size.batch_size"},
        ),
        Node(
            "same_noise",
            "LatentBatchSeedBehavior",
            (440, 980),
            (400, 80),
            "Same noise for every frame",
            {"seed_behavior": "fixed"},
            {"samples": "latent.LATENT"},
        ),
        *sampling(900, 100, "same_noise.LATENT"),
        save_image("save", (1300, 80), (520, 420), "Save frames", "stable_pose/frames", "decode.IMAGE"),
        Node(
            "animation",
            "SaveAnimatedWEBP",
            (1300, 600),
            (520, 520),
            "Save animation",
            {
                "filename_prefix": "stable_pose/animation",
                "fps": 1000 / SEQUENCE_FRAME_MS,
                "lossless": False,
                "quality": 90,
            },
            {"images": "decode.IMAGE"},
        ),
        note("note", (-420, 100), (380, 760), text),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Poses", ("poses", "size")),
        Group("Prompt and Stable-Pose", ("positive", "negative", "apply", "latent", "same_noise")),
        Group("Sampling", ("sampler", "decode", "save", "animation")),
    )
    return Spec("pose_batch_video", nodes, groups)


def pose_animation() -> Spec:
    text = f"""
Pose sequence -> animation with context windows: one frame per pose, sampled through ComfyUI's Context Windows
(Manual) so clips longer than a window (hundreds of frames) fit in memory. Stable-Pose gives every frame its
own pose in every window; with an SD1.5 model each frame comes out as if the clip were sampled in one batch.

Pose sequence: a Load Image of a multi-frame image (animated WebP or GIF; {POSE_SEQUENCE} from this pack's
workflows/ folder is a 4-frame example: upload it) or poses extracted from a video's frames with OpenPose
Extract. Get Image Size makes one latent per pose.

Context Windows (Manual): length 16, overlap 4 is the usual AnimateDiff setting; windows only act on clips
longer than the length. With AnimateDiff-Evolved, use its Use Evolved Sampling + context options instead
(docs/video.md): Stable-Pose reads either kind of window.

Strength per frame: keyframes "frame:strength" (here full strength throughout; e.g. "0:1.0, 16:0.4, 31:1.0").
{MODELS_TEXT}{APPLY_TEXT}"""
    windowed = Node(
        "windows",
        "ContextWindowsManual",
        (440, 1100),
        (400, 250),
        "Context windows",
        {"context_length": 16, "context_overlap": 4, "context_schedule": "standard_static"},
        {"model": "apply.MODEL"},
    )
    sampler, decode = sampling(900, 100, "same_noise.LATENT")
    nodes = (
        checkpoint((40, 100)),
        adapter((40, 260)),
        Node("poses", "LoadImage", (40, 420), (340, 520), "Pose sequence", {"image": POSE_SEQUENCE}),
        Node("size", "GetImageSize", (40, 1000), (340, 100), links={"image": "poses.IMAGE"}),
        Node(
            "frame_strength",
            "StablePoseFrameStrengths",
            (40, 1160),
            (340, 160),
            widgets={"strengths": "0:1.0, -1:1.0", "interpolation": "linear"},
        ),
        *prompts(440, 100, "a dancer in a white dress on a stage, full body, photograph, detailed, high quality"),
        Node(
            "apply",
            "ApplyStablePose",
            (440, 500),
            (400, 300),
            links={
                "model": "ckpt.MODEL",
                "stable_pose": "adapter.STABLE_POSE",
                "pose_image": "poses.IMAGE",
                "frame_strength": "frame_strength.frame_strength",
            },
        ),
        Node(
            "latent",
            "EmptyLatentImage",
            (440, 850),
            (400, 110),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1], "batch_size": 4},
            links={"width": "size.width", "height": "size.height", "batch_size": "size.batch_size"},
        ),
        Node(
            "same_noise",
            "LatentBatchSeedBehavior",
            (440, 1000),
            (400, 80),
            "Same noise for every frame",
            {"seed_behavior": "fixed"},
            {"samples": "latent.LATENT"},
        ),
        windowed,
        dataclasses.replace(sampler, links={**sampler.links, "model": "windows.MODEL"}),
        decode,
        Node(
            "animation",
            "SaveAnimatedWEBP",
            (1300, 80),
            (520, 520),
            "Save animation",
            {
                "filename_prefix": "stable_pose/animation",
                "fps": 1000 / SEQUENCE_FRAME_MS,
                "lossless": False,
                "quality": 90,
            },
            {"images": "decode.IMAGE"},
        ),
        note("note", (-420, 100), (380, 900), text),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Poses", ("poses", "size", "frame_strength")),
        Group("Prompt, Stable-Pose and windows", ("positive", "negative", "apply", "latent", "same_noise", "windows")),
        Group("Sampling", ("sampler", "decode", "animation")),
    )
    return Spec("pose_animation_context_windows", nodes, groups)


def photo_to_preview() -> Spec:
    text = f"""
Photo -> Stable-Pose pose image, no model weights needed (tools/demo.sh runs this one headless).

Photo: {PHOTO} from this pack's workflows/ folder (upload it) or any photo of people; for the mask preview
both sides must be multiples of 8 px (SD1.5 latents are 1/8 of the image).

OpenPose Extract draws each person's COCO-17 skeleton in the colours Stable-Pose was trained on (HumanSD's
drawing); mediapipe runs offline, the other detectors are listed in its tooltip.

Saved: the pose image (what Apply Stable-Pose takes), the pose over the photo, and the masks of pose-masked
self-attention per ViT layer (left the latent grid, right the ViT patch grid).
"""
    nodes = (
        Node("photo", "LoadImage", (40, 100), (340, 460), "Photo", {"image": PHOTO}),
        Node(
            "extract",
            "OpenPoseExtract",
            (440, 100),
            (340, 110),
            widgets={"backend": "mediapipe"},
            links={"image": "photo.IMAGE"},
        ),
        Node("masks", "PoseMaskPreview", (440, 290), (340, 250), links={"pose_image": "extract.pose_image"}),
        Node(
            "overlay",
            "ImageBlend",
            (440, 620),
            (340, 130),
            "Pose over photo",
            {"blend_factor": 1.0, "blend_mode": "screen"},
            {"image1": "photo.IMAGE", "image2": "extract.pose_image"},
        ),
        save_image("save_pose", (840, 100), (420, 470), "Pose", "stable_pose/pose", "extract.pose_image"),
        save_image(
            "save_overlay", (1300, 100), (420, 470), "Pose over photo", "stable_pose/pose_over_photo", "overlay.IMAGE"
        ),
        save_image("save_masks", (840, 650), (880, 360), "Mask preview", "stable_pose/mask_preview", "masks.preview"),
        note("note", (-420, 100), (380, 560), text),
    )
    groups = (
        Group("Pose", ("extract", "masks", "overlay")),
        Group("Saved", ("save_pose", "save_overlay", "save_masks")),
    )
    return Spec("photo_to_pose_preview", nodes, groups)


SPECS = (txt2img, photo_to_image, pose_batch, photo_to_preview, pose_animation)


# ----- UI format -----


@dataclass
class _Socket:
    name: str
    type: str
    optional: bool
    widget: bool
    link: int | None = None


class WorkflowBuilder:
    """Turns a :class:`Spec` into ComfyUI's UI workflow (version 0.4) with the registered node definitions."""

    def __init__(self, host: ComfyHost) -> None:
        self.host = host

    def outputs(self, node_type: str) -> list[tuple[str, str]]:
        """(name, type) of each output: RETURN_NAMES where given, else the type, as the frontend labels them."""
        node_class = self.host.node_class(node_type)
        types = [str(kind) for kind in node_class.RETURN_TYPES]
        names = getattr(node_class, "RETURN_NAMES", None) or types
        return list(zip((str(name) for name in names), types, strict=True))

    def sockets(self, node: Node) -> list[_Socket]:
        """The frontend's input slots: every non-widget input, then the widget inputs that are linked."""
        if node.type == "Note":
            return []
        plain, widgets = [], []
        for section, specs in self.host.input_specs(node.type).items():
            for name, (kind, options) in specs.items():
                is_widget = kind in WIDGET_TYPES and not options.get("forceInput")
                if not is_widget:
                    plain.append(_Socket(name, kind, section == "optional", False))
                elif name in node.links:
                    widgets.append(_Socket(name, kind, section == "optional", True))
        unknown = set(node.links) - {socket.name for socket in plain + widgets}
        if unknown:
            raise ValueError(f"{node.key} ({node.type}) has no inputs {sorted(unknown)} to link")
        return plain + widgets

    def widgets_values(self, node: Node, sockets: list[_Socket]) -> list[Any]:
        if node.type == "Note":
            return [node.widgets["text"]]
        specs = {name: spec for section in self.host.input_specs(node.type).values() for name, spec in section.items()}
        ui_inputs = [{"name": s.name, **({"widget": {"name": s.name}} if s.widget else {})} for s in sockets]
        slots = self.host.widget_slots(node.type, ui_inputs)
        unknown = set(node.widgets) - {slot for slot in slots if slot} - {"control_after_generate"}
        if unknown:
            raise ValueError(f"{node.key} ({node.type}) has no widgets {sorted(unknown)}")
        values: list[Any] = []
        for index, slot in enumerate(slots):
            previous = slots[index - 1] if index else None
            if slot is not None:
                values.append(node.widgets[slot] if slot in node.widgets else _default(*specs[slot]))
            elif previous is not None and _has_control_widget(specs[previous][0], previous, specs[previous][1]):
                values.append(node.widgets.get("control_after_generate", "fixed"))
            else:
                values.append(UPLOAD_VALUE)
        return values

    def build(self, spec: Spec) -> dict[str, Any]:
        ids = {node.key: index for index, node in enumerate(spec.nodes, start=1)}
        by_key = {node.key: node for node in spec.nodes}
        sockets = {node.key: self.sockets(node) for node in spec.nodes}
        outputs = {node.key: [] if node.type == "Note" else self.outputs(node.type) for node in spec.nodes}
        out_links: dict[tuple[str, int], list[int]] = {}
        links = []
        for node in spec.nodes:
            for slot_index, socket in enumerate(sockets[node.key]):
                if socket.name not in node.links:
                    continue
                source_key, output_name = node.links[socket.name].split(".", 1)
                names = [name for name, _ in outputs[source_key]]
                if output_name not in names:
                    raise ValueError(f"{source_key} ({by_key[source_key].type}) has no output {output_name!r}: {names}")
                source_slot = names.index(output_name)
                socket.link = len(links) + 1
                links.append(
                    [
                        socket.link,
                        ids[source_key],
                        source_slot,
                        ids[node.key],
                        slot_index,
                        outputs[source_key][source_slot][1],
                    ]
                )
                out_links.setdefault((source_key, source_slot), []).append(socket.link)
        order = _execution_order(spec.nodes, ids)
        nodes = []
        for node in spec.nodes:
            widgets_values = self.widgets_values(node, sockets[node.key])
            ui: dict[str, Any] = {
                "id": ids[node.key],
                "type": node.type,
                "pos": list(node.pos),
                "size": list(node.size),
                "flags": {},
                "order": order[node.key],
                "mode": 0,
                "inputs": [_socket_json(socket) for socket in sockets[node.key]],
                "outputs": [
                    {"name": name, "type": kind, "links": out_links.get((node.key, slot))}
                    for slot, (name, kind) in enumerate(outputs[node.key])
                ],
                "properties": {} if node.type == "Note" else {"Node name for S&R": node.type, **node.properties},
                "widgets_values": widgets_values,
            }
            if node.title:
                ui["title"] = node.title
            if node.colors:
                ui["color"], ui["bgcolor"] = node.colors
            nodes.append(ui)
        return {
            "id": str(uuid.uuid5(UUID_NAMESPACE, spec.name)),
            "revision": 0,
            "last_node_id": len(spec.nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [_group_json(index, group, by_key) for index, group in enumerate(spec.groups, start=1)],
            "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [460, 40]}},
            "version": 0.4,
        }


def _default(kind: str, options: dict[str, Any]) -> Any:
    """The value a new node's widget starts with in the frontend."""
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        return options["options"][0]
    return options.get("min", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])


def _socket_json(socket: _Socket) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": socket.name, "type": socket.type, "link": socket.link}
    if socket.widget:
        entry["widget"] = {"name": socket.name}
    if socket.optional:
        entry["shape"] = 7  # the frontend's hollow dot for optional inputs
    return entry


def _execution_order(nodes: Iterable[Node], ids: dict[str, int]) -> dict[str, int]:
    """Topological order (sources first, ties by id), as the frontend stores in ``order``."""
    nodes = list(nodes)
    pending = {node.key: {link.split(".", 1)[0] for link in node.links.values()} for node in nodes}
    order: dict[str, int] = {}
    while pending:
        ready = sorted((key for key, needs in pending.items() if not needs - order.keys()), key=ids.__getitem__)
        if not ready:
            raise ValueError(f"the links form a cycle among {sorted(pending)}")
        for key in ready:
            order[key] = len(order)
            del pending[key]
    return order


def _group_json(index: int, group: Group, nodes: dict[str, Node]) -> dict[str, Any]:
    """A group framing its nodes, their title bars and its own title."""
    members = [nodes[key] for key in group.keys]
    left = min(node.pos[0] for node in members) - GROUP_PADDING
    top = min(node.pos[1] for node in members) - TITLE_HEIGHT - GROUP_TITLE
    right = max(node.pos[0] + node.size[0] for node in members) + GROUP_PADDING
    bottom = max(node.pos[1] + node.size[1] for node in members) + GROUP_PADDING
    return {
        "id": index,
        "title": group.title,
        "bounding": [left, top, right - left, bottom - top],
        "color": GROUP_COLOR,
        "font_size": 24,
        "flags": {},
    }


def build_workflows(host: ComfyHost) -> dict[str, dict[str, Any]]:
    """``{file name: workflow}`` of every bundled workflow this script makes."""
    builder = WorkflowBuilder(host)
    return {f"{spec.name}.json": builder.build(spec) for spec in (make() for make in SPECS)}


def workflow_text(workflow: dict[str, Any]) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


# ----- sample inputs -----


def _figure(
    arms: tuple[float, float], elbows: tuple[float, float], legs: tuple[float, float], knees: tuple[float, float]
) -> PoseKeypoints:
    """A front-facing person on a 512 × 768 canvas. Angles in degrees from straight down, positive away from the
    body; pairs are (the person's left, right); the person's left is on the image's right."""
    centre = POSE_SIZE[0] / 2
    joints = {
        "nose": (centre, 190),
        "left_eye": (centre + 11, 178),
        "right_eye": (centre - 11, 178),
        "left_ear": (centre + 25, 186),
        "right_ear": (centre - 25, 186),
    }
    for side, sign, index in (("left", 1, 0), ("right", -1, 1)):
        shoulder, hip = (centre + 60 * sign, 265), (centre + 40 * sign, 455)
        elbow = _limb(shoulder, arms[index], 115, sign)
        knee = _limb(hip, legs[index], 130, sign)
        joints |= {
            f"{side}_shoulder": shoulder,
            f"{side}_elbow": elbow,
            f"{side}_wrist": _limb(elbow, elbows[index], 105, sign),
            f"{side}_hip": hip,
            f"{side}_knee": knee,
            f"{side}_ankle": _limb(knee, knees[index], 130, sign),
        }
    points = np.array([[*joints[name], 1.0] for name in COCO17_NAMES], np.float32)
    return PoseKeypoints(points[None], *POSE_SIZE)


def _limb(start: tuple[float, float], angle: float, length: float, sign: int) -> tuple[float, float]:
    radians = math.radians(angle)
    return start[0] + sign * length * math.sin(radians), start[1] + length * math.cos(radians)


def example_pose() -> np.ndarray:
    """A dancing person: the left arm raised, the right arm out with the forearm up, the right leg stepping out."""
    return render_pose(_figure(arms=(150, 95), elbows=(170, 150), legs=(8, 28), knees=(4, 12)))


def pose_sequence() -> list[np.ndarray]:
    """A jumping jack: arms down, halfway, up, halfway; legs apart as the arms rise (frames 1 and 3 match)."""
    steps = [(15, 4), (90, 12), (165, 20), (90, 12)]
    return [render_pose(_figure((arm, arm), (arm, arm), (leg, leg), (leg, leg))) for arm, leg in steps]


@dataclass(frozen=True)
class SampleImage:
    """A sample input: RGB frames and how they are stored (JPEG for the photo, else lossless)."""

    name: str
    frames: tuple[np.ndarray, ...]

    @property
    def lossless(self) -> bool:
        return not self.name.endswith(".jpg")

    def encode(self) -> bytes:
        buffer = io.BytesIO()
        first, *rest = (Image.fromarray(frame) for frame in self.frames)
        if not self.lossless:
            first.save(buffer, format="JPEG", quality=90, optimize=True)
        elif rest:
            first.save(
                buffer,
                format="WEBP",
                save_all=True,
                append_images=rest,
                duration=SEQUENCE_FRAME_MS,
                loop=0,
                lossless=True,
                quality=100,
                method=6,
            )
        else:
            first.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def matches(self, path: Path) -> bool:
        """Whether ``path`` holds these frames: exactly, or for the JPEG within its compression error."""
        if not path.is_file():
            return False
        with Image.open(path) as image:
            stored = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
        if [frame.shape for frame in stored] != [frame.shape for frame in self.frames]:
            return False
        errors = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(stored, self.frames, strict=True)]
        return max(errors) <= (0 if self.lossless else JPEG_TOLERANCE)


def sample_inputs() -> list[SampleImage]:
    """The sample images the workflows load."""
    from skimage import data

    return [
        SampleImage(PHOTO, (data.astronaut(),)),
        SampleImage(EXAMPLE_POSE, (example_pose(),)),
        SampleImage(POSE_SEQUENCE, tuple(pose_sequence())),
    ]


def thumbnails(host: ComfyHost) -> list[SampleImage]:
    """Template-browser thumbnails (``<workflow>.jpg``, shown by ComfyUI next to each template): what each
    workflow starts from. The photo workflows' come from running ``photo_to_pose_preview`` (the sample photo
    must be in the host's input folder)."""
    demo = build_workflows(host)["photo_to_pose_preview.json"]
    result = host.run_workflow(demo)
    if not result.ok:
        raise ValueError("photo_to_pose_preview.json failed: " + "; ".join(result.error_messages()))
    ids = {node["type"]: node["id"] for node in demo["nodes"]}
    kinds = ("LoadImage", "OpenPoseExtract", "ImageBlend")
    photo, pose, overlay = (_pixels(result.output(ids[kind])) for kind in kinds)
    return [
        SampleImage("photo_to_pose_preview.jpg", (_thumbnail(photo, pose, overlay),)),
        SampleImage("photo_to_pose_to_image.jpg", (_thumbnail(photo, overlay),)),
        SampleImage("stable_pose_txt2img.jpg", (_thumbnail(example_pose()),)),
        SampleImage("pose_batch_video.jpg", (_thumbnail(*pose_sequence()),)),
        SampleImage("pose_animation_context_windows.jpg", (_thumbnail(*pose_sequence()),)),
    ]


def _pixels(images: Any) -> np.ndarray:
    """The first image of a ComfyUI IMAGE batch as uint8 RGB."""
    return (images[0].clamp(0, 1) * 255).round().byte().numpy()


def _thumbnail(*panels: np.ndarray) -> np.ndarray:
    """Panels side by side, scaled down to at most THUMBNAIL_SIDE px."""
    strip = Image.fromarray(np.concatenate(panels, axis=1))
    strip.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(strip)


# ----- command line -----


def stale(samples: Iterable[SampleImage]) -> dict[str, bytes]:
    """``{name: content}`` of the sample images that ``workflows/`` lacks or holds in another version."""
    return {sample.name: sample.encode() for sample in samples if not sample.matches(WORKFLOWS_DIR / sample.name)}


def stale_workflows(host: ComfyHost) -> dict[str, bytes]:
    """``{name: content}`` of the workflows that differ from the committed files; each is validated against the
    registered node definitions first."""
    changed = {}
    for name, workflow in build_workflows(host).items():
        problems = host.validate_workflow(workflow)
        if problems:
            raise ValueError(f"{name} does not validate:\n  " + "\n  ".join(problems))
        text = workflow_text(workflow).encode()
        path = WORKFLOWS_DIR / name
        if not (path.is_file() and path.read_bytes() == text):
            changed[name] = text
    return changed


def boot_host(workdir: Path) -> ComfyHost:
    """A headless ComfyUI with this pack, empty placeholder model files under the names the workflows use (so
    their combos validate) and ``workflows/`` as the input folder."""
    models = workdir / "models"
    for folder, name in MODEL_FILES.items():
        (models / folder).mkdir(parents=True, exist_ok=True)
        (models / folder / name).touch()
    return ComfyHost.boot(workdir, models_dir=models, input_dir=WORKFLOWS_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a committed file is stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # ComfyUI's start-up log is noise here
    changed = stale(sample_inputs())
    if not args.check:  # the thumbnails are made from the sample photo
        write(changed)
    with tempfile.TemporaryDirectory(prefix="stablepose-workflows-") as workdir:
        host = boot_host(Path(workdir))
        later = stale(thumbnails(host)) | stale_workflows(host)
    if args.check:
        changed |= later
        if changed:
            print("stale (run python -m tools.make_workflows):", *changed, sep="\n  ", file=sys.stderr)
            return 1
        print("workflows/ is up to date")
        return 0
    write(later)
    return 0


def write(files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (WORKFLOWS_DIR / name).write_bytes(content)
        print(f"wrote workflows/{name}")


if __name__ == "__main__":
    sys.exit(main())
