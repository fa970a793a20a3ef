"""``stablepose_host.find_comfyui``: ``$COMFYUI_PATH``, else the ComfyUI the pack is installed in, else the dev copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablepose_host import ComfyUINotFound, comfyui, find_comfyui


def fake_comfyui(path: Path) -> Path:
    (path / "comfy").mkdir(parents=True)
    (path / "nodes.py").write_text("")
    (path / "comfy" / "sd.py").write_text("")
    return path


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A pack installed in ``ComfyUI/custom_nodes/`` whose ``.cache/comfyui`` holds another ComfyUI."""
    installed = fake_comfyui(tmp_path / "ComfyUI")
    pack = installed / "custom_nodes" / "stable_pose"
    dev_cache = fake_comfyui(pack / ".cache" / "comfyui")
    monkeypatch.delenv(comfyui.ENV_VAR, raising=False)
    monkeypatch.setattr(comfyui, "PACK_ROOT", pack)
    monkeypatch.setattr(comfyui, "DEV_CACHE", dev_cache)
    return {"installed": installed, "pack": pack, "dev_cache": dev_cache}


def test_the_comfyui_the_pack_is_installed_in_wins_over_the_dev_copy(layout: dict[str, Path]) -> None:
    assert find_comfyui() == layout["installed"].resolve()


def test_the_environment_variable_wins(layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = fake_comfyui(tmp_path / "elsewhere")
    monkeypatch.setenv(comfyui.ENV_VAR, str(chosen))
    assert find_comfyui() == chosen.resolve()


def test_a_wrong_environment_variable_is_an_error_not_a_fallback(layout, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(comfyui.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ComfyUINotFound, match=r"COMFYUI_PATH=.*missing is not a ComfyUI folder"):
        find_comfyui()


def test_a_pack_linked_into_custom_nodes_finds_that_comfyui(layout, tmp_path, monkeypatch) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    link = layout["installed"] / "custom_nodes" / "linked"
    link.symlink_to(checkout, target_is_directory=True)
    monkeypatch.setattr(comfyui, "PACK_ROOT", link)
    monkeypatch.setattr(comfyui, "DEV_CACHE", checkout / ".cache" / "comfyui")
    assert find_comfyui() == layout["installed"].resolve()


def test_a_checkout_outside_comfyui_uses_the_dev_copy(layout, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(comfyui, "PACK_ROOT", tmp_path / "checkout")
    assert find_comfyui() == layout["dev_cache"].resolve()
    monkeypatch.setattr(comfyui, "DEV_CACHE", tmp_path / "checkout" / ".cache" / "comfyui")
    with pytest.raises(ComfyUINotFound, match=r"set COMFYUI_PATH.*custom_nodes.*tools/bootstrap.sh"):
        find_comfyui()
