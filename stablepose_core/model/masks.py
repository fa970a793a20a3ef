"""Pose masks for PMSA (Wang et al. 2024, Sec. 3.2) and the pose-weighted loss, as the released code makes them.

A pose image is a skeleton on black scaled to [-1, 1]. A mask for Gaussian kernel ``k``: blur the image
(kernel k×k, σ, reflect padding as torchvision's ``GaussianBlur``), a pixel counts where any channel exceeds
``threshold``, the latent cell (8×8 px) counts where any of its pixels does. The PMSA ViT pools it further to
its patch grid. Released behaviour, measured by running the official code:

- evaluation (``eval_pose.py``, the paper's numbers): threshold -0.99, kernels [23, 13]; unconditional rows
  are unmasked; the [uncond; cond] concatenation the DDIM sampler builds and the ViT's split by batch size
  give ViT layer 0 the k=23 mask on cond rows and layer 1 the k=13 mask on cond rows: schedule ``evaluation``
  (also the paper's stated coarse-to-fine intent).
- training (``get_input``): threshold ``> -1`` on every row, layer 0 ← k=23, layer 1 ← k=13, loss ← k=13.
  The blurred -1 background is not exactly -1 in float32 (about -0.99999982 for k=23), so layer 0 covers
  the whole frame; k=13 sums exactly and gives the blur's support. Schedule ``training`` reproduces this.

:data:`SCHEDULES` is the pack's one table of names (nodes, training, docs); ``unmasked`` turns PMSA's masks off.
Earlier names stay accepted (:data:`SCHEDULE_ALIASES`: saved workflows say ``released`` or ``paper``, training
configs ``released_train``). Schedules other than ``training`` compare the blur of the *shifted* image
``pose + 1`` (background exactly 0) against ``threshold + 1``, so float roundoff cannot flip a background pixel.

Vocabulary: *pose masks* are these blurred-pose masks (one per kernel); the *region* is the user's MASK that
Apply Adapter (Stable-Pose) multiplies the residuals by (``nodes/stable_pose_patch.py``), unrelated to PMSA.

Empty pose (nothing drawn in a row): its mask would be empty, which in the released code makes every pair
disallowed and PMSA a plain average of all tokens. We instead leave such a row unmasked (nothing drawn, no
constraint) and never produce NaN; ``PoseMaskPreview`` shows it as a full mask.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LATENT_SCALE = 8
EVAL_THRESHOLD = -0.99  # official eval_pose.gen_pose_mask
TRAIN_THRESHOLD = -1.0  # official get_input: "> -1"
# Blur matrices are size × size float32: 1 MiB at 512 px, 256 MiB at 8192 px. The cache keeps the recently used
# ones up to this many bytes (a matrix larger than the budget is used once and not kept).
BLUR_CACHE_BYTES = 256 << 20

EVALUATION, TRAINING, UNMASKED = "evaluation", "training", "unmasked"
# Per schedule, per ViT layer: (kernel index used on cond rows, kernel index used on uncond rows); None = full.
_SCHEDULES: dict[str, tuple[tuple[int | None, int | None], ...]] = {
    EVALUATION: ((0, None), (1, None)),
    TRAINING: ((0, 0), (1, 1)),
    UNMASKED: ((None, None), (None, None)),
}
SCHEDULES = tuple(_SCHEDULES)
# Names of earlier versions -> today's: the nodes' "released" and "paper" (one row), training's "released_train".
SCHEDULE_ALIASES = {"released": EVALUATION, "paper": EVALUATION, "released_train": TRAINING}


def schedule_name(name: str, aliases: dict[str, str] = SCHEDULE_ALIASES) -> str:
    """Today's name of a schedule named by its name or an earlier one; ValueError naming the choices otherwise."""
    name = aliases.get(name, name)
    if name not in _SCHEDULES:
        raise ValueError(f"unknown mask schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return name


@dataclass(frozen=True)
class MaskSettings:
    """How PMSA masks are built. Defaults reproduce the released evaluation (``eval_pose.py``)."""

    schedule: str = EVALUATION
    kernels: tuple[int, ...] = (23, 13)
    sigma: float = 3.0
    threshold: float = EVAL_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", schedule_name(self.schedule))  # an earlier name -> today's
        if len(self.kernels) < 2 or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError(f"mask kernels must be at least two odd sizes ≥ 1 (coarse, fine), got {self.kernels}")
        if not self.sigma > 0 or not math.isfinite(self.sigma):  # NaN fails both comparisons
            raise ValueError(f"mask sigma must be a finite number > 0, got {self.sigma}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"mask threshold must be a finite number, got {self.threshold}")

    @classmethod
    def for_schedule(cls, schedule: str) -> MaskSettings:
        """The official settings of a schedule: ``training`` with official training's threshold ``> -1``
        (``get_input``), the others with the evaluation threshold."""
        schedule = schedule_name(schedule)
        return cls(schedule, threshold=TRAIN_THRESHOLD if schedule == TRAINING else EVAL_THRESHOLD)

    @property
    def exact_roundoff(self) -> bool:
        """Only the released training test ``> -1`` depends on float roundoff; reproduce it there."""
        return self.schedule == TRAINING

    def pose_masks(self, pose_image: torch.Tensor, kernels: tuple[int, ...] | None = None) -> torch.Tensor:
        """:func:`pose_masks` with these settings (all kernels unless ``kernels`` is given)."""
        kernels = self.kernels if kernels is None else kernels
        return pose_masks(pose_image, kernels, self.sigma, self.threshold, self.exact_roundoff)


def gaussian_kernel1d(size: int, sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian torchvision's ``GaussianBlur`` uses (float32)."""
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, steps=size)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


class _BlurMatrixCache:
    """Least-recently-used blur matrices, bounded by their total size in bytes (not by count)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._matrices: OrderedDict[tuple[int, int, float], torch.Tensor] = OrderedDict()

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self._matrices.values())

    def clear(self) -> None:
        self._matrices.clear()

    def get(self, size: int, kernel: int, sigma: float) -> torch.Tensor:
        key = (size, kernel, sigma)
        if key in self._matrices:
            self._matrices.move_to_end(key)
            return self._matrices[key]
        matrix = _blur_matrix(size, kernel, sigma)
        if matrix.nbytes <= self.max_bytes:
            self._matrices[key] = matrix
            while self.nbytes > self.max_bytes:
                self._matrices.popitem(last=False)
        return matrix


def _blur_matrix(size: int, kernel: int, sigma: float) -> torch.Tensor:
    """(size, size) matrix M with ``row @ M`` = the reflect-padded 1-D Gaussian blur of ``row``.

    Reflect padding mirrors once, so it needs ``kernel // 2 < size`` (checked by :func:`check_kernels`).
    """
    pad = kernel // 2
    weights = gaussian_kernel1d(kernel, sigma)
    taps = torch.arange(size)[:, None] + torch.arange(kernel)[None, :] - pad  # source index of each tap
    taps = taps.abs()  # reflect at 0 ...
    taps = torch.where(taps > size - 1, 2 * (size - 1) - taps, taps)  # ... and at size - 1
    matrix = torch.zeros(size, size)
    matrix.index_put_(
        (taps.flatten(), torch.arange(size).repeat_interleave(kernel)), weights.repeat(size), accumulate=True
    )
    return matrix


BLUR_MATRICES = _BlurMatrixCache(BLUR_CACHE_BYTES)


def check_kernels(kernels: tuple[int, ...], height: int, width: int) -> None:
    """Refuse kernels whose reflect padding (``kernel // 2``) reaches past the image, as torchvision's
    ``GaussianBlur`` does (it would otherwise read mirrored-twice or wrapped-around pixels)."""
    largest = max(kernels)
    if largest // 2 >= min(height, width):
        raise ValueError(
            f"mask kernel {largest} is too large for a {width}×{height} px pose image: a kernel k needs both sides "
            f"larger than k // 2 ({largest // 2} px); use kernels of at most {2 * min(height, width) - 1} px or a "
            "larger image"
        )


def _blur(images: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (torchvision ``GaussianBlur`` semantics) as two matmuls."""
    h, w = images.shape[-2:]
    rows = BLUR_MATRICES.get(h, kernel, sigma).to(images.device)
    cols = BLUR_MATRICES.get(w, kernel, sigma).to(images.device)
    return rows.T @ (images @ cols)


def _blur_2d(images: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """Non-separable blur, the exact float path of torchvision (needed where roundoff is the behaviour)."""
    c = images.shape[1]
    k1 = gaussian_kernel1d(kernel, sigma).to(images.device)
    k2 = (k1[:, None] * k1[None, :]).expand(c, 1, kernel, kernel)
    pad = kernel // 2
    return F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="reflect"), k2, groups=c)


def pose_masks(
    pose_image: torch.Tensor, kernels: tuple[int, ...], sigma: float, threshold: float, exact_roundoff: bool = False
) -> torch.Tensor:
    """(len(kernels), B, H/8, W/8) bool latent-grid masks of a (B, 3, H, W) pose image in [-1, 1].

    ``exact_roundoff`` reproduces the released float path (non-separable blur of the raw image, so a
    ``> -1`` test sees the background's roundoff); otherwise the robust shifted comparison is used.
    """
    _check_pose_image(pose_image)
    check_kernels(kernels, *pose_image.shape[-2:])
    x = pose_image.float()
    if exact_roundoff:
        blurred = [_blur_2d(x, k, sigma).amax(dim=1, keepdim=True) for k in kernels]
        limit = threshold
    else:
        blurred = [_blur(x + 1.0, k, sigma).amax(dim=1, keepdim=True) for k in kernels]
        limit = threshold + 1.0
    pooled = F.max_pool2d(torch.cat(blurred, dim=1), LATENT_SCALE, ceil_mode=True)
    return pooled.transpose(0, 1) > limit


def pmsa_masks(pose_image: torch.Tensor, is_uncond: torch.Tensor, settings: MaskSettings) -> torch.Tensor:
    """(depth, B, H/8, W/8) bool masks for the PMSA ViT layers, row by row per the schedule.

    ``is_uncond``: (B,) bool, True for rows sampled with the negative/empty prompt.
    """
    return assemble_masks(settings.pose_masks(pose_image), is_uncond, settings)


def assemble_masks(by_kernel: torch.Tensor, is_uncond: torch.Tensor, settings: MaskSettings) -> torch.Tensor:
    """Per-layer masks from precomputed :func:`pose_masks` ``by_kernel`` (cheap: no blur), per the schedule."""
    full = torch.ones_like(by_kernel[0])
    empty_rows = ~by_kernel.flatten(2).any(dim=2)  # (K, B): nothing drawn -> unmasked
    by_kernel = by_kernel | empty_rows[:, :, None, None]
    uncond = is_uncond.to(by_kernel.device)[:, None, None]
    layers = []
    for cond_kernel, uncond_kernel in _SCHEDULES[settings.schedule]:
        cond_mask = full if cond_kernel is None else by_kernel[cond_kernel]
        uncond_mask = full if uncond_kernel is None else by_kernel[uncond_kernel]
        layers.append(torch.where(uncond, uncond_mask, cond_mask))
    return torch.stack(layers)


def training_loss_mask(pose_image: torch.Tensor, settings: MaskSettings | None = None) -> torch.Tensor:
    """(B, 1, H/8, W/8) float fine mask (last kernel) for the α-weighted loss of official ``p_losses``."""
    settings = settings or MaskSettings.for_schedule(TRAINING)
    return settings.pose_masks(pose_image, settings.kernels[-1:])[0, :, None].float()


def _check_pose_image(pose_image: torch.Tensor) -> None:
    if pose_image.ndim != 4 or pose_image.shape[1] != 3:
        raise ValueError(f"pose image must be (B, 3, H, W), got {tuple(pose_image.shape)}")
    h, w = pose_image.shape[-2:]
    if h % LATENT_SCALE or w % LATENT_SCALE:
        raise ValueError(f"pose image size must be a multiple of {LATENT_SCALE} px, got {w}×{h}")
