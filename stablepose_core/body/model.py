"""The open body model: NAVER's Anny (``pip install anny``; code Apache-2.0, MakeHuman assets CC0) with a small set
of anatomical degrees of freedom, in place of SMPL in Diffusion-HPC (Weng et al., 3DV 2024). ``docs/body.md``.

Anny is Z up, the body facing -y, its left at +x, rotations given per bone in the rest pose's world axes
("local-ref"). The fit moves only the joints that COCO-17 keypoints can see: the trunk, neck, hips, knees,
shoulders and elbows. Knees and elbows are hinges (one angle each, flexion positive), the rest ball joints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("stable_pose")

INSTALL_HINT = "pip install anny (about 450 MB with warp-lang; docs/body.md)"
COCO17_COUNT = 17  # Anny's COCO regressor gives COCO-17 first, then the six foot points

# ball joints (3 angles each) and hinges (1 angle), by Anny bone name
BALL_JOINTS = ("spine03", "neck01", "upperleg01.L", "upperleg01.R", "upperarm01.L", "upperarm01.R")
HINGES = ("lowerleg01.L", "lowerleg01.R", "lowerarm01.L", "lowerarm01.R")
DOF_NAMES = tuple(f"{bone}.{axis}" for bone in BALL_JOINTS for axis in "xyz") + tuple(f"{h}.flex" for h in HINGES)
PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")


class BodyModelUnavailable(RuntimeError):
    """Anny is not installed (the body nodes are optional, like the DWPose backend)."""


@dataclass(frozen=True)
class BodyOutput:
    """One forward pass: mesh vertices ``(B, V, 3)`` and COCO-17 joints ``(B, 17, 3)`` in metres, Anny's frame."""

    vertices: torch.Tensor
    joints: torch.Tensor


@dataclass(frozen=True)
class RestState:
    """Unposed bodies: Anny's rest bone poses ``(B, bones, 4, 4)`` and the joints' skinning anchors."""

    bone_poses: torch.Tensor
    anchors: torch.Tensor


class BodyModel(torch.nn.Module):
    """Anny restricted to :data:`DOF_NAMES` (pose, radians) and :data:`PHENOTYPES` (0..1, 0.5 = average)."""

    def __init__(self, anny_model: torch.nn.Module, regressor: torch.nn.Module) -> None:
        super().__init__()
        self.anny = anny_model
        self.regressor = regressor
        labels = list(anny_model.bone_labels)
        self.bone_count = len(labels)
        self.ball_index = [labels.index(name) for name in BALL_JOINTS]
        self.hinge_index = [labels.index(name) for name in HINGES]
        self.register_buffer("hinge_axes", self._hinge_axes(), persistent=False)
        self.register_buffer("faces", anny_model.get_triangular_faces().long(), persistent=False)
        anchors, anchor_shapes = self._joint_anchors()
        self.register_buffer("joint_anchors", anchors, persistent=False)
        self.register_buffer("joint_anchor_shapes", anchor_shapes, persistent=False)

    def _joint_anchors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear blend skinning is linear in the rest vertices, so each COCO joint (a fixed blend of vertices) is
        ``sum_b T_b @ a_kb`` with ``a_kb`` the regressor- and skin-weighted rest vertices (homogeneous), themselves
        linear in the blendshape coefficients: joints without skinning the 13,718 vertices (exact)."""
        anny = self.anny
        weights = self.regressor.regression_weights[:COCO17_COUNT].float()  # (K, V)
        skin = torch.zeros(weights.shape[1], self.bone_count, device=weights.device)
        skin = skin.scatter_add_(1, anny.vertex_bone_indices.long(), anny.vertex_bone_weights.float())  # (V, B)
        mixed = weights[:, :, None] * skin[None]  # (K, V, B)
        template = anny.template_vertices.float()
        anchors = torch.cat([torch.einsum("kvb,vd->kbd", mixed, template), mixed.sum(1)[..., None]], -1)
        shapes = torch.einsum("kvb,cvd->ckbd", mixed, anny.blendshapes.float())
        return anchors, torch.nn.functional.pad(shapes, (0, 1))

    def _hinge_axes(self) -> torch.Tensor:
        """Flexion axis of each hinge in the rest pose: knees flex about +x (the shank goes back), elbows about the
        normal of the rest arm's plane (Anny rests with the elbows bent ~37 degrees, so that plane is defined)."""
        rest = self.regressor(self.anny())[0, :COCO17_COUNT].float()
        axes = []
        for name in HINGES:
            if name.startswith("lowerleg"):
                axes.append(torch.tensor([1.0, 0.0, 0.0]))
                continue
            shoulder, elbow, wrist = (5, 7, 9) if name.endswith(".L") else (6, 8, 10)
            axis = torch.linalg.cross(rest[elbow] - rest[shoulder], rest[wrist] - rest[elbow])
            axes.append(axis / axis.norm())
        return torch.stack(axes)

    @property
    def device(self) -> torch.device:
        return self.faces.device

    def pose_matrices(self, dofs: torch.Tensor) -> torch.Tensor:
        """``(B, len(DOF_NAMES))`` angles -> Anny's ``(B, bones, 4, 4)`` local-ref pose (other bones at rest)."""
        batch = dofs.shape[0]
        rotvec = dofs.new_zeros(batch, self.bone_count, 3)
        balls = dofs[:, : 3 * len(BALL_JOINTS)].reshape(batch, -1, 3)
        hinges = dofs[:, 3 * len(BALL_JOINTS) :, None] * self.hinge_axes.to(dofs)
        rotvec = rotvec.index_copy(1, torch.tensor(self.ball_index, device=dofs.device), balls)
        rotvec = rotvec.index_copy(1, torch.tensor(self.hinge_index, device=dofs.device), hinges)
        pose = torch.zeros(batch, self.bone_count, 4, 4, dtype=dofs.dtype, device=dofs.device)
        pose[..., :3, :3] = rotvec_to_matrix(rotvec)
        pose[..., 3, 3] = 1.0
        return pose

    def rest(self, phenotype: torch.Tensor) -> RestState:
        """The unposed body of each phenotype ``(B, 6)``: what the pose is applied to."""
        anny = self.anny
        _, phenotypes, local, facial = anny.get_tensor_inputs(None, phenotype.float(), None, None)
        coefficients = anny._get_phenotype_blendshape_coefficients(phenotypes, local, facial)
        rest = anny.get_rest_model(coefficients)
        anchors = self.joint_anchors + torch.einsum("nc,ckbd->nkbd", coefficients, self.joint_anchor_shapes)
        return RestState(rest["rest_bone_poses"], anchors)

    def posed_joints(self, dofs: torch.Tensor, rest: RestState) -> torch.Tensor:
        """COCO-17 joints ``(B, 17, 3)`` (Anny's frame) of ``dofs`` on ``rest`` bodies, without the mesh: the fit's
        inner loop. Equal to ``forward(...).joints`` (tested)."""
        pose = self.anny.parse_delta_transforms_dict(self.pose_matrices(dofs.float()))
        transforms, _ = self.anny.get_bone_transforms(pose, rest.bone_poses)
        anchors = rest.anchors.expand(transforms.shape[0], -1, -1, -1)
        return torch.einsum("nbij,nkbj->nki", transforms[:, :, :3, :], anchors)

    def joints(self, dofs: torch.Tensor, phenotype: torch.Tensor) -> torch.Tensor:
        """COCO-17 joints ``(B, 17, 3)`` of ``dofs`` and ``phenotype`` (Anny's frame), without the mesh."""
        return self.posed_joints(dofs, self.rest(phenotype))

    def forward(self, dofs: torch.Tensor, phenotype: torch.Tensor) -> BodyOutput:
        output = self.anny(pose_parameters=self.pose_matrices(dofs.float()), phenotype_kwargs=phenotype.float())
        joints = self.regressor(output)[:, :COCO17_COUNT]
        return BodyOutput(output["vertices"], joints)


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, differentiable at zero (axis-angle ``(..., 3)`` -> ``(..., 3, 3)``)."""
    angle = rotvec.square().sum(-1, keepdim=True).clamp_min(1e-12).sqrt()
    axis = rotvec / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    sin, cos = angle.sin()[..., None], angle.cos()[..., None]
    return eye + sin * cross + (1 - cos) * (cross @ cross)


def default_cache_dir() -> Path:
    """Where Anny keeps its built model data: ``$ANNY_CACHE_DIR``, else Anny's own default (``~/.cache/anny``)."""
    return Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))


@contextlib.contextmanager
def _progress_while(message: str, every_s: float = 15.0) -> Iterator[None]:
    """Log ``message`` now and every ``every_s`` seconds until the block ends (Anny's first build takes minutes)."""
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while not done.wait(every_s):
            log.info("%s (%.0f s so far)", message, time.monotonic() - start)

    log.info("%s", message)
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        log.info("Stable-Pose: body model ready in %.1f s", time.monotonic() - start)


_MODELS: dict[tuple[str, str], BodyModel] = {}
_LOCK = threading.Lock()


def load_body_model(device: torch.device | str = "cpu", cache_dir: str | os.PathLike | None = None) -> BodyModel:
    """The body model on ``device``, built once per process. Anny's first use builds its cache (about 1–2 minutes
    on a CPU, then under a second) in ``cache_dir`` (default :func:`default_cache_dir`); delete it to rebuild."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (str(torch.device(device)), str(cache))
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = _build(torch.device(device), cache)
        return _MODELS[key]


def _build(device: torch.device, cache: Path) -> BodyModel:
    try:
        import anny
        import anny.paths
    except ImportError as error:
        raise BodyModelUnavailable(f"the 3D body model needs Anny: {INSTALL_HINT} ({error})") from error
    anny.paths.set_anny_cache_path(cache)
    fresh = not any(cache.glob("*")) if cache.is_dir() else True
    message = f"Stable-Pose: {'building' if fresh else 'loading'} the Anny body model (cache: {cache})"
    with _progress_while(message):
        model = anny.Anny().to(device=device, dtype=torch.float32)
        regressor = anny.KeypointsRegressor.coco(model).to(device=device, dtype=torch.float32)
    body = BodyModel(model, regressor).to(device)
    body.requires_grad_(False)
    return body.eval()
