#!/usr/bin/env bash
# Headless demo: set up (tools/bootstrap.sh), run a bundled workflow through a real ComfyUI with this pack,
# write its images as PNGs to output/. Usage: tools/demo.sh [workflow.json [tools.run_workflow options]]
# (paths relative to the repo root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORKFLOW="${1:-workflows/photo_to_pose_preview.json}"
if [[ ! -f "$WORKFLOW" ]]; then
    echo "demo: workflow $WORKFLOW is missing (the bundled workflows live in workflows/)" >&2
    exit 1
fi
VENV="$(bash tools/bootstrap.sh)"
exec "$VENV/bin/python" -m tools.run_workflow "$WORKFLOW" --out output/ "${@:2}"
