"""SMPLify-style optimisation (Bogo et al., ECCV 2016) of the body model to 2D keypoints: the HMR step
of Diffusion-HPC (Weng et al., 3DV 2024, which uses BEV): pose, phenotype and a camera translation are found so
the model's COCO-17 joints project onto the keypoints, with the range-of-motion limits as a prior.

Every person of every frame is one row of one batched optimisation. Each person is fitted twice, starting facing
the camera and facing away; the better fit (data + prior) is kept, so a skeleton drawn from behind (left and right
swapped on the image) gives a body facing away. Where BlazePose's 3D world landmarks exist they pull the joints'
depth too. Deterministic: no random starts; the same inputs give the same fit on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .camera import body_to_camera, focal_length, project
from .limits import excess, limit_table
from .model import DOF_NAMES, PHENOTYPES, BodyModel, RestState

MIN_KEYPOINTS = 5  # fewer visible joints leave the pose and the distance undetermined


@dataclass(frozen=True)
class FitSettings:
    """Iterations of the three stages (camera; pose; pose and phenotype), the learning rate and the weights of
    the prior terms."""

    camera_iterations: int = 30
    pose_iterations: int = 250
    body_iterations: int = 40
    learning_rate: float = 0.04
    limit_weight: float = 4.0  # squared radians beyond a limit
    pose_weight: float = 0.01  # squared radians from the rest pose
    phenotype_weight: float = 0.05  # squared distance of each phenotype from average (0.5)
    world_weight: float = 0.1  # squared metres from BlazePose's world landmarks (where given)


@dataclass(frozen=True)
class FitTargets:
    """N people: keypoints ``(N, 17, 2)`` px, their confidences ``(N, 17)`` (0 = not visible), image sizes
    ``(N, 2)`` as (width, height), optional world landmarks ``(N, 17, 3)`` m in camera axes with weights."""

    keypoints: torch.Tensor
    confidence: torch.Tensor
    sizes: torch.Tensor
    world: torch.Tensor | None = None
    world_weights: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor:
        """Data weights: the square root of the confidence, so a detector's guess at a hidden joint still counts
        (Stable-Pose draws it) but pulls less than a joint it sees."""
        return self.confidence.clamp(0.0, 1.0).sqrt()

    def repeat(self, times: int) -> FitTargets:
        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat(times, *([1] * (t.dim() - 1)))

        return FitTargets(
            *(rep(t) for t in (self.keypoints, self.confidence, self.sizes, self.world, self.world_weights))
        )


@dataclass(frozen=True)
class FitResult:
    """Per person: axis-angle ``rotation (N, 3)``, camera ``translation (N, 3)`` m, ``dofs (N, D)`` rad, ``phenotype
    (N, 6)`` in 0..1, ``focal (N,)`` px, the fitted joints in camera axes ``(N, 17, 3)`` and on the image
    ``(N, 17, 2)``, and the final objective ``(N,)``."""

    rotation: torch.Tensor
    translation: torch.Tensor
    dofs: torch.Tensor
    phenotype: torch.Tensor
    focal: torch.Tensor
    joints: torch.Tensor
    projected: torch.Tensor
    loss: torch.Tensor


def person_size(keypoints: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Diagonal of the box around each person's visible keypoints, px ``(N,)`` (the unit of every fit error)."""
    visible = weights[..., None] > 0
    low = torch.where(visible, keypoints, torch.full_like(keypoints, math.inf)).amin(1)
    high = torch.where(visible, keypoints, torch.full_like(keypoints, -math.inf)).amax(1)
    return (high - low).norm(dim=-1).clamp_min(1.0)


def fit_people(
    model: BodyModel,
    targets: FitTargets,
    settings: FitSettings | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Fit every person of ``targets`` (each needs :data:`MIN_KEYPOINTS` visible joints); ``on_step(done, total)``
    is called each iteration (progress, interruption). Stages: the camera alone, then the pose on the average
    body, then pose and phenotype together."""
    settings = settings or FitSettings()
    count = targets.keypoints.shape[0]
    both = targets.repeat(2)
    yaw = torch.tensor([0.0] * count + [math.pi] * count, device=model.device)
    params = _initial_parameters(model, both, yaw)
    stages = (
        (("rotation", "translation"), 0.05, settings.camera_iterations),
        (("rotation", "translation", "dofs"), settings.learning_rate, settings.pose_iterations),
        (tuple(params), settings.learning_rate * 0.5, settings.body_iterations),
    )
    total, done = sum(stage[2] for stage in stages), 0
    for names, lr, steps in stages:
        offset = done
        progress = on_step and (lambda i, offset=offset: on_step(offset + i, total))
        _optimise(model, both, params, names, settings, lr, steps, progress)
        done += steps
    with torch.no_grad():
        result = _evaluate(model, both, params, settings)
    best = (result.loss[count:] < result.loss[:count]).long() * count + torch.arange(count, device=model.device)
    return FitResult(*(getattr(result, name)[best] for name in FitResult.__dataclass_fields__))


def _initial_parameters(model: BodyModel, targets: FitTargets, yaw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rest pose, average phenotype, the body turned by ``yaw`` and placed where its rest joints best match the
    keypoints' spread (the median ratio of 2D to 3D distances between visible joint pairs gives the depth)."""
    batch, device = yaw.shape[0], model.device
    rotation = torch.stack([torch.zeros_like(yaw), torch.zeros_like(yaw), yaw], -1)
    with torch.no_grad():
        rest = model.joints(torch.zeros(1, len(DOF_NAMES), device=device), torch.full((1, 6), 0.5, device=device))
        rest_cam = body_to_camera(rest.expand(batch, -1, -1), rotation, torch.zeros(batch, 3, device=device))
    focal = torch.tensor([focal_length(w, h) for w, h in targets.sizes.tolist()], device=device)
    pair_2d = torch.cdist(targets.keypoints, targets.keypoints)
    pair_3d = torch.cdist(rest_cam[..., :2], rest_cam[..., :2]).clamp_min(1e-3)
    pairs = (targets.weights[:, :, None] > 0) & (targets.weights[:, None, :] > 0) & (pair_3d > 0.1)
    ratio = torch.where(pairs, pair_2d / pair_3d, torch.full_like(pair_2d, math.nan)).flatten(1).nanmedian(1).values
    depth = focal / ratio.clamp_min(1e-3)
    weights = targets.weights[..., None]
    centre_2d = (targets.keypoints * weights).sum(1) / weights.sum(1)
    centre_3d = (rest_cam[..., :2] * weights).sum(1) / weights.sum(1)
    xy = (centre_2d - targets.sizes / 2) * (depth / focal)[:, None] - centre_3d
    return {
        "rotation": rotation,
        "translation": torch.cat([xy, depth.clamp(0.3, 1e4).log()[:, None]], -1),
        "dofs": torch.zeros(batch, len(DOF_NAMES), device=device),
        "phenotype": torch.zeros(batch, len(PHENOTYPES), device=device),  # logits: 0 = average
        "focal": focal,
    }


def _optimise(
    model: BodyModel,
    targets: FitTargets,
    params: dict[str, torch.Tensor],
    names: tuple[str, ...],
    settings: FitSettings,
    lr: float,
    steps: int,
    on_step: Callable[[int, int], None] | None,
) -> None:
    trained = [name for name in names if name != "focal"]
    rest = None if "phenotype" in trained else model.rest(torch.sigmoid(params["phenotype"]))
    for name in trained:
        params[name].requires_grad_(True)
    optimiser = torch.optim.Adam([params[name] for name in trained], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1), eta_min=lr * 0.1)
    for step in range(steps):
        optimiser.zero_grad(set_to_none=True)
        _evaluate(model, targets, params, settings, rest).loss.sum().backward()
        optimiser.step()
        schedule.step()
        if on_step is not None:
            on_step(step + 1, steps)
    for name in trained:
        params[name].requires_grad_(False)


def _evaluate(
    model: BodyModel,
    targets: FitTargets,
    params: dict[str, torch.Tensor],
    settings: FitSettings,
    rest: RestState | None = None,
) -> FitResult:
    """The objective per person: squared reprojection error in units of the person's size, plus the priors
    (``rest``: the unposed bodies when the phenotype is not being fitted)."""
    phenotype = torch.sigmoid(params["phenotype"])
    translation = torch.cat([params["translation"][:, :2], params["translation"][:, 2:].exp()], -1)
    body = model.posed_joints(params["dofs"], rest if rest is not None else model.rest(phenotype))
    joints = body_to_camera(body, params["rotation"], translation)
    projected = project(joints, params["focal"], targets.sizes / 2)
    size = person_size(targets.keypoints, targets.weights)
    error = ((projected - targets.keypoints).norm(dim=-1) / size[:, None]).square()
    loss = (error * targets.weights).sum(1) / targets.weights.sum(1).clamp_min(1e-6)
    loss = loss + settings.limit_weight * excess(params["dofs"], limit_table()).square().sum(1)
    loss = loss + settings.pose_weight * params["dofs"].square().mean(1)
    loss = loss + settings.phenotype_weight * (phenotype - 0.5).square().sum(1)
    if targets.world is not None and targets.world_weights is not None:
        hips = joints[:, 11:13].mean(1, keepdim=True)
        world_error = (joints - hips - targets.world).square().sum(-1)
        loss = loss + settings.world_weight * (world_error * targets.world_weights).sum(1) / targets.world_weights.sum(
            1
        ).clamp_min(1e-6)
    return FitResult(
        params["rotation"], translation, params["dofs"], phenotype, params["focal"], joints, projected, loss
    )
