"""Session fixtures: the random test weights and one real headless ComfyUI with this pack loaded.

``comfy_host`` boots ComfyUI once per session (``harness/comfy_host.py``): CPU mode, folders under a temp
dir, models looked up first in ``models_dir`` (which links the test weights), the pack loaded through
ComfyUI's own custom-node loader.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from harness.browser import chromium
from harness.comfy_host import REPO_ROOT, ComfyHost
from harness.make_test_models import ModelFiles, ensure_test_models
from harness.prepare_caches import ANNY_CACHE
from harness.reference_weights import sample_pose_image
from stablepose_core.detect.onnx_torch import CACHE_ENV
from tools.make_workflows import install

# Anny's built model data (made once per checkout by harness.prepare_caches), shared by the core tests and the nodes.
os.environ.setdefault("ANNY_CACHE_DIR", str(ANNY_CACHE))


_SEEDS = itertools.count(100)  # one counter for the session: no two tests sample with the same seed

# ONNX networks converted to PyTorch are cached in the repo's test cache, not the user's (subprocesses inherit it)
os.environ.setdefault(CACHE_ENV, str(REPO_ROOT / ".cache" / "onnx2torch"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that boots ComfyUI in this process (through ``comfy_host``) with ``host``."""
    for item in items:
        if "comfy_host" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def test_models() -> ModelFiles:
    """Random SD1.5 checkpoint, ControlNet and Stable-Pose adapter, built once into ``.cache/test-models``."""
    return ensure_test_models()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, test_models: ModelFiles) -> Path:
    """A temp ComfyUI models folder linking the test weights into ``checkpoints/``, ``controlnet/``,
    ``stable_pose/``; tests may add their own files to it."""
    root = tmp_path_factory.mktemp("models")
    for folder, path in test_models.by_folder().items():
        (root / folder).mkdir()
        (root / folder / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> ComfyHost:
    """ComfyUI booted headless with the pack loaded; its folders live under a session temp dir.
    ``STABLEPOSE_TEST_PACKS`` (paths joined by ``os.pathsep``) loads other packs beside it for local runs
    (AnimateDiff-Evolved, Advanced-ControlNet: tests/test_video_packs.py)."""
    extra = [Path(p) for p in os.environ.get("STABLEPOSE_TEST_PACKS", "").split(os.pathsep) if p]
    return ComfyHost.boot(tmp_path_factory.mktemp("comfyui"), packs=(REPO_ROOT, *extra), models_dir=models_dir)


@pytest.fixture(scope="session")
def body_model() -> Any:
    """The real Anny body model on the CPU (its cache built once into ``.cache/anny``)."""
    pytest.importorskip("anny", reason="the body model needs anny (requirements-optional.txt)")
    from stablepose_core.body.model import load_body_model

    return load_body_model("cpu", os.environ["ANNY_CACHE_DIR"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Selenium (``harness/browser.py``), one per test module."""
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def sd15_ui_workflow(test_models: ModelFiles) -> dict[str, Any]:
    """A tiny stock txt2img workflow in the UI format users drag into ComfyUI (frontend layout of
    ``widgets_values``, including the hidden ``control_after_generate`` value after the seed).

    checkpoint -> CLIPTextEncode x2 (the negative through a Reroute) -> EmptyLatentImage 64x64 -> KSampler
    (2 steps, fed by a PrimitiveNode into its converted ``steps`` widget) -> VAEDecode -> ImageInvert
    (bypassed) -> SaveImage; plus a Note and a muted PreviewImage, which never reach the backend.
    Shared by the session: deep-copy it before changing it.
    """
    checkpoint = test_models.checkpoint.name

    def slot(name: str, kind: str, link: int | None, widget: bool = False) -> dict[str, Any]:
        return {"name": name, "type": kind, "link": link, **({"widget": {"name": name}} if widget else {})}

    def out(name: str, kind: str, links: list[int]) -> dict[str, Any]:
        return {"name": name, "type": kind, "links": links}

    nodes = [
        {
            "id": 4,
            "type": "CheckpointLoaderSimple",
            "mode": 0,
            "inputs": [],
            "outputs": [out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [3, 10]), out("VAE", "VAE", [8])],
            "widgets_values": [checkpoint],
        },
        {
            "id": 6,
            "type": "CLIPTextEncode",
            "mode": 0,
            "title": "Positive",
            "inputs": [slot("clip", "CLIP", 3)],
            "outputs": [out("CONDITIONING", "CONDITIONING", [4])],
            "widgets_values": ["a person dancing"],
        },
        {"id": 10, "type": "Reroute", "mode": 0, "inputs": [slot("", "*", 10)], "outputs": [out("", "CLIP", [5])]},
        {
            "id": 7,
            "type": "CLIPTextEncode",
            "mode": 0,
            "title": "Negative",
            "inputs": [slot("clip", "CLIP", 5)],
            "outputs": [out("CONDITIONING", "CONDITIONING", [6])],
            "widgets_values": ["blurry"],
        },
        {
            "id": 5,
            "type": "EmptyLatentImage",
            "mode": 0,
            "inputs": [],
            "outputs": [out("LATENT", "LATENT", [2])],
            "widgets_values": [64, 64, 1],
        },
        {
            "id": 11,
            "type": "PrimitiveNode",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "INT", "type": "INT", "links": [12], "widget": {"name": "steps"}}],
            "widgets_values": [2, "fixed"],
        },
        {
            "id": 3,
            "type": "KSampler",
            "mode": 0,
            "inputs": [
                slot("model", "MODEL", 1),
                slot("positive", "CONDITIONING", 4),
                slot("negative", "CONDITIONING", 6),
                slot("latent_image", "LATENT", 2),
                slot("steps", "INT", 12, widget=True),
            ],
            "outputs": [out("LATENT", "LATENT", [7])],
            "widgets_values": [42, "fixed", 20, 7.0, "euler", "normal", 1.0],
        },
        {
            "id": 8,
            "type": "VAEDecode",
            "mode": 0,
            "inputs": [slot("samples", "LATENT", 7), slot("vae", "VAE", 8)],
            "outputs": [out("IMAGE", "IMAGE", [9, 13])],
        },
        {
            "id": 14,
            "type": "ImageInvert",
            "mode": 4,
            "inputs": [slot("image", "IMAGE", 9)],
            "outputs": [out("IMAGE", "IMAGE", [11])],
        },
        {
            "id": 9,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [slot("images", "IMAGE", 11)],
            "outputs": [],
            "widgets_values": ["host_test"],
        },
        {"id": 13, "type": "PreviewImage", "mode": 2, "inputs": [slot("images", "IMAGE", 13)], "outputs": []},
        {"id": 12, "type": "Note", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["a note"]},
    ]
    links = [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [3, 4, 1, 6, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [5, 10, 0, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
        [7, 3, 0, 8, 0, "LATENT"],
        [8, 4, 2, 8, 1, "VAE"],
        [9, 8, 0, 14, 0, "IMAGE"],
        [10, 4, 1, 10, 0, "*"],
        [11, 14, 0, 9, 0, "IMAGE"],
        [12, 11, 0, 3, 4, "INT"],
        [13, 8, 0, 13, 0, "IMAGE"],
    ]
    return {
        "last_node_id": 14,
        "last_link_id": 13,
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


@pytest.fixture(scope="module")
def loaded(comfy_host: ComfyHost, test_models: ModelFiles) -> dict[str, Any]:
    """The test checkpoint's MODEL, the test adapter and two encoded prompts, loaded through the real nodes."""
    nodes = comfy_host.nodes
    model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint(test_models.checkpoint.name)
    stable_pose = comfy_host.node_class("LoadStablePose")().load(test_models.adapter.name)[0]
    encode = nodes.CLIPTextEncode()
    return {
        "model": model,
        "stable_pose": stable_pose,
        "positive": encode.encode(clip, "a dancer")[0],
        "negative": encode.encode(clip, "blurry")[0],
    }


@pytest.fixture
def seed() -> int:
    """A fresh sampler seed per test. ComfyUI's output cache keys a node on its input signature (class, widget
    values and, recursively, its ancestors' signatures; not its id), so without it a sampler identical to one of
    an earlier test would be answered from the cache without running (``test_stable_pose_nodes.latents`` checks
    that none was)."""
    return next(_SEEDS)


@pytest.fixture(scope="module")
def pose_files(comfy_host: ComfyHost) -> dict[str, str]:
    """Pose PNGs in the host's input folder: one skeleton, a mirrored one, and an empty (black) frame."""
    folder = comfy_host.workdir / "input"
    poses = {
        "pose.png": sample_pose_image(64, 64),
        "pose_mirror.png": sample_pose_image(64, 64).flip(-1),
        "empty.png": -torch.ones(1, 3, 64, 64),
    }
    for name, image in poses.items():
        pixels = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
        Image.fromarray(pixels).save(folder / name)
    return {name: name for name in poses}


@pytest.fixture(scope="module")
def installed(comfy_host: ComfyHost, models_dir: Path, test_models) -> None:
    """The workflows' model files and sample inputs in the shared host (:func:`tools.make_workflows.install`)."""
    install(models_dir, comfy_host.workdir / "input", test_models.by_folder())
