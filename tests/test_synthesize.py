"""``python -m training.synthesize``: poses × prompts × seeds -> a COCO keypoints dataset with ground truth.

The slow tests generate 3 poses × 2 seeds on the random test weights (64 × 96, one step) in fresh processes, as a
user runs it: once straight through, once killed halfway and resumed, once sharded over two processes by
``accelerate launch``; all three must give the same dataset.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.comfy_host import REPO_ROOT
from harness.make_test_models import TEST_MODELS_DIR
from stablepose_core.poses.keypoints import PoseKeypoints
from tools.workflow_samples import example_pose_keypoints
from training.synthesis_records import ANNOTATIONS, RECORDS, coco_keypoints, make_jobs, read_poses
from training.synthesize import main

CANVASES = ((128, 192), (200, 200), (96, 64))  # the image is 64 × 96: scaled, centre-cropped each way
BODY_ARGS: list[str] = []  # the body fit runs (anny): plausibility, depth and mask files


def coco_file(path: Path) -> list[PoseKeypoints]:
    """A COCO keypoints file with the example figure on three canvases (a second person on the second)."""
    images, annotations, poses = [], [], []
    for index, (width, height) in enumerate(CANVASES):
        pose = example_pose_keypoints().scale_to(width, height)
        people = [pose.keypoints[0]]
        if index == 1:
            people.append(pose.keypoints[0] * np.float32([0.5, 0.5, 1]))
        images.append({"id": 10 + index, "file_name": f"p{index}.jpg", "width": width, "height": height})
        for person in people:
            visible = PoseKeypoints(person[None], width, height).visible[0]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": 10 + index, "keypoints": coco_keypoints(person, visible)}
            )
        poses.append(PoseKeypoints(np.stack(people), width, height))
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return poses


def arguments(poses: Path, out: Path) -> list[str]:
    return [
        "--poses", str(poses), "--prompt", "a dancer", "--seeds", "2", "--seed", "11", "--out", str(out),
        "--checkpoint", "random_sd15.safetensors", "--adapter", "random_sd15_adapter.safetensors",
        "--width", "64", "--height", "96", "--steps", "1", "--min-oks", "0", "--models-dir", str(TEST_MODELS_DIR),
        *BODY_ARGS,
    ]  # fmt: skip


# ----- without generating -----


def test_poses_are_read_from_coco_a_sequence_or_a_folder(tmp_path: Path) -> None:
    expected = coco_file(tmp_path / "coco.json")
    read = read_poses(tmp_path / "coco.json")
    assert [pose.num_people for pose in read] == [1, 2, 1]
    for got, want in zip(read, expected, strict=True):
        np.testing.assert_allclose(got.keypoints[..., :2], want.keypoints[..., :2], atol=1e-3)
        assert (got.width, got.height) == (want.width, want.height)
    frames = [pose.to_pose_keypoint() for pose in expected[:1]] * 2
    (tmp_path / "clip.json").write_text(json.dumps(frames))
    assert len(read_poses(tmp_path / "clip.json")) == 2
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "b.json").write_text(expected[2].to_json())
    (folder / "a.json").write_text(json.dumps(frames))
    assert [pose.width for pose in read_poses(folder)] == [128, 128, 96]


def test_jobs_are_pose_by_prompt_by_seed_with_fixed_seeds() -> None:
    jobs = make_jobs(2, ["a", "b"], 3, 40)
    assert [(job.pose_index, job.prompt, job.seed) for job in jobs[:4]] == [
        (0, "a", 40),
        (0, "a", 41),
        (0, "a", 42),
        (0, "b", 40),
    ]
    assert [job.name for job in jobs] == [f"{index:06d}" for index in range(12)]


def test_dry_run_says_what_would_be_made_and_makes_nothing(tmp_path: Path, capsys) -> None:
    coco_file(tmp_path / "coco.json")
    assert main([*arguments(tmp_path / "coco.json", tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "3 poses x 1 prompts x 2 seeds = 6 images (seeds 11..12)" in printed
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--width", "60"], "multiples of 8"),
        (["--rectify"], "--rectify needs --controlnet"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--poses", "missing.json"], "no such file"),
    ],
)
def test_mistakes_get_one_clear_message(tmp_path: Path, caplog, change: list[str], message: str) -> None:
    coco_file(tmp_path / "coco.json")
    args = arguments(tmp_path / "coco.json", tmp_path / "out")
    option = change[0]
    args = (args[: args.index(option)] + change + args[args.index(option) + 2 :]) if option in args else args + change
    assert main([*args, "--dry-run"]) == 2
    assert message in caplog.text


# ----- generating (slow) -----


def synthesize(poses: Path, out: Path, launcher: list[str] | None = None, **env: str) -> subprocess.Popen:
    """The command in a fresh process (its own process group, so a kill reaches ComfyUI's workers too)."""
    command = [*(launcher or [sys.executable]), "-m", "training.synthesize", *arguments(poses, out)]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=1800)
    assert process.returncode == 0, output[-3000:]
    return output


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


def dataset_files(out: Path) -> dict[str, bytes]:
    """Every file of the dataset (the records and settings too), by relative path."""
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PoseKeypoints], Path]:
    """One uninterrupted run in a fresh process: (poses file, the poses, dataset folder)."""
    root = tmp_path_factory.mktemp("synthesize")
    poses = coco_file(root / "coco.json")
    finish(synthesize(root / "coco.json", root / "reference"))
    return root / "coco.json", poses, root / "reference"


@pytest.mark.slow
def test_dataset_loads_in_pycocotools_with_the_input_poses_as_ground_truth(reference) -> None:
    from pycocotools.coco import COCO

    _, poses, out = reference
    coco = COCO(str(out / ANNOTATIONS))
    images = coco.loadImgs(coco.getImgIds())
    assert [(image["pose_index"], image["seed"]) for image in images] == [
        (0, 11),
        (0, 12),
        (1, 11),
        (1, 12),
        (2, 11),
        (2, 12),
    ]
    for image in images:
        assert (out / image["file_name"]).is_file() and (image["width"], image["height"]) == (64, 96)
        target = poses[image["pose_index"]].crop_to_canvas(64, 96)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert len(annotations) == target.num_people
        for annotation, person, visible in zip(annotations, target.keypoints, target.visible, strict=True):
            got = np.asarray(annotation["keypoints"]).reshape(17, 3)
            np.testing.assert_array_equal(got[:, 2] > 0, visible)
            np.testing.assert_allclose(got[visible, :2], person[visible, :2], atol=2e-3)  # 3 decimals
            assert 0 <= annotation["oks"] <= 1 and "detected_keypoints" in annotation and "body" in annotation
    assert not target.visible.all(), "the 3:2 canvas loses joints to the centre crop, which stay unlabelled"


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_dataset(reference, tmp_path: Path) -> None:
    poses, _, expected = reference
    out = tmp_path / "killed"
    process = synthesize(poses, out)
    deadline = time.monotonic() + 1200
    while len(list((out / RECORDS).glob("*.json"))) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / ANNOTATIONS).exists()
    output = finish(synthesize(poses, out))
    assert "6 images kept" in output
    assert dataset_files(out) == dataset_files(expected)
    assert not list(out.rglob(".*.partial")), "no half-written files left"


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("STABLEPOSE_TEST_ACCELERATE"),
    reason="two SD1.5-size processes at once can exhaust a 24 GB machine; set STABLEPOSE_TEST_ACCELERATE=1 to run",
)
def test_two_processes_under_accelerate_make_the_same_dataset(reference, tmp_path: Path) -> None:
    poses, _, expected = reference
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    # no GPU here: ACCELERATE_USE_CPU makes the two processes share the CPU (gloo)
    output = finish(synthesize(poses, tmp_path / "sharded", accelerate, ACCELERATE_USE_CPU="1"))
    assert "(process 1)" in output, "two processes ran"
    sharded, single = dataset_files(tmp_path / "sharded"), dataset_files(expected)
    assert sorted(sharded) == sorted(single)
    for name in sharded:
        if name.endswith(".json"):
            assert sharded[name] == single[name], name
        else:  # each process computes with its own thread count: float sums may round a level apart
            difference = np.abs(pixels(sharded[name]).astype(int) - pixels(single[name]))
            assert difference.max() <= 2, name
