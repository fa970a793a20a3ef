"""``python -m stablepose_core.evaluate`` on real photos against hand-labelled keypoints."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from test_pose_detection import ASTRONAUT_LABELS  # hand-labelled joints of skimage.data.astronaut()

from harness.comfy_host import REPO_ROOT
from stablepose_core.evaluate.cli import main
from stablepose_core.poses.keypoints import COCO17_NAMES

pytest.importorskip("pycocotools")


def labelled_astronaut(shift: float = 0.0) -> list[float]:
    points = np.zeros((17, 3))
    for name, (x, y) in ASTRONAUT_LABELS.items():
        points[COCO17_NAMES.index(name)] = (x + shift, y, 2)
    return points.ravel().tolist()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    """ "Generated" images (real photos) named like a ground truth that asks each for the astronaut's pose: the
    photo itself, shifted by 10 % of the width, mirrored, and the coffee cup (nobody). The ground truth names
    .jpg files, the folder holds .png (matched by name without extension)."""
    root = tmp_path_factory.mktemp("evaluation")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    astronaut = data.astronaut()
    photos = {
        "same.png": astronaut,
        "sub/shifted.png": np.roll(astronaut, 51, axis=1),
        "mirrored.png": np.ascontiguousarray(astronaut[:, ::-1]),
        "coffee.png": data.coffee()[:, 44:556],  # 400 x 512: the ground truth is 512 x 512, the image is stretched
    }
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(images / name)
    names = ["same.jpg", "sub/shifted.jpg", "mirrored.jpg", "coffee.jpg"]
    truth = {
        "images": [
            {"id": index + 10, "file_name": name, "width": 512, "height": 512} for index, name in enumerate(names)
        ],
        "annotations": [
            {"id": index + 1, "image_id": index + 10, "keypoints": labelled_astronaut()} for index in range(len(names))
        ],
    }
    truth["annotations"][1]["keypoints"] = labelled_astronaut(shift=51)  # shifted like its image: a good match
    (root / "gt.json").write_text(json.dumps(truth))
    return root / "gt.json", images


def run_cli(*args: str | Path) -> int:
    return main([str(arg) for arg in args])


@pytest.fixture(scope="module")
def evaluated(generated, tmp_path_factory) -> tuple[Path, dict]:
    truth, images = generated
    out = tmp_path_factory.mktemp("out")
    assert run_cli("--annotations", truth, "--images", images, "--out", out, "--backend", "blazepose") == 0
    return out, json.loads((out / "metrics.json").read_text())


def independent_coco_eval(truth: dict, detections_file: Path) -> list[float]:
    """pycocotools run directly: COCO ground truth, loadRes of the CLI's detections.json, COCOeval keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground_truth = COCO()
    ground_truth.dataset = truth
    ground_truth.createIndex()
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(detections_file)), "keypoints")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats[:3].tolist()


def with_box_areas(truth: dict, area_of=None) -> dict:
    """Ground truth with categories, bbox, iscrowd and num_keypoints written out, and ``area`` the width ×
    height of the labelled keypoints' box (the released evaluation's object scale) unless ``area_of`` says."""
    truth = copy.deepcopy(truth)
    truth["categories"] = [{"id": 1, "name": "person"}]
    for annotation in truth["annotations"]:
        points = np.asarray(annotation["keypoints"]).reshape(17, 3)
        labelled = points[points[:, 2] > 0, :2]
        (x0, y0), (x1, y1) = labelled.min(0), labelled.max(0)
        annotation |= {"bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0, "category_id": 1}
        annotation["num_keypoints"] = len(labelled)
        annotation["area"] = (x1 - x0) * (y1 - y0) if area_of is None else area_of(annotation)
    return truth


def test_metrics_and_detections_are_written(evaluated):
    out, metrics = evaluated
    print(json.dumps(metrics, indent=1))
    assert metrics["detector"] == "blazepose" and metrics["images"] == 4 and metrics["people"] == 4
    assert metrics["detections"] == 3  # nobody in the coffee photo
    assert metrics["PCE"] == pytest.approx(0.25)
    assert metrics["area"] == "keypoints" and metrics["cap_variant"] == "correct"
    for key in ("AP", "AP50", "AP75", "CAP", "OKS"):
        assert 0 < metrics[key] < 1, key  # two good matches, a mirrored one and a missing person
    detections = json.loads((out / "detections.json").read_text())
    assert sorted({d["image_id"] for d in detections}) == [10, 11, 12]
    assert all(len(d["keypoints"]) == 51 and 0 < d["score"] <= 1 and d["category_id"] == 1 for d in detections)


def test_ap_equals_pycocotools_run_independently(generated, evaluated):
    truth_file, _ = generated
    out, metrics = evaluated
    truth = with_box_areas(json.loads(truth_file.read_text()))
    assert [metrics["AP"], metrics["AP50"], metrics["AP75"]] == independent_coco_eval(truth, out / "detections.json")


def test_annotation_area_is_cocos_own(generated, evaluated, tmp_path):
    """--area annotation keeps the file's area (COCO's segmentation area); here half the box."""
    truth_file, _ = generated
    out, default = evaluated
    truth = with_box_areas(json.loads(truth_file.read_text()), area_of=lambda a: a["bbox"][2] * a["bbox"][3] / 2)
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    args = ("--annotations", tmp_path / "gt.json", "--detections", out / "detections.json", "--out", tmp_path / "o")
    assert run_cli(*args, "--area", "annotation") == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert [metrics["AP"], metrics["AP50"], metrics["AP75"]] == independent_coco_eval(truth, out / "detections.json")
    assert metrics["AP"] != default["AP"]  # a smaller scale is a stricter OKS


def test_detections_file_from_elsewhere_gives_the_same_numbers(generated, evaluated, tmp_path):
    truth, _ = generated
    out, metrics = evaluated
    assert run_cli("--annotations", truth, "--detections", out / "detections.json", "--out", tmp_path) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["detector"] == "detections file detections.json"
    assert {k: v for k, v in again.items() if k != "detector"} == {k: v for k, v in metrics.items() if k != "detector"}


def test_released_cap_flag(generated, evaluated, tmp_path):
    truth, _ = generated
    out, metrics = evaluated
    args = ("--annotations", truth, "--detections", out / "detections.json", "--out", tmp_path, "--released-cap")
    assert run_cli(*args) == 0
    released = json.loads((tmp_path / "metrics.json").read_text())
    print(f"CAP corrected {metrics['CAP']:.4f}, released {released['CAP']:.4f}")
    assert released["cap_variant"] == "released" and released["CAP"] != metrics["CAP"]
    assert released["AP"] == metrics["AP"]


def test_unmatched_file_names_are_one_clear_error(generated, tmp_path, capsys):
    truth_file, images = generated
    truth = json.loads(truth_file.read_text())
    truth["images"] += [{"id": 99 + i, "file_name": f"missing_{i}.png", "width": 64, "height": 64} for i in range(7)]
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    assert run_cli("--annotations", tmp_path / "gt.json", "--images", images, "--out", tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "7 of 11 have no file in" in error and "missing_0.png" in error and "and 2 more" in error
    assert not (tmp_path / "out").exists(), "nothing written"


def test_ambiguous_and_bad_inputs(generated, tmp_path, capsys):
    truth, images = generated
    (tmp_path / "imgs").mkdir()
    for name in ("same.png", "same.webp", "shifted.png", "mirrored.png", "coffee.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / name)
    assert run_cli("--annotations", truth, "--images", tmp_path / "imgs", "--out", tmp_path / "o") == 2
    assert "1 match several files by name without extension: same.jpg" in capsys.readouterr().err
    assert run_cli("--annotations", truth, "--out", tmp_path / "o") == 2
    assert "give --images DIR" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 5, "keypoints": [0] * 51, "score": 1}]))
    assert run_cli("--annotations", truth, "--detections", tmp_path / "bad.json", "--out", tmp_path / "o") == 2
    assert "image_id 5 is not in the ground truth" in capsys.readouterr().err
    (tmp_path / "imgs" / "same.webp").unlink()
    (tmp_path / "imgs" / "shifted.png").unlink()
    (tmp_path / "imgs" / "shifted.jpg").write_bytes(b"not an image")
    assert run_cli("--annotations", truth, "--images", tmp_path / "imgs", "--out", tmp_path / "o") == 2
    assert "cannot read the image" in capsys.readouterr().err
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}]}))
    assert run_cli("--annotations", tmp_path / "gt.json", "--images", images, "--out", tmp_path / "o") == 2
    assert "images[0] lacks ['height', 'width']" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_with_progress(generated, tmp_path):
    truth, images = generated
    command = [sys.executable, "-m", "stablepose_core.evaluate", "--annotations", str(truth), "--images", str(images)]
    finished = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "4/4" in finished.stderr  # the progress bar
    assert "AP " in finished.stdout and "CAP " in finished.stdout and str(tmp_path) in finished.stdout
