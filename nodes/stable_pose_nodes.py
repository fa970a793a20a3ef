"""LoadStablePose, ApplyStablePose and PoseMaskPreview: thin translations between ComfyUI types and the core."""

from __future__ import annotations

import comfy.model_management
import comfy.model_patcher
import comfy.ops
import folder_paths
import torch

from ..stablepose_core.model.adapter import AdapterConfig, StablePoseAdapter
from ..stablepose_core.model.checkpoints import load_adapter
from ..stablepose_core.model.mask_preview import mask_previews
from ..stablepose_core.model.masks import EVALUATION, SCHEDULES, MaskSettings, pmsa_masks, schedule_name
from ..stablepose_core.poses.image import rgb_pose_images
from ..stablepose_core.poses.keypoints import check_finite
from .model_folder import FOLDER_NAME
from .stable_pose_patch import PoseControl, SchedulePercent, StablePosePatch
from .strengths import FRAME_STRENGTHS, TIMESTEP_STRENGTHS, frame_strengths_from, timestep_strengths_from

CATEGORY = "Stable-Pose"
WRAPPER_KEY = "stable_pose"
ADDITIONAL_MODELS_KEY = "stable_pose"
SCHEDULE_HELP = (
    "evaluation: the masks of the authors' evaluation and the paper (positive-prompt rows: coarse mask in ViT "
    "layer 0, fine in layer 1; negative-prompt rows unmasked); training: the masks official training used (every "
    "row, threshold > -1; training's default); unmasked: plain self-attention. Saved workflows' released and "
    "paper mean evaluation, released_train means training"
)


def mask_settings_inputs() -> dict:
    return {
        "mask_schedule": (list(SCHEDULES), {"default": EVALUATION, "tooltip": SCHEDULE_HELP}),
        "coarse_kernel": (
            "INT",
            {
                "default": 23,
                "min": 1,
                "max": 255,
                "step": 2,
                "tooltip": "Gaussian kernel of the coarse mask (ViT layer 0)",
            },
        ),
        "fine_kernel": (
            "INT",
            {
                "default": 13,
                "min": 1,
                "max": 255,
                "step": 2,
                "tooltip": "Gaussian kernel of the fine mask (ViT layer 1)",
            },
        ),
        "sigma": (
            "FLOAT",
            {"default": 3.0, "min": 0.1, "max": 64.0, "step": 0.1, "tooltip": "Gaussian sigma of both mask blurs"},
        ),
        "threshold": (
            "FLOAT",
            {
                "default": -0.99,
                "min": -1.0,
                "max": 1.0,
                "step": 0.001,
                "tooltip": "a pixel is pose when its blurred value (pose image in [-1, 1]) exceeds this",
            },
        ),
    }


def accept_mask_schedule(mask_schedule: str = EVALUATION) -> bool | str:
    """``VALIDATE_INPUTS`` of the nodes with mask settings: today's schedule names and earlier ones (saved
    workflows say ``released`` or ``paper``), which the combo alone would refuse."""
    try:
        schedule_name(mask_schedule)
    except ValueError as error:
        return str(error)
    return True


def mask_settings(
    mask_schedule: str = EVALUATION,
    coarse_kernel: int = 23,
    fine_kernel: int = 13,
    sigma: float = 3.0,
    threshold: float = -0.99,
) -> MaskSettings:
    return MaskSettings(mask_schedule, (coarse_kernel, fine_kernel), sigma, threshold)


def video_inputs() -> dict:
    """ApplyStablePose's optional region mask and strength keyframe inputs; their defaults are the behaviour without
    them."""
    return {
        "mask": ("MASK", {"tooltip": "region mask: the pose acts only inside it (1, or 1 per frame); soft edges kept"}),
        "uncond_multiplier": (
            "FLOAT",
            {
                "default": 1.0,
                "min": 0.0,
                "max": 1.0,
                "step": 0.01,
                "tooltip": "strength on negative-prompt rows: 0 = positive rows only, 1 = released behaviour",
            },
        ),
        "frame_strength": (
            f"{FRAME_STRENGTHS},LATENT_KEYFRAME",
            {
                "tooltip": "strength keyframes per frame: Strength per Frame (Stable-Pose) or Advanced-ControlNet's "
                "latent keyframes"
            },
        ),
        "timestep_strength": (
            f"{TIMESTEP_STRENGTHS},TIMESTEP_KEYFRAME",
            {
                "tooltip": "strength keyframes over the steps: Strength over Steps (Stable-Pose) or "
                "Advanced-ControlNet's timestep keyframes"
            },
        ),
    }


def region_mask(mask: torch.Tensor) -> torch.Tensor:
    """A ComfyUI MASK, (H, W) or (M, H, W), as (M, H, W) float in [0, 1]; NaN/inf values are refused (they would
    make every latent NaN: a black image reported as a success)."""
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"Stable-Pose: the mask must be (H, W) or (frames, H, W), got {tuple(mask.shape)}")
    bad = int((~torch.isfinite(mask)).sum())
    if bad:
        raise ValueError(f"Stable-Pose: the mask has {bad} NaN or infinite value(s); mask values are 0 to 1")
    return mask.float().clamp(0.0, 1.0)


class LoadStablePose:
    """Load a Stable-Pose adapter (the authors' .pth/.ckpt or our .safetensors) from ``models/stable_pose``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "adapter_name": (
                    folder_paths.get_filename_list(FOLDER_NAME),
                    {"tooltip": "Adapter file in models/stable_pose: the authors' .pth/.ckpt or a .safetensors"},
                )
            }
        }

    RETURN_TYPES = ("STABLE_POSE",)
    FUNCTION = "load"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = (
        "Loads a Stable-Pose adapter (pose-masked ViT on a copy of the SD1.5 encoder) for Apply Adapter (Stable-Pose). "
        "The architecture is read from the file; files that are not adapters get an error naming what they are."
    )

    def load(self, adapter_name: str):
        path = folder_paths.get_full_path_or_raise(FOLDER_NAME, adapter_name)
        load_device = comfy.model_management.get_torch_device()
        dtype = comfy.model_management.unet_dtype(supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
        manual_cast = comfy.model_management.unet_manual_cast(dtype, load_device)
        operations = comfy.ops.pick_operations(dtype, manual_cast, disable_fast_fp8=True)
        adapter = load_adapter(path, comfy.model_management.unet_offload_device(), dtype, operations)
        adapter.compute_dtype = manual_cast
        patcher = comfy.model_patcher.ModelPatcher(
            adapter, load_device=load_device, offload_device=comfy.model_management.unet_offload_device()
        )
        return (patcher,)


def check_base_model(model, config: AdapterConfig) -> None:
    """Refuse base models whose UNet the adapter cannot drive (SDXL, SD2, Flux, ...), before sampling."""
    model_config = model.model.model_config
    unet = getattr(model_config, "unet_config", {}) or {}
    expected = {
        "in_channels": config.in_channels,
        "model_channels": config.model_channels,
        "context_dim": config.context_dim,
        "channel_mult": list(config.channel_mult),
        "use_linear_in_transformer": config.use_linear_in_transformer,
    }
    found = {key: list(v) if isinstance(v, tuple) else v for key, v in ((k, unet.get(k)) for k in expected)}
    problems = [f"{k} {found[k]} (adapter needs {v})" for k, v in expected.items() if found[k] != v]
    if unet.get("adm_in_channels") is not None:
        problems.append("it has a pooled-text/size embedding (SDXL-style)")
    if problems:
        raise ValueError(
            f"Stable-Pose adapters drive SD1.5-family models; this model is {type(model_config).__name__}, "
            f"which differs: {'; '.join(problems)}"
        )


class ApplyStablePose:
    """Patch a MODEL so every sampling step in range adds the adapter's residuals for the pose image."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.5-family model (SDXL, SD2 and Flux are refused)"}),
                "stable_pose": ("STABLE_POSE", {"tooltip": "The adapter from Load Adapter (Stable-Pose)"}),
                "pose_image": ("IMAGE", {"tooltip": "Stable-Pose skeleton(s): 1 for all latents or 1 per latent"}),
                "strength": (
                    "FLOAT",
                    {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Scale of the residuals"},
                ),
                "start_percent": (
                    "FLOAT",
                    {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "First step it acts on"},
                ),
                "end_percent": (
                    "FLOAT",
                    {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": "Last step it acts on"},
                ),
            },
            "optional": {**mask_settings_inputs(), **video_inputs()},
        }

    VALIDATE_INPUTS = staticmethod(accept_mask_schedule)
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    CATEGORY = f"{CATEGORY}/conditioning"
    DESCRIPTION = (
        "Makes the model draw people in the pose of the pose image: at every sampling step in range the adapter "
        "reads the noisy latent, the prompt and the pose and adds its residuals to the UNet (like a ControlNet)."
    )

    def apply(
        self,
        model,
        stable_pose,
        pose_image,
        strength,
        start_percent,
        end_percent,
        mask=None,
        uncond_multiplier=1.0,
        frame_strength=None,
        timestep_strength=None,
        **mask_options,
    ):
        check_finite(
            strength=strength, start_percent=start_percent, end_percent=end_percent, uncond_multiplier=uncond_multiplier
        )
        pose_image = rgb_pose_images(pose_image)
        if start_percent > end_percent:
            raise ValueError(f"start_percent ({start_percent}) must not exceed end_percent ({end_percent})")
        adapter: StablePoseAdapter = stable_pose.model
        check_base_model(model, adapter.config)
        settings = mask_settings(**mask_options)
        frame_strengths = frame_strengths_from(frame_strength)
        timestep_strengths = timestep_strengths_from(timestep_strength)
        if strength == 0:
            return (model,)
        sampling = model.get_model_object("model_sampling")
        sigma_range = (sampling.percent_to_sigma(start_percent), sampling.percent_to_sigma(end_percent))
        control = PoseControl(
            adapter,
            pose_image,
            strength,
            sigma_range,
            settings,
            region=None if mask is None else region_mask(mask),
            uncond_multiplier=uncond_multiplier,
            frame_strengths=frame_strengths,
            timestep_strengths=timestep_strengths,
            schedule_percent=None if timestep_strengths is None else SchedulePercent.of(sampling),
        )
        patched = model.clone()
        StablePosePatch(control).register(patched, WRAPPER_KEY)
        key = f"{ADDITIONAL_MODELS_KEY}_{sum(k.startswith(ADDITIONAL_MODELS_KEY) for k in patched.additional_models)}"
        patched.set_additional_models(key, [stable_pose])
        return (patched,)


class PoseMaskPreview:
    """Show the per-layer PMSA masks of a pose image: [latent grid | ViT patch grid] over the pose."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pose_image": ("IMAGE", {"tooltip": "Stable-Pose skeleton(s), sides multiples of 8 px"}),
                "row": (["cond", "uncond"], {"tooltip": "masks of positive-prompt rows or negative-prompt rows"}),
                "patch_size": ("INT", {"default": 2, "min": 1, "max": 8, "tooltip": "ViT patch (2 as released)"}),
            },
            "optional": mask_settings_inputs(),
        }

    VALIDATE_INPUTS = staticmethod(accept_mask_schedule)
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("preview", "masks")
    FUNCTION = "preview"
    CATEGORY = f"{CATEGORY}/preview"
    DESCRIPTION = "Per pose and ViT layer: left the latent-grid mask, right the patch-grid mask PMSA uses."

    def preview(self, pose_image, row, patch_size, **mask_options):
        pose_image = rgb_pose_images(pose_image)
        height, width = pose_image.shape[1:3]
        if height % 8 or width % 8:
            raise ValueError(f"pose image size must be a multiple of 8 px (as SD1.5 latents), got {width}×{height}")
        pose = pose_image.movedim(-1, 1).float() * 2.0 - 1.0
        is_uncond = torch.full((pose.shape[0],), row == "uncond")
        masks = pmsa_masks(pose, is_uncond, mask_settings(**mask_options))
        return mask_previews(pose_image.float(), masks, patch_size)


NODE_CLASS_MAPPINGS = {
    "LoadStablePose": LoadStablePose,
    "ApplyStablePose": ApplyStablePose,
    "PoseMaskPreview": PoseMaskPreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadStablePose": "Load Adapter (Stable-Pose)",
    "ApplyStablePose": "Apply Adapter (Stable-Pose)",
    "PoseMaskPreview": "Preview Attention Masks (Stable-Pose)",
}
