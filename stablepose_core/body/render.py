"""Render fitted bodies: depth (near bright, background black, as the MiDaS maps SD1.5 depth ControlNets were
trained on), the silhouette, and the body's COCO-17 joints as a pose. Diffusion-HPC renders its SMPL mesh's depth
the same way for its depth-to-image step; occluders (its Mask R-CNN step) cut body parts hidden by objects.

Depth is ray cast against the posed meshes with NVIDIA Warp's BVH (``warp-lang``, installed with Anny), on the
CPU or the GPU of the body model. All people of an image are one mesh, so they occlude each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..poses.keypoints import PoseKeypoints
from .bodies import BodyBatch, FrameBodies
from .camera import body_to_camera
from .model import BodyModel

NEAR_GREY = 1.0  # the nearest body point
FAR_GREY = 0.2  # the farthest body point; the background is 0


@dataclass(frozen=True)
class RenderedFrame:
    """One image: ``depth (H, W)`` in 0..1, ``silhouette (H, W)`` 0/1, ``person (H, W)`` index into the frame's
    people (-1 background) and the body's joints as a pose."""

    depth: np.ndarray
    silhouette: np.ndarray
    person: np.ndarray
    pose: PoseKeypoints


def render_bodies(
    model: BodyModel, batch: BodyBatch, width: int, height: int, occluders: np.ndarray | None = None
) -> list[RenderedFrame]:
    """Render every frame at ``width`` × ``height`` (the fit's image stretched to it, like a resize).
    ``occluders``: ``(frames or 1, H, W)`` in 0..1; where above 0.5 the body is hidden."""
    frames = []
    for index, frame in enumerate(batch.frames):
        rendered = _render_frame(model, frame, width, height)
        if occluders is not None:
            hidden = occluders[min(index, len(occluders) - 1)] > 0.5
            rendered = RenderedFrame(
                np.where(hidden, 0.0, rendered.depth).astype(np.float32),
                np.where(hidden, 0.0, rendered.silhouette).astype(np.float32),
                np.where(hidden, -1, rendered.person),
                rendered.pose,
            )
        frames.append(rendered)
    return frames


def _render_frame(model: BodyModel, frame: FrameBodies, width: int, height: int) -> RenderedFrame:
    sx, sy = width / frame.width, height / frame.height
    pose = frame.pose(width, height)
    if not frame.people:
        blank = np.zeros((height, width), np.float32)
        return RenderedFrame(blank, blank, np.full((height, width), -1), pose)
    vertices = _camera_vertices(model, frame)
    focal = torch.tensor([[p.focal * sx, p.focal * sy] for p in frame.people[:1]])[0]
    z, face = _ray_cast(vertices, model.faces, width, height, focal)
    hit = face >= 0
    person = np.where(hit, face // model.faces.shape[0], -1)
    return RenderedFrame(_depth_image(z, hit), hit.astype(np.float32), person, pose)


def _camera_vertices(model: BodyModel, frame: FrameBodies) -> torch.Tensor:
    """All people's mesh vertices in the camera frame ``(people, V, 3)``."""
    device = model.device
    people = frame.people

    def stack(name: str) -> torch.Tensor:
        return torch.tensor([getattr(p, name) for p in people], dtype=torch.float32, device=device)

    with torch.no_grad():
        vertices = model(stack("dofs"), stack("phenotype")).vertices
        return body_to_camera(vertices, stack("rotation"), stack("translation"))


def _depth_image(z: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Inverse depth over the hit pixels, min-max mapped to :data:`FAR_GREY`..:data:`NEAR_GREY`; 0 elsewhere."""
    if not hit.any():
        return np.zeros(z.shape, np.float32)
    inverse = np.where(hit, 1.0 / np.maximum(z, 1e-6), 0.0)
    low, high = inverse[hit].min(), inverse[hit].max()
    spread = (inverse - low) / (high - low) if high > low else np.ones_like(inverse)
    return np.where(hit, FAR_GREY + (NEAR_GREY - FAR_GREY) * spread, 0.0).astype(np.float32)


def _ray_cast(
    vertices: torch.Tensor, faces: torch.Tensor, width: int, height: int, focal: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel (centre), the camera-frame depth of the first mesh hit and its face index (-1 for none); faces of
    person ``i`` are numbered from ``i * len(faces)``."""
    import warp as wp

    from .warp_kernels import cast_rays

    device = "cpu" if vertices.device.type == "cpu" else f"cuda:{vertices.device.index or 0}"
    count = vertices.shape[0]
    offsets = (torch.arange(count, device=faces.device) * vertices.shape[1])[:, None, None]
    indices = (faces[None] + offsets).reshape(-1).to(torch.int32)
    mesh = wp.Mesh(
        points=wp.from_torch(vertices.reshape(-1, 3).contiguous(), dtype=wp.vec3),
        indices=wp.from_torch(indices.contiguous().to(vertices.device), dtype=wp.int32),
    )
    depth = wp.zeros(width * height, dtype=float, device=device)
    face = wp.full(width * height, -1, dtype=int, device=device)
    inputs = [mesh.id, float(focal[0]), float(focal[1]), width / 2, height / 2, width, depth, face]
    wp.launch(cast_rays, dim=width * height, inputs=inputs, device=device)
    return depth.numpy().reshape(height, width), face.numpy().reshape(height, width)
