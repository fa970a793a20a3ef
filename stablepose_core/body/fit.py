"""Fit bodies to ``POSE_KEYPOINT`` poses: every person with enough visible joints is fitted (:mod:`.smplify`),
judged (:mod:`.plausibility`) and stored nearest first in a :class:`~.bodies.BodyBatch`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..poses.keypoints import VISIBILITY_THRESHOLD, PoseKeypoints
from .bodies import BodyBatch, FittedPerson, FrameBodies
from .camera import ANNY_TO_CAMERA, yaw_degrees
from .model import BodyModel, rotvec_to_matrix
from .plausibility import Plausibility, judge
from .smplify import MIN_KEYPOINTS, FitResult, FitSettings, FitTargets, fit_people

CHUNK = 32  # people optimised together (each twice: facing the camera and away)


def fit_bodies(
    model: BodyModel,
    poses: Sequence[PoseKeypoints],
    settings: FitSettings | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> BodyBatch:
    """One :class:`FrameBodies` per pose. ``on_step(done, total)`` reports iterations over all chunks."""
    settings = settings or FitSettings()
    entries = [(f, p) for f, pose in enumerate(poses) for p in range(pose.num_people)]
    fitted = [(f, p) for f, p in entries if _visible(poses[f])[p].sum() >= MIN_KEYPOINTS]
    people: dict[tuple[int, int], FittedPerson] = {}
    chunks = [fitted[i : i + CHUNK] for i in range(0, len(fitted), CHUNK)]
    steps = settings.camera_iterations + settings.pose_iterations + settings.body_iterations
    for c, chunk in enumerate(chunks):
        progress = on_step and (lambda i, _, c=c: on_step(c * steps + i, len(chunks) * steps))
        targets = _targets([poses[f] for f, _ in chunk], [p for _, p in chunk], model.device)
        result = fit_people(model, targets, settings, progress)
        for i, (verdict, (f, p)) in enumerate(zip(judge(result, targets), chunk, strict=True)):
            people[f, p] = _person(result, targets, i, p, verdict)
    frames = []
    for f, pose in enumerate(poses):
        mine = sorted((people[f, p] for p in range(pose.num_people) if (f, p) in people), key=_depth)
        skipped = tuple(
            {"person": p, "reason": f"fewer than {MIN_KEYPOINTS} visible keypoints"}
            for p in range(pose.num_people)
            if (f, p) not in people
        )
        frames.append(FrameBodies(pose.width, pose.height, tuple(mine), skipped))
    return BodyBatch(tuple(frames))


def _depth(person: FittedPerson) -> float:
    return person.translation[2]


def _visible(pose: PoseKeypoints) -> np.ndarray:
    return np.where(pose.visible, pose.keypoints[..., 2], 0.0)


def _targets(poses: list[PoseKeypoints], people: list[int], device: torch.device) -> FitTargets:
    """Keypoints weighted by their confidence (SMPLify's weighting), and BlazePose's world landmarks where the pose
    has them (weight 0 elsewhere)."""
    keypoints = np.stack([pose.keypoints[p, :, :2] for pose, p in zip(poses, people, strict=True)])
    weights = np.stack([_visible(pose)[p] for pose, p in zip(poses, people, strict=True)])
    sizes = np.array([[pose.width, pose.height] for pose in poses], np.float32)
    world = np.zeros((len(poses), 17, 4), np.float32)
    for i, (pose, p) in enumerate(zip(poses, people, strict=True)):
        if pose.world is not None:
            world[i] = pose.world[p]
    tensors = [torch.as_tensor(a, dtype=torch.float32, device=device) for a in (keypoints, weights, sizes, world)]
    has_world = bool(world[..., 3].any())
    world_weights = torch.where(tensors[3][..., 3] > VISIBILITY_THRESHOLD, tensors[3][..., 3], 0.0)
    return FitTargets(*tensors[:3], tensors[3][..., :3] if has_world else None, world_weights if has_world else None)


def _person(result: FitResult, targets: FitTargets, i: int, source: int, verdict: Plausibility) -> FittedPerson:
    chest = (
        ANNY_TO_CAMERA.to(result.rotation) @ rotvec_to_matrix(result.rotation[i]) @ rotvec_to_matrix(result.dofs[i, :3])
    )
    forward = chest @ torch.tensor([0.0, -1.0, 0.0], device=chest.device)
    seen = targets.keypoints[i][targets.weights[i] > 0]
    box = (*seen.amin(0).tolist(), *seen.amax(0).tolist())
    return FittedPerson(
        source=source,
        rotation=tuple(result.rotation[i].tolist()),
        translation=tuple(result.translation[i].tolist()),
        dofs=tuple(result.dofs[i].tolist()),
        phenotype=tuple(result.phenotype[i].tolist()),
        focal=float(result.focal[i]),
        joints_2d=tuple(tuple(point) for point in result.projected[i].tolist()),
        box=box,
        yaw_deg=float(yaw_degrees(forward[None])[0]),
        verdict=verdict,
    )
