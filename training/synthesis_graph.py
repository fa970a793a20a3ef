"""The ComfyUI prompt ``python -m training.synthesize`` runs for one image: the graph of the bundled
``workflows/stable_pose_rectify.json`` in ComfyUI's API format (``docs/rectify.md``).

Stable-Pose generation from the target pose -> pose detection -> body fit and render; with ``rectify``: the person's
noise mask, the body's depth into a depth ControlNet and the target pose into Stable-Pose, denoise 0.7 with
"deformed, bad anatomy" as negative, the plausibility gate, then detection, fit and render again on the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stablepose_core.poses.keypoints import PoseKeypoints

RECTIFY_NEGATIVE = "deformed, bad anatomy"  # Diffusion-HPC's negative prompt of the regeneration
RECTIFY_DENOISE = 0.7  # Diffusion-HPC's strength: the first image's latents noised to 70 %
# The nodes whose outputs make a dataset entry, by role: (node id, output slot).
FINAL_IMAGE, DETECTED, BODY, DEPTH, SILHOUETTE = "final_image", "detected", "body", "depth", "silhouette"


@dataclass(frozen=True)
class Settings:
    """Everything that decides the images (a resumed run must use the same)."""

    checkpoint: str
    adapter: str
    width: int
    height: int
    negative: str = "lowres, bad anatomy, bad hands, missing fingers, extra limbs, cropped, worst quality, blurry"
    steps: int = 25
    cfg: float = 7.5
    sampler: str = "dpmpp_2m"
    scheduler: str = "karras"
    backend: str = "blazepose"
    body: bool = True
    rectify: bool = False
    controlnet: str = ""
    rectify_negative: str = RECTIFY_NEGATIVE
    denoise: float = RECTIFY_DENOISE
    grow: int = 16

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def _sampler(settings: Settings, seed: int, positive: list, negative: list, latent: list, denoise: float) -> dict:
    """A KSampler on the Stable-Pose-patched model (``apply``) with the run's sampling settings."""
    return _node(
        "KSampler",
        model=["apply", 0],
        positive=positive,
        negative=negative,
        latent_image=latent,
        seed=seed,
        steps=settings.steps,
        cfg=settings.cfg,
        sampler_name=settings.sampler,
        scheduler=settings.scheduler,
        denoise=denoise,
    )


def generation(settings: Settings, pose: PoseKeypoints, prompt: str, seed: int) -> dict[str, dict[str, Any]]:
    """Checkpoint + Stable-Pose adapter, the target pose drawn by the editor node on its own canvas (Apply
    Stable-Pose maps it onto the latent), text -> image."""
    return {
        "ckpt": _node("CheckpointLoaderSimple", ckpt_name=settings.checkpoint),
        "adapter": _node("LoadStablePose", adapter_name=settings.adapter),
        "target": _node("StablePoseEditor", width=pose.width, height=pose.height, pose_json=pose.to_json()),
        "positive": _node("CLIPTextEncode", text=prompt, clip=["ckpt", 1]),
        "negative": _node("CLIPTextEncode", text=settings.negative, clip=["ckpt", 1]),
        "apply": _node("ApplyStablePose", model=["ckpt", 0], stable_pose=["adapter", 0], pose_image=["target", 0]),
        "latent": _node("EmptyLatentImage", width=settings.width, height=settings.height, batch_size=1),
        "sampler": _sampler(settings, seed, ["positive", 0], ["negative", 0], ["latent", 0], 1.0),
        "decode": _node("VAEDecode", samples=["sampler", 0], vae=["ckpt", 2]),
    }


def body_of(image: list[Any], settings: Settings, prefix: str) -> dict[str, dict[str, Any]]:
    """Detect the people in ``image``, fit the body to them and render it at the image's size (without
    ``settings.body``: only detect)."""
    extract = {f"{prefix}extract": _node("OpenPoseExtract", image=image, backend=settings.backend)}
    if not settings.body:
        return extract
    return extract | {
        f"{prefix}fit": _node("StablePoseFitBody", image=image, pose_keypoint=[f"{prefix}extract", 1]),
        f"{prefix}render": _node(
            "StablePoseRenderBody", body=[f"{prefix}fit", 0], width=settings.width, height=settings.height
        ),
    }


def rectification(settings: Settings, seed: int) -> dict[str, dict[str, Any]]:
    """Regenerate the person of the first image (``decode``) guided by its body (``first_*``), then the gate."""
    return {
        "mask": _node(
            "StablePoseRectifyMask",
            image=["decode", 0],
            pose_keypoint=["first_extract", 1],
            grow=settings.grow,
            silhouette=["first_render", 1],
            target=["target", 1],
        ),
        "encode": _node("VAEEncode", pixels=["decode", 0], vae=["ckpt", 2]),
        "noised": _node("SetLatentNoiseMask", samples=["encode", 0], mask=["mask", 0]),
        "controlnet": _node("ControlNetLoader", control_net_name=settings.controlnet),
        "fix_negative": _node("CLIPTextEncode", text=settings.rectify_negative, clip=["ckpt", 1]),
        "depth": _node(
            "ControlNetApplyAdvanced",
            positive=["positive", 0],
            negative=["fix_negative", 0],
            control_net=["controlnet", 0],
            image=["first_render", 0],
            strength=1.0,
            start_percent=0.0,
            end_percent=1.0,
        ),
        "resample": _sampler(settings, seed, ["depth", 0], ["depth", 1], ["noised", 0], settings.denoise),
        "redecode": _node("VAEDecode", samples=["resample", 0], vae=["ckpt", 2]),
        "gate": _node("StablePoseRectifyGate", image=["decode", 0], body=["first_fit", 0], rectified=["redecode", 0]),
    }


def job_prompt(
    settings: Settings, pose: PoseKeypoints, prompt: str, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, int]]]:
    """The API prompt for one image (no widget defaults filled in) and where its results are
    (``{FINAL_IMAGE: (node id, slot), DETECTED: ..., BODY: ..., DEPTH: ..., SILHOUETTE: ...}``)."""
    graph = generation(settings, pose, prompt, seed)
    final = ["decode", 0]
    if settings.rectify:
        graph |= body_of(final, settings, "first_") | rectification(settings, seed)
        final = ["gate", 0]
    graph |= body_of(final, settings, "")
    # output nodes: ComfyUI runs what they need
    graph["save_image"] = _node("PreviewImage", images=final)
    graph["save_pose"] = _node("PreviewImage", images=["extract", 0])
    where = {FINAL_IMAGE: (final[0], final[1]), DETECTED: ("extract", 1)}
    if settings.body:
        graph["save_depth"] = _node("PreviewImage", images=["render", 0])
        where |= {BODY: ("fit", 0), DEPTH: ("render", 0), SILHOUETTE: ("render", 1)}
    return graph, where
