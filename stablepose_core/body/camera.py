"""The pinhole camera of a fitted body: OpenCV axes (x right, y down, z forward), focal length ``max(width,
height)`` pixels (a 53 degree field of view across the longer side, close to a normal photo lens), principal
point at the image centre. Anny's frame (Z up, facing -y) maps to it facing the camera by :data:`ANNY_TO_CAMERA`.
"""

from __future__ import annotations

import math

import torch

from .model import rotvec_to_matrix

# Anny (x left-of-body... +x is the body's left, y back, z up) -> camera (x right, y down, z away from the camera)
ANNY_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def focal_length(width: float, height: float) -> float:
    """The focal length in pixels of a ``width`` × ``height`` image."""
    return float(max(width, height))


def body_to_camera(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Anny-frame points ``(B, N, 3)`` -> camera frame: ``ANNY_TO_CAMERA @ R(rotation) @ p + translation``, with
    ``rotation`` an axis-angle ``(B, 3)`` in Anny's frame (yaw about its up axis turns the body around)."""
    matrix = ANNY_TO_CAMERA.to(points) @ rotvec_to_matrix(rotation)
    return points @ matrix.transpose(1, 2) + translation[:, None]


def project(points: torch.Tensor, focal: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Camera-frame points ``(B, N, 3)`` -> pixels ``(B, N, 2)``; ``focal (B,)``, ``centre (B, 2)``."""
    depth = points[..., 2:].clamp_min(1e-3)
    return points[..., :2] / depth * focal[:, None, None] + centre[:, None]


def yaw_degrees(forward: torch.Tensor) -> torch.Tensor:
    """Body orientation from its forward vector in camera axes ``(B, 3)``: 0 facing the camera, ±180 facing away,
    positive when the front turns toward the image's right."""
    return torch.atan2(forward[:, 0], -forward[:, 2]) * (180 / math.pi)
