"""The bundled workflows (``workflows/*.json``): generated from the registered nodes, valid, and runnable.

Each workflow validates unchanged against the node definitions of the headless ComfyUI (``comfy_host``) with
the random test weights linked under the file names the workflows use; the SD workflows then run through
ComfyUI's executor on a copy shrunk to a 64 × 96 latent and one step; the demo workflow runs unchanged, also
through ``tools/run_workflow.py`` in a fresh process. Finally ComfyUI's own server and frontend (headless
Chromium, the editor's browser harness) load every template and queue the demo.
"""

from __future__ import annotations

import asyncio
import copy
import io
import itertools
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from harness.browser import PACK_NAME, ComfyServer, assert_no_extension_errors, load_page, queue_and_wait, run_js
from harness.comfy_host import MODE_BYPASSED, REPO_ROOT, VIRTUAL_NODE_TYPES, ComfyHost, HostError, RunResult
from stablepose_core.model.masks import SCHEDULE_ALIASES
from stablepose_core.poses.keyframes import clip_from_keyframes
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.sequence import PoseSequence
from stablepose_core.poses.smoothing import smooth_poses
from tools.make_workflows import ADAPTER, MODEL_FILES, SEED, WORKFLOWS_DIR, build_workflows, thumbnails
from tools.run_workflow import apply_override
from tools.workflow_format import workflow_text
from tools.workflow_samples import KEY_POSE_FRAMES, POSE_SIZE, SAMPLE_NAMES, key_poses_keyframes, sample_inputs

WORKFLOWS = sorted(path.name for path in WORKFLOWS_DIR.glob("*.json"))
HAND_MADE = {"pose_editor.json"}  # made in ComfyUI by the editor's author, not by tools/make_workflows.py
TEST_LATENT = (64, 96)  # the pose images' 2:3, small enough for CPU
_SEEDS = itertools.count(5000)


@pytest.fixture
def seed() -> int:
    """A sampler seed no other prompt in the session used, so ComfyUI's output cache never answers for it."""
    return next(_SEEDS)


def install(models_root: Path, input_dir: Path, test_models) -> None:
    """The random test weights linked under the file names the workflows load, and the sample images in the
    input folder (as ComfyUI users upload them)."""
    sources = test_models.by_folder()
    for folder, name in MODEL_FILES.items():
        link = models_root / folder / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(sources[folder])
    input_dir.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        shutil.copyfile(WORKFLOWS_DIR / name, input_dir / name)


@pytest.fixture(scope="module")
def installed(comfy_host: ComfyHost, models_dir: Path, test_models) -> None:
    install(models_dir, comfy_host.workdir / "input", test_models)


def load(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS_DIR / name).read_text())


def node_of(workflow: dict[str, Any], node_type: str) -> dict[str, Any]:
    (node,) = [node for node in workflow["nodes"] if node["type"] == node_type]
    return node


def set_widget(host: ComfyHost, node: dict[str, Any], name: str, value: Any) -> None:
    node["widgets_values"][host.widget_slots(node["type"], node["inputs"]).index(name)] = value


def unlink(workflow: dict[str, Any], node: dict[str, Any], input_name: str) -> None:
    """Disconnect an input (its widget value applies again), as dragging the link away in ComfyUI does."""
    (socket,) = [socket for socket in node["inputs"] if socket["name"] == input_name]
    link_id, socket["link"] = socket["link"], None
    (link,) = [link for link in workflow["links"] if link[0] == link_id]
    workflow["links"].remove(link)
    origin = next(n for n in workflow["nodes"] if n["id"] == link[1])
    origin["outputs"][link[2]]["links"].remove(link_id)


def shrunk(host: ComfyHost, name: str, seed: int) -> dict[str, Any]:
    """A copy of a bundled SD workflow at a 64 × 96 latent, one sampler step, and ``seed``."""
    workflow = load(name)
    latent = node_of(workflow, "EmptyLatentImage")
    for side, value in zip(("width", "height"), TEST_LATENT, strict=True):
        if any(socket["name"] == side for socket in latent["inputs"]):
            unlink(workflow, latent, side)
        set_widget(host, latent, side, value)
    sampler = node_of(workflow, "KSampler")
    set_widget(host, sampler, "steps", 1)
    set_widget(host, sampler, "seed", seed)
    return workflow


def run(host: ComfyHost, workflow: dict[str, Any]) -> RunResult:
    result = host.run_workflow(workflow)
    assert result.ok, result.error_messages()
    return result


def output(result: RunResult, workflow: dict[str, Any], node_type: str, slot: int = 0) -> Any:
    return result.output(node_of(workflow, node_type)["id"], slot)


def bypassed(workflow: dict[str, Any], node_type: str) -> dict[str, Any]:
    copied = copy.deepcopy(workflow)
    node_of(copied, node_type)["mode"] = MODE_BYPASSED
    return copied


def colourful_pixels(image: torch.Tensor) -> int:
    """Pixels whose channels differ clearly: skeleton limbs, never the black background."""
    return int(((image.max(-1).values - image.min(-1).values) > 0.2).sum())


def assert_generated(image: torch.Tensor, batch: int) -> None:
    assert image.shape == (batch, TEST_LATENT[1], TEST_LATENT[0], 3)
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert image.std() > 0.01, "not a flat image"


def saved_files(host: ComfyHost, result: RunResult, node: dict[str, Any]) -> list[Path]:
    import folder_paths

    return [
        Path(folder_paths.get_directory_by_type(item["type"])) / item["subfolder"] / item["filename"]
        for item in result.ui[str(node["id"])]["images"]
    ]


# ----- the files -----


def test_workflows_are_generated_from_the_registered_nodes(comfy_host: ComfyHost) -> None:
    """The committed JSON is what tools/make_workflows.py makes from today's node definitions."""
    generated = build_workflows(comfy_host)
    assert sorted(generated) == sorted(set(WORKFLOWS) - HAND_MADE)
    for name, workflow in generated.items():
        assert (WORKFLOWS_DIR / name).read_text() == workflow_text(workflow), f"{name}: run tools/make_workflows.py"


def test_sample_inputs_are_current() -> None:
    for sample in sample_inputs():
        assert sample.matches(WORKFLOWS_DIR / sample.name), f"{sample.name}: run tools/make_workflows.py"
    with Image.open(WORKFLOWS_DIR / "stable_pose_pose_sequence.webp") as sequence:
        assert sequence.n_frames == 4 and sequence.size == POSE_SIZE


def test_thumbnails_are_current(comfy_host: ComfyHost, installed: None) -> None:
    made = thumbnails(comfy_host)
    expected = sorted(f"{Path(name).stem}.jpg" for name in WORKFLOWS)  # hand-made ones too
    assert sorted(sample.name for sample in made) == expected
    for sample in made:
        assert sample.matches(WORKFLOWS_DIR / sample.name), f"{sample.name}: run tools/make_workflows.py"


def ui_errors(workflow: dict[str, Any]) -> list[str]:
    """Inconsistencies the frontend would trip over: ids, link records vs. the sockets that hold them."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    errors = [] if len(nodes) == len(workflow["nodes"]) else ["duplicate node ids"]
    link_ids = [link[0] for link in workflow["links"]]
    if workflow["last_node_id"] < max(nodes) or workflow["last_link_id"] < max(link_ids, default=0):
        errors.append("last_node_id/last_link_id below the ids used")
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        output_slot = nodes[origin]["outputs"][origin_slot]
        input_slot = nodes[target]["inputs"][target_slot]
        if link_id not in (output_slot["links"] or []) or input_slot["link"] != link_id:
            errors.append(f"link {link_id} is not held by both its output and its input socket")
        if kind != output_slot["type"]:
            errors.append(f"link {link_id} has type {kind}, its output {output_slot['type']}")
    held = {socket["link"] for node in nodes.values() for socket in node["inputs"] if socket["link"] is not None}
    if held != set(link_ids) or len(link_ids) != len(set(link_ids)):
        errors.append("input sockets hold links that are not in the link table")
    return errors


@pytest.mark.parametrize("name", WORKFLOWS)
def test_bundled_workflow_validates(comfy_host: ComfyHost, installed: None, name: str) -> None:
    """Node types exist, link types match, widget values are valid: as shipped, with the files it names."""
    workflow = load(name)
    assert workflow["version"] == 0.4
    assert ui_errors(workflow) == []
    assert comfy_host.validate_workflow(workflow) == []


def with_schedule(host: ComfyHost, workflow: dict[str, Any], schedule: str) -> list[dict[str, Any]]:
    """Set ``mask_schedule`` to ``schedule`` on every node that has it; those nodes."""
    nodes = [
        node
        for node in workflow["nodes"]
        if node["type"] not in VIRTUAL_NODE_TYPES and "mask_schedule" in host.widget_slots(node["type"], node["inputs"])
    ]
    for node in nodes:
        set_widget(host, node, "mask_schedule", schedule)
    return nodes


@pytest.mark.parametrize("name", WORKFLOWS)
def test_bundled_workflow_saved_with_earlier_names_validates(comfy_host: ComfyHost, installed: None, name: str):
    """Each bundled workflow as an earlier version saved it: every earlier mask schedule name (``released``,
    ``paper``, ``released_train``) in place of today's validates and reaches the node unchanged."""
    for old in SCHEDULE_ALIASES:
        workflow = load(name)
        nodes = with_schedule(comfy_host, workflow, old)
        assert comfy_host.validate_workflow(workflow) == [], old
        prompt = comfy_host.workflow_to_prompt(workflow)
        assert [prompt[str(node["id"])]["inputs"]["mask_schedule"] for node in nodes] == [old] * len(nodes)
        assert comfy_host.validate_prompt(prompt).error_messages() == [], old  # ComfyUI's own, VALIDATE_INPUTS too


def test_earlier_schedule_names_give_todays_masks(comfy_host: ComfyHost, installed: None) -> None:
    """The demo's mask preview with each earlier schedule name equals the preview with today's name for it (on
    negative-prompt rows, where the two schedules differ)."""
    workflow = load("photo_to_pose_preview.json")
    set_widget(comfy_host, node_of(workflow, "PoseMaskPreview"), "row", "uncond")

    def masks(schedule: str) -> torch.Tensor:
        with_schedule(comfy_host, workflow, schedule)
        return output(run(comfy_host, workflow), workflow, "PoseMaskPreview", 1)

    today = {schedule: masks(schedule) for schedule in set(SCHEDULE_ALIASES.values())}
    assert not torch.equal(today["evaluation"], today["training"])
    for old, schedule in SCHEDULE_ALIASES.items():
        assert torch.equal(masks(old), today[schedule]), old
    with_schedule(comfy_host, workflow, "relased")
    errors = comfy_host.validate_prompt(comfy_host.workflow_to_prompt(workflow)).error_messages()
    assert any("unknown mask schedule 'relased'; choose one of evaluation, training, unmasked" in e for e in errors)


def test_sd_workflows_name_the_documented_models(comfy_host: ComfyHost) -> None:
    for name in ("stable_pose_txt2img.json", "photo_to_pose_to_image.json", "pose_batch_video.json"):
        prompt = comfy_host.workflow_to_prompt(load(name))
        loaders = {node["class_type"]: node["inputs"] for node in prompt.values()}
        assert loaders["CheckpointLoaderSimple"]["ckpt_name"] == MODEL_FILES["checkpoints"]
        assert loaders["LoadStablePose"]["adapter_name"] == ADAPTER
        sampler = next(node["inputs"] for node in prompt.values() if node["class_type"] == "KSampler")
        assert sampler["steps"] >= 20, "the shipped workflows are for real use, not test sizes"
        notes = [node["widgets_values"][0] for node in load(name)["nodes"] if node["type"] == "Note"]
        assert notes and MODEL_FILES["checkpoints"] in notes[0] and ADAPTER in notes[0]


def test_comfyui_lists_and_serves_each_workflow_once(comfy_host: ComfyHost, tmp_path: Path, monkeypatch) -> None:
    """ComfyUI's template browser API (``app/custom_node_manager.py``) with the pack installed under
    ``custom_nodes/``: ``GET /workflow_templates`` names every bundled workflow exactly once (ComfyUI also
    serves ``example_workflows/``, so a second folder or a link to this one would list each twice) and
    ``/api/workflow_templates/<pack>/<name>.json`` serves the file, ``<name>.jpg`` its thumbnail."""
    import folder_paths
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from app.custom_node_manager import CustomNodeManager

    pack = tmp_path / "custom_nodes" / "stable_pose"
    pack.parent.mkdir()
    pack.symlink_to(REPO_ROOT, target_is_directory=True)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "custom_nodes", ([str(pack.parent)], set()))

    async def fetch() -> tuple[dict[str, list[str]], dict[str, Any]]:
        routes, webapp = web.RouteTableDef(), web.Application()
        CustomNodeManager().add_routes(routes, webapp, [("stable_pose", str(pack))])
        webapp.add_routes(routes)
        async with TestClient(TestServer(webapp)) as client:
            listing = await (await client.get("/workflow_templates")).json()
            served, thumbnails = {}, {}
            for name in listing.get("stable_pose", []):
                response = await client.get(f"/api/workflow_templates/stable_pose/{name}.json")
                served[name] = await response.json(content_type=None)
                response = await client.get(f"/api/workflow_templates/stable_pose/{name}.jpg")
                thumbnails[name] = await response.read() if response.status == 200 else None
        return listing, served, thumbnails

    listing, served, thumbnails = asyncio.run(fetch())
    stems = [Path(name).stem for name in WORKFLOWS]
    assert sorted(listing["stable_pose"]) == sorted(stems)
    assert served == {Path(name).stem: load(name) for name in WORKFLOWS}
    for name in set(WORKFLOWS) - HAND_MADE:
        with Image.open(io.BytesIO(thumbnails[Path(name).stem])) as thumbnail:
            assert thumbnail.format == "JPEG" and max(thumbnail.size) == 768


# ----- running them -----


def test_demo_workflow_runs_without_weights(comfy_host: ComfyHost, installed: None) -> None:
    """photo -> OpenPoseExtract (blazepose) -> pose, pose over photo, mask preview: saved, as tools/demo.sh does."""
    workflow = load("photo_to_pose_preview.json")
    for node in workflow["nodes"]:  # new file names, so the saving runs even if the thumbnails ran this graph
        if node["type"] == "SaveImage":
            set_widget(comfy_host, node, "filename_prefix", f"test_demo/{node['id']}")
    result = run(comfy_host, workflow)
    photo = output(result, workflow, "LoadImage")
    pose_image, frames = output(result, workflow, "OpenPoseExtract"), output(result, workflow, "OpenPoseExtract", 1)
    assert pose_image.shape == photo.shape == (1, 512, 512, 3)
    assert colourful_pixels(pose_image) > 5000, "a skeleton is drawn"
    pose = PoseKeypoints.from_pose_keypoint(frames[0])
    assert pose.num_people == 1 and pose.visible[0, COCO17_NAMES.index("nose")]
    overlay = output(result, workflow, "ImageBlend")
    changed = (overlay - photo).abs().amax(-1) > 1e-4
    on_skeleton = pose_image.amax(-1) > 0
    assert changed.sum() > 1000 and not (changed & ~on_skeleton).any(), "only the skeleton is drawn over the photo"
    preview = output(result, workflow, "PoseMaskPreview")
    assert preview.shape == (2, 512, 1024, 3) and preview.std() > 0.05, "one [latent | patch] preview per layer"
    sizes = []
    for node in (node for node in workflow["nodes"] if node["type"] == "SaveImage"):
        for path in saved_files(comfy_host, result, node):
            with Image.open(path) as image:
                assert "workflow" in image.info, "saved with the workflow embedded"
                sizes.append(image.size)
    assert sorted(sizes) == [(512, 512), (512, 512), (1024, 512), (1024, 512)]


@pytest.mark.slow
def test_txt2img_pose_changes_the_image(comfy_host, installed, seed) -> None:
    workflow = shrunk(comfy_host, "stable_pose_txt2img.json", seed)
    posed = run(comfy_host, workflow)
    plain = run(comfy_host, bypassed(workflow, "ApplyStablePose"))
    image = output(posed, workflow, "VAEDecode")
    assert_generated(image, 1)
    assert (image - output(plain, workflow, "VAEDecode")).abs().max() > 1e-3, "Apply Adapter steers sampling"
    preview = output(posed, workflow, "PoseMaskPreview")
    assert preview.shape == (2, POSE_SIZE[1], 2 * POSE_SIZE[0], 3)
    (path,) = saved_files(comfy_host, posed, node_of(workflow, "SaveImage"))
    assert path.is_file()


@pytest.mark.slow
def test_photo_to_pose_to_image_runs(comfy_host, installed, seed) -> None:
    """photo -> resize -> OpenPoseExtract -> editor (no edit: the detected pose passes) -> Apply -> image."""
    workflow = shrunk(comfy_host, "photo_to_pose_to_image.json", seed)
    result = run(comfy_host, workflow)
    extracted, edited = output(result, workflow, "OpenPoseExtract"), output(result, workflow, "StablePoseEditor")
    assert extracted.shape == (1, POSE_SIZE[1], POSE_SIZE[0], 3)
    assert colourful_pixels(extracted) > 5000
    torch.testing.assert_close(edited, extracted, rtol=0, atol=0)
    assert result.ui[str(node_of(workflow, "StablePoseEditor")["id"])]["canvas"] == list(POSE_SIZE)
    assert_generated(output(result, workflow, "VAEDecode"), 1)


@pytest.mark.slow
def test_pose_batch_makes_one_frame_per_pose_with_shared_noise(comfy_host, installed, seed) -> None:
    """4 poses -> 4 latents (sizes from Get Image Size) with the same noise: without Stable-Pose all frames are
    equal, with it they follow their poses (frames 1 and 3 share a pose, so they match)."""
    workflow = shrunk(comfy_host, "pose_batch_video.json", seed)
    posed = run(comfy_host, workflow)
    plain = run(comfy_host, bypassed(workflow, "ApplyStablePose"))
    frames, unposed = output(posed, workflow, "VAEDecode"), output(plain, workflow, "VAEDecode")
    assert_generated(frames, 4)
    for index in range(1, 4):
        torch.testing.assert_close(unposed[index], unposed[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(frames[3], frames[1], rtol=0, atol=1e-4)
    assert (frames[2] - frames[0]).abs().max() > 1e-3
    assert (frames - unposed).abs().amax(dim=(1, 2, 3)).min() > 1e-3, "every frame is steered by its pose"
    (animation,) = saved_files(comfy_host, posed, node_of(workflow, "SaveAnimatedWEBP"))
    with Image.open(animation) as image:
        assert [frame.size for frame in ImageSequence.Iterator(image)] == [TEST_LATENT] * 4
    assert len(saved_files(comfy_host, posed, node_of(workflow, "SaveImage"))) == 4


@pytest.mark.slow
def test_key_poses_to_video_draws_the_smoothed_interpolation(comfy_host, installed, seed) -> None:
    """editor keyframes -> Smooth Pose Sequence -> Draw Poses -> Stable-Pose: one frame per interpolated pose."""
    workflow = shrunk(comfy_host, "key_poses_to_video.json", seed)
    result = run(comfy_host, workflow)
    clip = clip_from_keyframes(key_poses_keyframes())
    editor_frames = PoseSequence.from_pose_keypoint(output(result, workflow, "StablePoseEditor", 1))
    smoothed = PoseSequence.from_pose_keypoint(output(result, workflow, "StablePoseSmooth"))
    np.testing.assert_allclose(editor_frames.keypoints[..., :2], clip.keypoints[..., :2], atol=1e-3)
    np.testing.assert_allclose(smoothed.keypoints, smooth_poses(editor_frames).keypoints, atol=1e-3)
    poses = output(result, workflow, "StablePoseDraw")
    assert poses.shape == (KEY_POSE_FRAMES, POSE_SIZE[1], POSE_SIZE[0], 3)
    assert_generated(output(result, workflow, "VAEDecode"), KEY_POSE_FRAMES)


@pytest.mark.slow
def test_best_of_n_keeps_the_best_k(comfy_host, installed, seed) -> None:
    """8 candidates -> Score Pose Fidelity (overlays, report) -> Select Best k = 2 (reusing the detections) -> saved.
    The random test weights draw nobody: every candidate scores 0 with a count error of 1, ties keep batch order."""
    workflow = shrunk(comfy_host, "stable_pose_best_of_n.json", seed)
    result = run(comfy_host, workflow)
    candidates = output(result, workflow, "VAEDecode")
    assert_generated(candidates, 8)
    overlay, score, report = (output(result, workflow, "StablePoseScore", slot) for slot in range(3))
    assert overlay.shape == candidates.shape and score == 0.0
    entries = json.loads(report)
    assert len(entries) == 8 and all((e["oks"], e["people_target"], e["count_error"]) == (0.0, 1, 1) for e in entries)
    select = node_of(workflow, "StablePoseSelectBest")
    assert result.outputs[str(select["id"])][1:] == [[0, 1], [0.0, 0.0]]
    torch.testing.assert_close(output(result, workflow, "StablePoseSelectBest"), candidates[:2], rtol=0, atol=0)
    assert len(saved_files(comfy_host, result, node_of(workflow, "SaveImage"))) == 2


@pytest.mark.slow
def test_pose_animation_with_context_windows_equals_one_batch(comfy_host, installed, seed) -> None:
    """The bundled animation workflow runs headless with ComfyUI's context windows (3 frames, overlap 1, over the
    4-frame sample) and every frame equals the one sampled without windows. 3 steps: ComfyUI 0.3.75's windows
    need frames = steps + 1 (tests/test_video.py)."""
    workflow = shrunk(comfy_host, "pose_animation_context_windows.json", seed)
    set_widget(comfy_host, node_of(workflow, "KSampler"), "steps", 3)
    windows = node_of(workflow, "ContextWindowsManual")
    set_widget(comfy_host, windows, "context_length", 3)
    set_widget(comfy_host, windows, "context_overlap", 1)
    windowed = output(run(comfy_host, workflow), workflow, "VAEDecode")
    whole = output(run(comfy_host, bypassed(workflow, "ContextWindowsManual")), workflow, "VAEDecode")
    assert_generated(windowed, 4)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-3)
    torch.testing.assert_close(windowed[3], windowed[1], rtol=0, atol=1e-3)  # frames 1 and 3 share a pose
    assert (windowed[2] - windowed[0]).abs().max() > 1e-3


# ----- headless: tools/run_workflow.py -----


def test_run_workflow_overrides_set_widgets_as_the_ui_would(comfy_host: ComfyHost) -> None:
    workflow = load("pose_batch_video.json")
    apply_override(comfy_host, workflow, "KSampler.steps=30")
    apply_override(comfy_host, workflow, "ckpt_name=my_sd15.ckpt")
    apply_override(comfy_host, workflow, "Positive prompt.text=a robot, 3 arms")
    prompt = comfy_host.workflow_to_prompt(workflow)
    inputs = {node["_meta"]["title"]: node["inputs"] for node in prompt.values()}
    assert inputs["KSampler"]["steps"] == 30 and inputs["KSampler"]["seed"] == SEED
    assert inputs["Load Checkpoint (SD1.5)"]["ckpt_name"] == "my_sd15.ckpt"
    assert inputs["Positive prompt"]["text"] == "a robot, 3 arms"
    for bad, message in [
        ("EmptyLatentImage.width=64", "fed by a link"),
        ("KSampler.step=3", "has no widget 'step'"),
        ("Nope.steps=3", "no node Nope"),
        ("steps", "expected [NODE.]WIDGET=VALUE"),
    ]:
        with pytest.raises(HostError, match=re.escape(message)):
            apply_override(comfy_host, load("pose_batch_video.json"), bad)


def test_demo_script_looks_for_the_models_the_workflows_name() -> None:
    script = (REPO_ROOT / "tools" / "demo.sh").read_text()
    assert f"WORKFLOW_CHECKPOINT={MODEL_FILES['checkpoints']}" in script
    assert f"WORKFLOW_ADAPTER={MODEL_FILES['stable_pose']}" in script


@pytest.mark.slow
def test_run_workflow_cli_runs_the_demo(tmp_path: Path) -> None:
    """``python -m tools.run_workflow`` as tools/demo.sh calls it: a fresh process boots its own ComfyUI, reads
    the sample photo from workflows/ and writes one PNG per saved image, named after the node titles."""
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "tools.run_workflow",
        "workflows/photo_to_pose_preview.json",
        "--out",
        str(out),
        "--set",
        "Pose.filename_prefix=cli",
    ]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    names = sorted(path.name for path in out.iterdir())
    assert names == ["Mask_preview_7_0.png", "Mask_preview_7_1.png", "Pose_5_0.png", "Pose_over_photo_6_0.png"]
    with Image.open(out / "Pose_5_0.png") as image:
        pose = torch.from_numpy(np.asarray(image.convert("RGB")) / 255)
    assert colourful_pixels(pose) > 5000


# ----- in ComfyUI's own frontend -----


@pytest.fixture(scope="module")
def frontend(tmp_path_factory: pytest.TempPathFactory, test_models) -> Iterator[ComfyServer]:
    """ComfyUI's ``main.py`` with the pack, the test weights under the workflows' model names and the samples."""
    base = tmp_path_factory.mktemp("comfy_frontend")
    install(base / "models", base / "input", test_models)
    running = ComfyServer(base)
    try:
        running.wait_ready()
        running.post_json("/settings/Comfy.TutorialCompleted", True)  # no first-run template browser
        yield running
    finally:
        running.stop()


def prompt_inputs(prompt: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {node_id: (node["class_type"], node["inputs"]) for node_id, node in prompt.items()}


@pytest.mark.browser
def test_frontend_loads_each_template_as_the_harness_reads_it(frontend, comfy_host: ComfyHost, request) -> None:
    """Through the real server and frontend: the template list names each workflow once, each template loads
    with every node type known, the frontend's prompt ("Queue") equals ``workflow_to_prompt`` and saving it
    again keeps every widget value; the demo workflow queued from the page runs on the server."""
    driver = request.getfixturevalue("browser")  # Chromium through Selenium (tests/conftest.py)
    load_page(driver, frontend)
    listing = frontend.get_json("/api/workflow_templates")
    assert sorted(listing[PACK_NAME]) == sorted(Path(name).stem for name in WORKFLOWS)
    for name in WORKFLOWS:
        workflow = frontend.get_json(f"/api/workflow_templates/{PACK_NAME}/{name}")
        assert workflow == load(name)
        seen = run_js(
            driver,
            """
            await app.loadGraphData(args[0]);
            const unknown = app.graph._nodes.filter((n) => !LiteGraph.registered_node_types[n.type]);
            const { output } = await app.graphToPrompt();
            return { unknown: unknown.map((n) => n.type), output, saved: app.graph.serialize() };
            """,
            workflow,
        )
        assert seen["unknown"] == [], name
        assert prompt_inputs(seen["output"]) == prompt_inputs(comfy_host.workflow_to_prompt(workflow)), name
        saved = {node["id"]: node.get("widgets_values", []) for node in seen["saved"]["nodes"]}
        assert saved == {node["id"]: node.get("widgets_values", []) for node in workflow["nodes"]}, name

    demo = load("photo_to_pose_preview.json")
    run_js(driver, "await app.loadGraphData(args[0]);", demo)
    entry = queue_and_wait(driver, frontend)
    pose_node = next(node["id"] for node in demo["nodes"] if node.get("title") == "Pose")
    (saved_pose,) = entry["outputs"][str(pose_node)]["images"]
    query = urllib.parse.urlencode({key: saved_pose[key] for key in ("filename", "subfolder", "type")})
    pose = torch.from_numpy(np.asarray(Image.open(io.BytesIO(frontend.get(f"/view?{query}"))).convert("RGB")) / 255)
    assert pose.shape == (512, 512, 3) and colourful_pixels(pose) > 5000
    assert_no_extension_errors(driver)


@pytest.mark.browser
def test_frontend_keeps_an_earlier_schedule_name(frontend, comfy_host: ComfyHost, request) -> None:
    """A workflow saved with an earlier mask schedule name loads in the frontend with that value (not one of today's
    combo options), its prompt carries it unchanged, and the server runs such a prompt."""
    driver = request.getfixturevalue("browser")
    load_page(driver, frontend)
    workflow = load("photo_to_pose_preview.json")
    (preview,) = with_schedule(comfy_host, workflow, "released")
    output = run_js(driver, "await app.loadGraphData(args[0]); return (await app.graphToPrompt()).output;", workflow)
    assert output[str(preview["id"])]["inputs"]["mask_schedule"] == "released"
    assert prompt_inputs(output) == prompt_inputs(comfy_host.workflow_to_prompt(workflow))
    queue_and_wait(driver, frontend)  # asserts the run succeeded
