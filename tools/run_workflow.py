"""Run a UI workflow headless through a real ComfyUI and write its output images (PNG; animations WebP).

The workflow (the JSON ComfyUI saves, with ``nodes`` and ``links``) gets the ``--set`` changes, is validated
against the registered node definitions, converted to an API prompt and executed by ComfyUI's
``PromptExecutor`` with this pack loaded (``harness/comfy_host.py``), on the GPU when torch sees one (``--cpu``
forces the CPU). Every image an output node (SaveImage, PreviewImage, SaveAnimatedWEBP, ...) produced is
copied to ``--out`` as ``<node title>_<node id>_<n>.<ext>``; SaveImage files keep the embedded workflow.

Usage (from the repo root)::

    python -m tools.run_workflow workflows/photo_to_pose_preview.json --out output/
    python -m tools.run_workflow workflows/stable_pose_txt2img.json --models ~/ComfyUI/models \
        --set ckpt_name=my_sd15.safetensors --set KSampler.steps=30
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.comfy_host import ComfyHost, HostError, RunResult
from harness.make_test_models import TEST_MODELS_DIR, ensure_test_models


def save_images(host: ComfyHost, result: RunResult, titles: dict[str, str], out: Path) -> list[Path]:
    """Copy the images listed in the UI outputs (ComfyUI's own files) to ``out`` with readable names."""
    import folder_paths

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for node_id, ui in result.ui.items():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", titles.get(node_id, "node")).strip("_")
        for index, image in enumerate(ui.get("images", [])):
            source = Path(folder_paths.get_directory_by_type(image["type"])) / image["subfolder"] / image["filename"]
            target = out / f"{stem}_{node_id}_{index}{source.suffix}"
            shutil.copyfile(source, target)
            written.append(target)
    return written


def parse_override(text: str) -> tuple[str | None, str, Any]:
    """``[NODE.]WIDGET=VALUE`` -> (NODE or None, WIDGET, VALUE); VALUE is read as JSON when it parses (numbers,
    true/false), else taken as text."""
    target, equals, raw = text.partition("=")
    node, _, widget = target.rpartition(".")
    if not equals or not widget:
        raise HostError(f"--set {text!r}: expected [NODE.]WIDGET=VALUE, e.g. KSampler.steps=30 or ckpt_name=x.ckpt")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return node or None, widget, value


def apply_override(host: ComfyHost, workflow: dict[str, Any], text: str) -> None:
    """Set a widget value in the UI workflow, on every node whose id, title or type is NODE (every node with
    that widget when NODE is left out), as editing it in ComfyUI would."""
    node_ref, widget, value = parse_override(text)
    changed = 0
    for node in workflow["nodes"]:
        names = (None, str(node["id"]), node.get("title"), node["type"])
        if node_ref not in names or node["type"] not in host.nodes.NODE_CLASS_MAPPINGS:
            continue  # frontend-only and unknown nodes: validation reports the unknown ones
        slots = host.widget_slots(node["type"], node.get("inputs") or [])
        if widget not in slots:
            if node_ref is None:
                continue
            widgets = ", ".join(slot for slot in slots if slot) or "none"
            raise HostError(f"--set {text!r}: node {node['id']} ({node['type']}) has no widget {widget!r} ({widgets})")
        if any(s.get("link") is not None and s.get("widget", {}).get("name") == widget for s in node.get("inputs", [])):
            raise HostError(f"--set {text!r}: {widget!r} of node {node['id']} ({node['type']}) is fed by a link")
        values = node["widgets_values"]
        values[widget if isinstance(values, dict) else slots.index(widget)] = value
        changed += 1
    if not changed:
        raise HostError(f"--set {text!r}: no node {'has a widget ' + repr(widget) if node_ref is None else node_ref}")


def run(
    workflow_path: Path,
    out: Path,
    input_dir: Path | None,
    models_dir: Path | None,
    overrides: Sequence[str] = (),
    cpu: bool = True,
) -> int:
    workflow = json.loads(workflow_path.read_text())
    with tempfile.TemporaryDirectory(prefix="stablepose-run-") as workdir:
        host = ComfyHost.boot(
            Path(workdir), models_dir=models_dir, input_dir=input_dir or workflow_path.parent, cpu=cpu
        )
        for override in overrides:
            apply_override(host, workflow, override)
        problems = host.validate_workflow(workflow)
        if problems:
            print(f"{workflow_path} does not validate:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        prompt = host.workflow_to_prompt(workflow)
        result = host.execute(prompt, {"extra_pnginfo": {"workflow": workflow}})
        if not result.ok:
            print(f"{workflow_path} failed:", *result.error_messages(), sep="\n  ", file=sys.stderr)
            return 1
        written = save_images(host, result, {k: v["_meta"]["title"] for k, v in prompt.items()}, out)
    if not written:
        print(f"{workflow_path} ran but produced no images (add a SaveImage or PreviewImage node)", file=sys.stderr)
        return 1
    print(*(f"wrote {path}" for path in written), sep="\n")
    return 0


def gpu_available() -> bool:
    """Whether torch sees a CUDA or Apple-silicon GPU (else ComfyUI must run with ``--cpu``)."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workflow", type=Path, help="UI workflow JSON (as saved by ComfyUI)")
    parser.add_argument("--out", type=Path, default=Path("output"), help="folder for the PNGs (default: output/)")
    parser.add_argument("--input", type=Path, help="folder LoadImage reads from (default: the workflow's folder)")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--models", type=Path, help="models folder (ComfyUI layout) searched before ComfyUI's own")
    models.add_argument(
        "--test-models",
        action="store_true",
        help=f"use the random-weight test models in {TEST_MODELS_DIR} (built if missing)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[NODE.]WIDGET=VALUE",
        dest="overrides",
        help="change a widget before running; NODE is a node id, title or type (default: every node "
        "with that widget); VALUE is JSON if it parses, else text. Repeatable.",
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if torch sees a GPU")
    parser.add_argument("--verbose", action="store_true", help="show ComfyUI's whole log, start-up warnings included")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(message)s")
    logging.getLogger("stable_pose").setLevel(logging.INFO)  # the pack's own messages always show
    if not args.workflow.is_file():
        print(
            f"workflow {args.workflow} not found: pass the path of a workflow JSON (bundled ones are in workflows/)",
            file=sys.stderr,
        )
        return 2
    models_dir = args.models
    if args.test_models:
        ensure_test_models()
        models_dir = TEST_MODELS_DIR
    try:
        return run(args.workflow, args.out, args.input, models_dir, args.overrides, args.cpu or not gpu_available())
    except HostError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
