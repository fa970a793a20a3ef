"""Installing the pack into a ComfyUI environment keeps it healthy (a real pip install into a fresh venv).

The fresh venv stands for a user's ComfyUI environment: it sees torch, torchvision and their dependencies from
this interpreter's site-packages (a folder of links to exactly those distributions, added with a ``.pth`` file,
so nothing else of the development venv leaks in and nothing 5 GB is reinstalled), and the user has installed
``onnxruntime-gpu`` (as comfyui_controlnet_aux users do). Then ``pip install -r requirements.txt -r
requirements-optional.txt`` runs for real, from PyPI.
"""

import json
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
OPENCV_DISTRIBUTIONS = {
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
}
KEPT = ("torch", "torchvision", "numpy")

pytestmark = pytest.mark.slow


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, recursively, extras included (torch's CUDA libraries)."""
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    done: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonical(name), extras)
        if key in done:
            continue
        done.add(key)
        try:
            dist = found.setdefault(key[0], metadata.distribution(key[0]))
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                pending.append((requirement.name, frozenset(requirement.extras)))
    return list(found.values())


def link_site(dists: list[metadata.Distribution], target: Path) -> None:
    """A site folder holding links to the top-level files and folders of ``dists`` (their code and metadata)."""
    target.mkdir()
    for dist in dists:
        for file in dist.files or []:
            top = Path(file).parts[0]
            if top == ".." or (target / top).exists():
                continue
            source = Path(dist.locate_file(top))
            if source.exists():
                (target / top).symlink_to(source, target_is_directory=source.is_dir())


def run(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=1200)


def installed(python: Path) -> dict[str, tuple[str, str]]:
    """name -> (version, folder) of every distribution the environment sees."""
    script = (
        "import json, importlib.metadata as m\n"
        "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): (d.version, str(d.locate_file('')))"
        " for d in m.distributions()}))"
    )
    result = run(python, "-c", script)
    assert result.returncode == 0, result.stderr
    return {name: tuple(value) for name, value in json.loads(result.stdout).items()}


@pytest.fixture(scope="module")
def comfyui_env(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh venv seeing this interpreter's torch/torchvision, the linked site folder)."""
    root = tmp_path_factory.mktemp("comfyui_env")
    base_site = root / "torch-site"
    link_site(closure(("torch", "torchvision")), base_site)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "comfyui_torch.pth").write_text(f"{base_site}\n")
    assert sysconfig.get_paths()["purelib"] != purelib
    user = run(python, "-m", "pip", "install", "-q", "--no-compile", "onnxruntime-gpu")  # (compiling is not tested)
    if user.returncode != 0:
        pytest.skip(f"onnxruntime-gpu is not installable here: {user.stderr[-300:]}")
    return python, base_site


def test_installing_the_pack_keeps_the_environment_healthy(comfyui_env):
    python, base_site = comfyui_env
    before = installed(python)
    assert {*KEPT, "onnxruntime-gpu"} <= set(before)

    result = run(
        python,
        "-m",
        "pip",
        "install",
        "--no-compile",
        "-r",
        str(ROOT / "requirements.txt"),
        "-r",
        str(ROOT / "requirements-optional.txt"),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    after = installed(python)

    check = run(python, "-m", "pip", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    opencv = sorted(OPENCV_DISTRIBUTIONS & set(after))
    assert opencv == ["opencv-python-headless"], opencv  # exactly one distribution provides cv2
    imported = run(python, "-c", "import cv2; print(cv2.__file__)")
    assert imported.returncode == 0, imported.stderr
    for name in KEPT:  # same version, still the one ComfyUI installed (not shadowed by a copy in the venv)
        assert after[name] == before[name], (name, before[name], after[name])
        assert after[name][1] == str(base_site), after[name]
    assert after["onnxruntime-gpu"] == before["onnxruntime-gpu"]
    assert "onnxruntime" not in after  # the CPU build would shadow onnxruntime-gpu's module
    print("installed:", sorted(set(after) - set(before)))
