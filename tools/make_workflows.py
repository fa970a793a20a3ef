"""Generate the bundled workflows (``workflows/*.json``) and their sample inputs: the specs of the bundled workflows.

Each workflow is a spec function below, written in the compact description of ``tools/workflow_format.py``
(nodes with widget values by input name and links by output name, groups); ``WorkflowBuilder`` completes it with
the node definitions registered in a real headless ComfyUI with this pack loaded, so rerunning this after a node
changes keeps the files right. Each workflow is validated against those definitions before it is written
(``ComfyHost.validate_workflow``). The sample inputs the workflows name (``tools/workflow_samples.py``) are
written next to them (the headless runner reads ``LoadImage`` files from the workflow's folder; in ComfyUI,
upload them).

It also writes the template-browser thumbnails ``<workflow>.jpg`` (the inputs and poses each workflow works
with; the photo ones come from running ``photo_to_pose_preview``).

Usage (from the repo root): ``python -m tools.make_workflows [--check]``; ``--check`` writes nothing and
fails when a committed file differs from what would be generated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.comfy_host import ComfyHost
from harness.workflow_edits import WORKFLOWS_DIR
from tools.workflow_format import Group, Node, Spec, WorkflowBuilder, note, save_image, workflow_text
from tools.workflow_samples import (
    EXAMPLE_POSE,
    KEY_POSE_FRAMES,
    PHOTO,
    POSE_SEQUENCE,
    POSE_SIZE,
    SAMPLE_NAMES,
    SEQUENCE_FRAME_MS,
    SampleImage,
    example_pose,
    example_pose_keypoints,
    key_poses_clip,
    key_poses_keyframes,
    pixels,
    pose_sequence,
    sample_inputs,
    thumbnail,
)

SD15_CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
SD15_CHECKPOINT_URL = (
    "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
    "v1-5-pruned-emaonly-fp16.safetensors?download=true"
)
ADAPTER = "stable_pose_humanart.safetensors"
DEPTH_CONTROLNET = "control_v11f1p_sd15_depth_fp16.safetensors"
DEPTH_CONTROLNET_URL = (
    "https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/"
    "control_v11f1p_sd15_depth_fp16.safetensors?download=true"
)
# model folder -> file the workflows name
MODEL_FILES = {"checkpoints": SD15_CHECKPOINT, "stable_pose": ADAPTER, "controlnet": DEPTH_CONTROLNET}
SEED = 20241210


# ----- pieces the specs share -----


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


def photo_pose(extract_pos: tuple[int, int]) -> tuple[Node, Node, Node]:
    """The sample photo, resized (centre crop) to the generated size, and Extract Poses (blazepose) on it."""
    return (
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
            extract_pos,
            (340, 110),
            widgets={"backend": "blazepose"},
            links={"image": "resize.IMAGE"},
        ),
    )


def pose_sequence_input() -> tuple[Node, Node]:
    """A multi-frame image of poses and its size (one latent per pose)."""
    return (
        Node("poses", "LoadImage", (40, 420), (340, 520), "Pose sequence", {"image": POSE_SEQUENCE}),
        Node("size", "GetImageSize", (40, 1000), (340, 100), links={"image": "poses.IMAGE"}),
    )


def per_pose_latents(x: int, y: int, batch_size: int) -> tuple[Node, Node]:
    """One empty latent per pose (sized by the ``size`` node), all with the same noise."""
    return (
        Node(
            "latent",
            "EmptyLatentImage",
            (x, y),
            (400, 110),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1], "batch_size": batch_size},
            links={"width": "size.width", "height": "size.height", "batch_size": "size.batch_size"},
        ),
        Node(
            "same_noise",
            "LatentBatchSeedBehavior",
            (x, y + 180),
            (400, 80),
            "Same noise for every frame",
            {"seed_behavior": "fixed"},
            {"samples": "latent.LATENT"},
        ),
    )


def save_animation(pos: tuple[int, int], prefix: str, fps: float) -> Node:
    options = {"filename_prefix": prefix, "fps": fps, "lossless": False, "quality": 90}
    return Node("animation", "SaveAnimatedWEBP", pos, (520, 520), "Save animation", options, {"images": "decode.IMAGE"})


MODELS_TEXT = f"""
Models:
- Load Checkpoint: an SD1.5 checkpoint in models/checkpoints ({SD15_CHECKPOINT}; ComfyUI offers to download it,
  any SD1.5 fine-tune works). SDXL, SD2 and Flux are refused: Stable-Pose adapters are trained on SD1.5.
- Load Adapter (Stable-Pose): an adapter in models/stable_pose. The authors' checkpoint (.pth/.ckpt, linked from
  the official Stable-Pose repository) loads as is; "python -m stablepose_core.convert final.pth {ADAPTER}"
  (in the pack folder) makes the smaller file this workflow names.
"""

APPLY_TEXT = """
Apply Adapter (Stable-Pose): strength 1 is the paper's setting; start/end percent limit the steps it acts on. The mask
settings (schedule, kernels, sigma, threshold) default to the released model's.
"""


TXT2IMG_NOTE = f"""
Stable-Pose text-to-image: an SD1.5 image of a person in the pose of a pose image.
{MODELS_TEXT}
Pose image: a Stable-Pose pose image (COCO-17 skeleton in HumanSD colours on black), e.g. {EXAMPLE_POSE}
from this pack's workflows/ folder (upload it), or one made with Extract Poses (Stable-Pose) or Edit Poses
(Stable-Pose). ControlNet OpenPose pictures are drawn differently: redraw them with Extract Poses (Stable-Pose).

Empty Latent Image: 512x768 like the pose; other sizes work (the pose is resized and centre-cropped onto the
latent), keep the aspect ratio close.
{APPLY_TEXT}
Preview Attention Masks (Stable-Pose): where pose-masked attention looks, per ViT layer (left the latent grid, right the
patch grid).
"""


def txt2img() -> Spec:
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
        note("note", (-420, 100), (380, 840), TXT2IMG_NOTE),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Pose", ("pose",)),
        Group("Prompt and Stable-Pose", ("positive", "negative", "apply", "latent")),
        Group("Sampling", ("sampler", "decode", "save")),
    )
    return Spec("stable_pose_txt2img", nodes, groups)


PHOTO_TO_IMAGE_NOTE = f"""
Photo -> pose -> image: the pose of the person in a photo, adjusted if you like, drives a new image.

Photo: any photo of people ({PHOTO} from this pack's workflows/ folder is an example: upload it). "Resize to
the generated size" scales and centre-crops it to 512x768; for a landscape photo set 768x512 there and in Empty
Latent Image.

Extract Poses (Stable-Pose) finds the people (blazepose is built in and offline; the other detectors are listed
in its tooltip) and draws them as Stable-Pose was trained to see poses.

Edit Poses (Stable-Pose): after a first run, click "Open pose editor", then "Load from input" to edit the detected
pose over the photo; "Apply" stores the edit in the node. With no edit the detected pose passes through.
{MODELS_TEXT}{APPLY_TEXT}"""


def photo_to_image() -> Spec:
    nodes = (
        *photo_pose(extract_pos=(440, 100)),
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
        note("note", (-420, 100), (380, 860), PHOTO_TO_IMAGE_NOTE),
    )
    groups = (
        Group("Photo", ("photo", "resize")),
        Group("Pose", ("extract", "extracted_view", "editor", "masks", "masks_view")),
        Group("Models, prompt and Stable-Pose", ("ckpt", "adapter", "positive", "negative", "apply", "latent")),
        Group("Sampling", ("sampler", "decode", "save")),
    )
    return Spec("photo_to_pose_to_image", nodes, groups)


POSE_BATCH_NOTE = f"""
Pose sequence -> frames: one generated frame per pose, with the same prompt and the same noise for every frame
(Latent Batch Seed Behavior "fixed", KSampler seed "fixed"), so frames differ where the poses differ.

Pose sequence: a Load Image of a multi-frame image (animated WebP or GIF) gives all its frames as a batch;
{POSE_SEQUENCE} in this pack's workflows/ folder is an example (upload it). Single poses work too: join them
with Batch Images nodes. Get Image Size sets the latent size and batch size from the poses, so there is always
one latent per pose.
{MODELS_TEXT}{APPLY_TEXT}
Frames are saved one by one and as an animated WebP (Save Animated WEBP: fps sets the speed).
"""


def pose_batch() -> Spec:
    nodes = (
        checkpoint((40, 100)),
        adapter((40, 260)),
        *pose_sequence_input(),
        *prompts(
            440,
            100,
            "an astronaut in a white spacesuit doing jumping jacks on the moon, full body, "
            "photograph, detailed, high quality",
        ),
        apply_stable_pose((440, 500), "poses.IMAGE"),
        *per_pose_latents(440, 800, 4),
        *sampling(900, 100, "same_noise.LATENT"),
        save_image("save", (1300, 80), (520, 420), "Save frames", "stable_pose/frames", "decode.IMAGE"),
        save_animation((1300, 600), "stable_pose/animation", 1000 / SEQUENCE_FRAME_MS),
        note("note", (-420, 100), (380, 760), POSE_BATCH_NOTE),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Poses", ("poses", "size")),
        Group("Prompt and Stable-Pose", ("positive", "negative", "apply", "latent", "same_noise")),
        Group("Sampling", ("sampler", "decode", "save", "animation")),
    )
    return Spec("pose_batch_video", nodes, groups)


POSE_ANIMATION_NOTE = f"""
Pose sequence -> animation with context windows: one frame per pose, sampled through ComfyUI's Context Windows
(Manual) so clips longer than a window (hundreds of frames) fit in memory. Stable-Pose gives every frame its
own pose in every window; with an SD1.5 model each frame comes out as if the clip were sampled in one batch.

Pose sequence: a Load Image of a multi-frame image (animated WebP or GIF; {POSE_SEQUENCE} from this pack's
workflows/ folder is a 4-frame example: upload it) or poses extracted from a video's frames with Extract
Poses (Stable-Pose). Get Image Size makes one latent per pose.

Context Windows (Manual): length 16, overlap 4 is the usual AnimateDiff setting; windows only act on clips
longer than the length. With AnimateDiff-Evolved, use its Use Evolved Sampling + context options instead
(docs/video.md): Stable-Pose reads either kind of window.

Strength per frame: strength keyframes "frame:strength" (here full strength throughout; e.g. "0:1.0, 16:0.4, 31:1.0").
{MODELS_TEXT}{APPLY_TEXT}"""


def pose_animation() -> Spec:
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
        *pose_sequence_input(),
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
        *per_pose_latents(440, 820, 4),
        windowed,
        dataclasses.replace(sampler, links={**sampler.links, "model": "windows.MODEL"}),
        decode,
        save_animation((1300, 80), "stable_pose/animation", 1000 / SEQUENCE_FRAME_MS),
        note("note", (-420, 100), (380, 900), POSE_ANIMATION_NOTE),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("Poses", ("poses", "size", "frame_strength")),
        Group("Prompt, Stable-Pose and windows", ("positive", "negative", "apply", "latent", "same_noise", "windows")),
        Group("Sampling", ("sampler", "decode", "animation")),
    )
    return Spec("pose_animation_context_windows", nodes, groups)


PHOTO_TO_PREVIEW_NOTE = f"""
Photo -> Stable-Pose pose image, no model weights needed (tools/demo.sh runs this one headless).

Photo: {PHOTO} from this pack's workflows/ folder (upload it) or any photo of people; for the mask preview
both sides must be multiples of 8 px (SD1.5 latents are 1/8 of the image).

Extract Poses (Stable-Pose) draws each person's COCO-17 skeleton in the colours Stable-Pose was trained on (HumanSD's
drawing); blazepose is built in and offline, the other detectors are listed in its tooltip.

Saved: the pose image (what Apply Adapter (Stable-Pose) takes), the pose over the photo, and the masks of pose-masked
self-attention per ViT layer (left the latent grid, right the ViT patch grid).
"""


def photo_to_preview() -> Spec:
    nodes = (
        Node("photo", "LoadImage", (40, 100), (340, 460), "Photo", {"image": PHOTO}),
        Node(
            "extract",
            "OpenPoseExtract",
            (440, 100),
            (340, 110),
            widgets={"backend": "blazepose"},
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
        note("note", (-420, 100), (380, 560), PHOTO_TO_PREVIEW_NOTE),
    )
    groups = (
        Group("Pose", ("extract", "masks", "overlay")),
        Group("Saved", ("save_pose", "save_overlay", "save_masks")),
    )
    return Spec("photo_to_pose_preview", nodes, groups)


KEY_POSES_TO_VIDEO_NOTE = f"""
Key poses (or a video) -> smoothed pose sequence -> one generated frame per pose.

Edit Poses (Stable-Pose): the key poses. Click "Open pose editor": the timeline holds {KEY_POSE_FRAMES} frames with keys
at 0, 7 and 15 (a jumping jack). Drag joints on any frame to make it a key, scrub or Play to preview the
in-betweens (the server computes them with the same interpolation the node runs), Apply stores the keys.

From a video instead: Load Image of an animated WebP/GIF (or a video loader's IMAGE batch) -> Extract Poses
(Stable-Pose) with track_people and smooth on -> connect its pose_keypoint to Smooth Pose Sequence (Stable-Pose)
below (or to the editor's pose_keypoint, to edit the detected frames: "Keys from input").

Smooth Pose Sequence (Stable-Pose): One-Euro filter per person and joint (tooltips say what each setting trades);
key poses are already smooth, detected ones jitter. Draw Poses (Stable-Pose) renders one Stable-Pose pose image
per frame.
{MODELS_TEXT}{APPLY_TEXT}
Every frame uses the same noise (Latent Batch Seed Behavior "fixed"); frames are saved as an animated WebP.
"""


def key_poses_to_video() -> Spec:
    nodes = (
        Node(
            "editor",
            "StablePoseEditor",
            (40, 100),
            (340, 150),
            "Key poses",
            {"width": POSE_SIZE[0], "height": POSE_SIZE[1], "pose_json": json.dumps(key_poses_keyframes())},
        ),
        Node("smooth", "StablePoseSmooth", (40, 320), (340, 180), links={"pose_keypoint": "editor.pose_keypoint"}),
        Node("draw", "StablePoseDraw", (40, 560), (340, 110), links={"pose_keypoint": "smooth.pose_keypoint"}),
        Node("poses_view", "PreviewImage", (40, 720), (340, 480), "Pose sequence", links={"images": "draw.pose_image"}),
        Node("size", "GetImageSize", (40, 1260), (340, 100), links={"image": "draw.pose_image"}),
        checkpoint((440, 100)),
        adapter((440, 260)),
        *prompts(440, 380, "an astronaut in a white spacesuit doing jumping jacks on the moon, full body, photograph"),
        apply_stable_pose((440, 780), "draw.pose_image"),
        *per_pose_latents(440, 1080, KEY_POSE_FRAMES),
        *sampling(900, 100, "same_noise.LATENT"),
        save_animation((1300, 100), "stable_pose/key_poses", 8.0),
        note("note", (-420, 100), (380, 900), KEY_POSES_TO_VIDEO_NOTE),
    )
    groups = (
        Group("Poses", ("editor", "smooth", "draw", "poses_view", "size")),
        Group(
            "Models, prompt and Stable-Pose",
            ("ckpt", "adapter", "positive", "negative", "apply", "latent", "same_noise"),
        ),
        Group("Sampling", ("sampler", "decode", "animation")),
    )
    return Spec("key_poses_to_video", nodes, groups)


BEST_OF_N_NOTE = f"""
Best of N: generate 8 images for one pose and keep the 2 whose people stand in it best.

Photo -> pose as in "photo_to_pose_to_image" ({PHOTO} from this pack's workflows/ folder: upload it). Empty
Latent Image makes a batch of 8 candidates (batch_size); the sampler's seed gives each its own noise.

Score Pose Fidelity (Stable-Pose) detects the people in every candidate (blazepose; the other detectors are listed
in its tooltip) and compares them with the target pose by COCO's object keypoint similarity (OKS, 0 to 1): its overlay
shows the target in Stable-Pose colours, the detected people in white and, per joint, a line coloured by the
error (green good, red bad), with each image's OKS; "report" has the numbers per image and joint.

Select Best by Pose Fidelity (Stable-Pose) keeps the k best (k = 2) and gives their batch indices and scores; it
reuses the detections of Score Pose Fidelity (Stable-Pose) (its "detected" input), so the detector runs once. To
refine a winner, take its index into Latent From Batch. docs/evaluation.md explains the numbers.
{MODELS_TEXT}{APPLY_TEXT}"""


def best_of_n() -> Spec:
    nodes = (
        *photo_pose(extract_pos=(40, 820)),
        checkpoint((440, 100)),
        adapter((440, 260)),
        *prompts(440, 380, "a dancer in a flowing white dress, studio photograph, full body, detailed, high quality"),
        apply_stable_pose((440, 780), "extract.pose_image"),
        Node(
            "latent",
            "EmptyLatentImage",
            (440, 1080),
            (400, 110),
            "8 candidates",
            {"width": POSE_SIZE[0], "height": POSE_SIZE[1], "batch_size": 8},
        ),
        *sampling(900, 100, "latent.LATENT"),
        Node(
            "score",
            "StablePoseScore",
            (1260, 100),
            (340, 130),
            widgets={"backend": "blazepose"},
            links={"images": "decode.IMAGE", "target": "extract.pose_keypoint"},
        ),
        Node(
            "score_view",
            "PreviewImage",
            (1260, 290),
            (520, 760),
            "Pose fidelity of each candidate",
            links={"images": "score.overlay"},
        ),
        Node(
            "select",
            "StablePoseSelectBest",
            (1840, 100),
            (340, 150),
            widgets={"backend": "blazepose", "k": 2},
            links={"images": "decode.IMAGE", "target": "extract.pose_keypoint", "detected": "score.detected"},
        ),
        save_image("save", (1840, 310), (520, 760), "Best 2", "stable_pose/best_of_n", "select.images"),
        note("note", (-420, 100), (380, 1000), BEST_OF_N_NOTE),
    )
    groups = (
        Group("Pose", ("photo", "resize", "extract")),
        Group("Models, prompt and Stable-Pose", ("ckpt", "adapter", "positive", "negative", "apply", "latent")),
        Group("Sampling", ("sampler", "decode")),
        Group("Best of N", ("score", "score_view", "select", "save")),
    )
    return Spec("stable_pose_best_of_n", nodes, groups)


def rectify_conditioning(x: int, y: int) -> tuple[Node, ...]:
    """The rectify pass's conditioning: the body's depth through a depth ControlNet, and its negative prompt."""
    controlnet = {"name": DEPTH_CONTROLNET, "url": DEPTH_CONTROLNET_URL, "directory": "controlnet"}
    return (
        Node(
            "controlnet",
            "ControlNetLoader",
            (x, y + 420),
            (340, 60),
            "Load ControlNet (SD1.5 depth)",
            {"control_net_name": DEPTH_CONTROLNET},
            properties={"models": [controlnet]},
        ),
        Node(
            "fix_negative",
            "CLIPTextEncode",
            (x, y + 530),
            (340, 110),
            "Rectify negative prompt",
            {"text": "deformed, bad anatomy"},
            {"clip": "ckpt.CLIP"},
            colors=("#322", "#533"),
        ),
        Node(
            "depth",
            "ControlNetApplyAdvanced",
            (x + 380, y),
            (320, 190),
            links={
                "positive": "positive.CONDITIONING",
                "negative": "fix_negative.CONDITIONING",
                "control_net": "controlnet.CONTROL_NET",
                "image": "render.depth",
            },
        ),
    )


def rectify_pass(x: int, y: int) -> tuple[Node, ...]:
    """Diffusion-HPC's regeneration: the first image's latents noised inside the person mask, the body's depth into a
    depth ControlNet and the target pose into Stable-Pose, denoise 0.7, then the gate."""
    mask_links = {"image": "decode.IMAGE", "pose_keypoint": "extract.pose_keypoint", "silhouette": "render.mask"}
    widgets = {"seed": SEED, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"}
    return (
        Node(
            "mask", "StablePoseRectifyMask", (x, y), (340, 170), links={**mask_links, "target": "target.pose_keypoint"}
        ),
        Node("encode", "VAEEncode", (x, y + 220), (340, 50), links={"pixels": "decode.IMAGE", "vae": "ckpt.VAE"}),
        Node(
            "noised",
            "SetLatentNoiseMask",
            (x, y + 320),
            (340, 50),
            links={"samples": "encode.LATENT", "mask": "mask.mask"},
        ),
        *rectify_conditioning(x, y),
        Node(
            "resample",
            "KSampler",
            (x + 380, y + 240),
            (320, 270),
            "KSampler (rectify, denoise 0.7)",
            {**widgets, "denoise": 0.7},
            {
                "model": "apply.MODEL",
                "positive": "depth.positive",
                "negative": "depth.negative",
                "latent_image": "noised.LATENT",
            },
        ),
        Node(
            "redecode",
            "VAEDecode",
            (x + 380, y + 560),
            (320, 50),
            links={"samples": "resample.LATENT", "vae": "ckpt.VAE"},
        ),
        Node(
            "gate",
            "StablePoseRectifyGate",
            (x + 380, y + 660),
            (320, 130),
            links={"image": "decode.IMAGE", "body": "fit.body", "rectified": "redecode.IMAGE"},
        ),
    )


def rectify_evidence(x: int, y: int) -> tuple[Node, ...]:
    """Pose fidelity (OKS) and plausibility of the first image and the result, and the before/after preview."""
    score = {"images": "decode.IMAGE", "target": "target.pose_keypoint", "detected": "extract.pose_keypoint"}
    return (
        Node("score_before", "StablePoseScore", (x, y), (340, 130), "Score before", {"backend": "blazepose"}, score),
        Node(
            "score_after",
            "StablePoseScore",
            (x, y + 180),
            (340, 130),
            "Score after",
            {"backend": "blazepose"},
            {"images": "gate.image", "target": "target.pose_keypoint"},
        ),
        Node(
            "fit_after",
            "StablePoseFitBody",
            (x, y + 360),
            (340, 110),
            "Fit Body (result)",
            links={"image": "gate.image", "pose_keypoint": "score_after.detected"},
        ),
        Node(
            "preview",
            "StablePoseRectifyPreview",
            (x + 380, y),
            (340, 190),
            links={
                "image": "decode.IMAGE",
                "depth": "render.depth",
                "skeleton": "target.pose_image",
                "result": "gate.image",
                "score_before": "score_before.score",
                "score_after": "score_after.score",
                "plausibility_before": "fit.plausibility",
                "plausibility_after": "fit_after.plausibility",
            },
        ),
        Node(
            "preview_view",
            "PreviewImage",
            (x + 380, y + 240),
            (700, 330),
            "Before / after",
            links={"images": "preview.preview"},
        ),
        save_image("save", (x + 380, y + 620), (520, 760), "Rectified image", "stable_pose/rectified", "gate.image"),
    )


def body_fit(x: int, y: int) -> tuple[Node, Node, Node]:
    """The person in the first image, the 3D body fitted to them, and its renders."""
    return (
        Node(
            "extract",
            "OpenPoseExtract",
            (x, y),
            (340, 110),
            widgets={"backend": "blazepose"},
            links={"image": "decode.IMAGE"},
        ),
        Node(
            "fit",
            "StablePoseFitBody",
            (x, y + 160),
            (340, 110),
            links={"image": "decode.IMAGE", "pose_keypoint": "extract.pose_keypoint"},
        ),
        Node(
            "render",
            "StablePoseRenderBody",
            (x, y + 320),
            (340, 130),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1]},
            links={"body": "fit.body"},
        ),
    )


RECTIFY_NOTE = f"""
Rectify: an SD1.5 image of a person in a target pose; where the person comes out anatomically implausible it is
regenerated in the corrected pose (Diffusion-HPC with Stable-Pose as a second structure prior; docs/rectify.md).

1. Target pose (Edit Poses: edit it with "Open pose editor") -> Apply Adapter -> first image.
2. Extract Poses finds the person in it; Fit Body fits a 3D body to that pose and says whether it is humanly
   possible; Render Body draws the body's depth, silhouette and skeleton.
3. Rectify Gate: plausible images pass through untouched and nothing of the rectify pass is sampled. Otherwise
   the first image is VAE-encoded, noised only inside the Rectify Person Mask (body silhouette + the person's
   and the target's region, minus occluders; connect a MASK of objects in front of the person to "occluders") and
   regenerated at denoise 0.7 with the body's depth in a depth ControlNet, the target pose in Stable-Pose and the
   negative prompt "deformed, bad anatomy". Rectify Gate mode "all" rectifies every image (an extra cycle: feed
   its output back as the first image).
4. Rectify Preview Before and After: image | body depth | skeleton | result with OKS (higher is better) and
   plausibility score (lower is better) before -> after.

From a real photo instead of text: load it in place of the first image (VAE Decode) and connect Render Body's
pose_image to Apply Adapter (no target pose is known, so the body's own skeleton guides).
{MODELS_TEXT}- Load ControlNet: an SD1.5 depth ControlNet in models/controlnet ({DEPTH_CONTROLNET}).
{APPLY_TEXT}"""


def rectify() -> Spec:
    pose = example_pose_keypoints()
    target = Node(
        "target",
        "StablePoseEditor",
        (40, 420),
        (340, 150),
        "Target pose",
        {"width": pose.width, "height": pose.height, "pose_json": pose.to_json()},
    )
    nodes = (
        checkpoint((40, 100)),
        adapter((40, 260)),
        target,
        *prompts(440, 100, "a gymnast doing a cartwheel on a beach, full body, photograph, detailed, high quality"),
        apply_stable_pose((440, 500), "target.pose_image"),
        Node(
            "latent",
            "EmptyLatentImage",
            (440, 800),
            (400, 110),
            widgets={"width": POSE_SIZE[0], "height": POSE_SIZE[1]},
        ),
        *sampling(900, 100, "latent.LATENT"),
        *body_fit(1260, 100),
        *rectify_pass(1660, 100),
        *rectify_evidence(2460, 100),
        note("note", (-420, 100), (380, 1000), RECTIFY_NOTE),
    )
    groups = (
        Group("Models", ("ckpt", "adapter")),
        Group("First image", ("target", "positive", "negative", "apply", "latent", "sampler", "decode")),
        Group("Body", ("extract", "fit", "render")),
        Group(
            "Rectify",
            ("mask", "controlnet", "encode", "noised", "fix_negative", "depth", "resample", "redecode", "gate"),
        ),
        Group("Before / after", ("score_before", "score_after", "fit_after", "preview", "preview_view", "save")),
    )
    return Spec("stable_pose_rectify", nodes, groups)


SPECS = (txt2img, photo_to_image, pose_batch, photo_to_preview, key_poses_to_video, best_of_n, pose_animation, rectify)


def build_workflows(host: ComfyHost) -> dict[str, dict[str, Any]]:
    """``{file name: workflow}`` of every bundled workflow this script makes."""
    builder = WorkflowBuilder(host)
    return {f"{spec.name}.json": builder.build(spec) for spec in (make() for make in SPECS)}


# ----- thumbnails -----


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
    photo, pose, overlay = (pixels(result.output(ids[kind])) for kind in kinds)
    return [
        SampleImage("photo_to_pose_preview.jpg", (thumbnail(photo, pose, overlay),)),
        SampleImage("photo_to_pose_to_image.jpg", (thumbnail(photo, overlay),)),
        SampleImage("stable_pose_best_of_n.jpg", (thumbnail(photo, overlay),)),
        SampleImage("stable_pose_txt2img.jpg", (thumbnail(example_pose()),)),
        SampleImage("pose_editor.jpg", (thumbnail(example_pose()),)),
        SampleImage("pose_batch_video.jpg", (thumbnail(*pose_sequence()),)),
        SampleImage("key_poses_to_video.jpg", (thumbnail(*key_poses_clip()),)),
        SampleImage("pose_animation_context_windows.jpg", (thumbnail(*pose_sequence()),)),
        SampleImage("stable_pose_rectify.jpg", (thumbnail(example_pose()),)),
    ]


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


def install(models_root: Path, input_dir: Path, sources: dict[str, Path]) -> None:
    """Model files (``{models folder: path}``, e.g. the random test weights) linked under the names the workflows
    load, and the sample images copied into the input folder (as ComfyUI users upload them)."""
    for folder, name in MODEL_FILES.items():
        link = models_root / folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(sources[folder])
    input_dir.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        shutil.copyfile(WORKFLOWS_DIR / name, input_dir / name)


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
