"""``python -m training.train`` without the training requirements: one line saying what to install."""

import subprocess
import sys
from pathlib import Path

import pytest

from training.train import missing_training_requirements

ROOT = Path(__file__).resolve().parents[1]

# Runs training.train as ``-m`` would, with accelerate and albumentations made unimportable.
WITHOUT_TRAINING_REQUIREMENTS = """
import importlib.abc, runpy, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("accelerate", "albumentations"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
sys.argv = ["training.train", *sys.argv[1:]]
runpy.run_module("training.train", run_name="__main__", alter_sys=True)
"""


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAINING_REQUIREMENTS, *args], cwd=ROOT, capture_output=True, text=True
    )


def test_help_without_training_requirements_is_one_line():
    result = run_train("--help")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "training needs accelerate, albumentations: pip install -r training/requirements.txt"
    ]


@pytest.mark.skipif(bool(missing_training_requirements()), reason="training requirements not installed")
def test_help_with_training_requirements_shows_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout
