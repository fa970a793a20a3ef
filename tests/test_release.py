"""Release metadata: what the Comfy Registry and ComfyUI-Manager read, checked with the Registry's own tool."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def comfy_cli() -> str:
    """comfy-cli from requirements-dev.txt: next to this interpreter (CI's venv), else on PATH."""
    beside = Path(sys.executable).parent / ("comfy.exe" if os.name == "nt" else "comfy")
    found = str(beside) if beside.is_file() else shutil.which("comfy")
    if found is None:
        pytest.fail("comfy-cli is not installed: pip install -r requirements-dev.txt")
    return found


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_comfy_node_validate_passes(tmp_path):
    """`comfy node validate` (the checks `comfy node publish` runs) passes with no warning, offline."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}  # no user config read/written
    result = subprocess.run(
        [comfy_cli(), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, output
    assert "All validation checks passed" in output
    assert not re.search(r"warning|error", output, re.IGNORECASE), output


def test_project_metadata_is_complete_and_agrees_with_the_files():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["dependencies"] == requirement_lines(ROOT / "requirements.txt")
    assert project["license"] == {"file": "LICENSE"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3, 29 June 2007" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a stub
    assert project["urls"]["Repository"].startswith("https://")
    assert comfy["PublisherId"] and comfy["DisplayName"] == "Stable-Pose"
    assert (ROOT / "docs" / "icon.png").is_file() and comfy["Icon"].endswith("/docs/icon.png")
    assert comfy["requires-comfyui"] == ">=0.3.75"  # the oldest host the tests run on


def test_version_is_shown_in_readme_and_changelog():
    version, name = PYPROJECT["project"]["version"], PYPROJECT["project"]["name"]
    readme = (ROOT / "README.md").read_text()
    assert f"Version {version}" in readme
    assert (ROOT / "CHANGELOG.md").read_text().split("\n## ", 2)[1].startswith(version)  # newest entry first
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert f"comfy node install {name}" in install
    assert "search for" not in install.lower()  # only install paths that exist
