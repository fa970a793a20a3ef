"""Run a UI workflow headless through a real ComfyUI and write its output images as PNGs.

The workflow (the JSON ComfyUI saves, with ``nodes`` and ``links``) is validated against the registered
node definitions, converted to an API prompt and executed by ComfyUI's ``PromptExecutor`` with this pack
loaded (``tools/comfy_host.py``). Every image an output node (SaveImage, PreviewImage, ...) produced is
copied to ``--out`` as ``<node title>_<node id>_<n>.png``; SaveImage files keep the embedded workflow.

Usage (from the repo root)::

    python -m tools.run_workflow workflows/photo_to_pose_preview.json --out output/
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

from tools.comfy_host import ComfyHost, HostError, RunResult
from tools.make_test_models import TEST_MODELS_DIR, ensure_test_models


def save_images(host: ComfyHost, result: RunResult, titles: dict[str, str], out: Path) -> list[Path]:
    """Copy the images listed in the UI outputs (ComfyUI's own files) to ``out`` with readable names."""
    import folder_paths

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for node_id, ui in result.ui.items():
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", titles.get(node_id, "node")).strip("_")
        for index, image in enumerate(ui.get("images", [])):
            source = Path(folder_paths.get_directory_by_type(image["type"])) / image["subfolder"] / image["filename"]
            target = out / f"{stem}_{node_id}_{index}.png"
            shutil.copyfile(source, target)
            written.append(target)
    return written


def run(workflow_path: Path, out: Path, input_dir: Path | None, models_dir: Path | None) -> int:
    workflow = json.loads(workflow_path.read_text())
    with tempfile.TemporaryDirectory(prefix="stablepose-run-") as workdir:
        host = ComfyHost.boot(Path(workdir), models_dir=models_dir, input_dir=input_dir or workflow_path.parent)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workflow", type=Path, help="UI workflow JSON (as saved by ComfyUI)")
    parser.add_argument("--out", type=Path, default=Path("output"), help="folder for the PNGs (default: output/)")
    parser.add_argument("--input", type=Path, help="folder LoadImage reads from (default: the workflow's folder)")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--models", type=Path, help="models folder (ComfyUI layout) searched before ComfyUI's own")
    models.add_argument("--test-models", action="store_true",
                        help=f"use the random-weight test models in {TEST_MODELS_DIR} (built if missing)")
    parser.add_argument("--verbose", action="store_true", help="show ComfyUI's whole log, start-up warnings included")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(message)s")
    logging.getLogger("stable_pose").setLevel(logging.INFO)  # the pack's own messages always show
    if not args.workflow.is_file():
        print(f"workflow {args.workflow} not found: pass the path of a workflow JSON (bundled ones are in workflows/)",
              file=sys.stderr)
        return 2
    models_dir = args.models
    if args.test_models:
        ensure_test_models()
        models_dir = TEST_MODELS_DIR
    try:
        return run(args.workflow, args.out, args.input, models_dir)
    except HostError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
