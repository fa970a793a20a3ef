#!/usr/bin/env bash
# Headless demo (docs/workflows.md): set up (tools/bootstrap.sh), then run bundled workflows through a real ComfyUI
# with this pack and write their images to output/<workflow name>/.
#
#   tools/demo.sh [--models DIR] [--checkpoint NAME] [--adapter NAME] [--steps N]
#       1. workflows/photo_to_pose_preview.json, no model weights: the sample photo's pose image, the pose over
#          the photo and the pose-masked attention masks;
#       2. if DIR (--models, else $STABLEPOSE_MODELS; a ComfyUI models/ layout) holds an SD1.5 checkpoint in
#          checkpoints/ and a Stable-Pose adapter in stable_pose/: workflows/photo_to_pose_to_image.json with them.
#          A folder's file is picked when it is the one the workflow names or the only one there; otherwise name it
#          with --checkpoint/--adapter. --steps N overrides the sampler's 25 steps.
#   tools/demo.sh WORKFLOW.json [tools.run_workflow options]
#       run that workflow only (paths relative to the repo root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT=output
PREVIEW=workflows/photo_to_pose_preview.json
GENERATE=workflows/photo_to_pose_to_image.json
WORKFLOW_CHECKPOINT=v1-5-pruned-emaonly-fp16.safetensors   # what the bundled workflows name
WORKFLOW_ADAPTER=stable_pose_humanart.safetensors

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [[ $# -gt 0 && $1 != --* ]]; then
    [[ -f $1 ]] || die "workflow $1 is missing (the bundled workflows live in workflows/)"
    VENV="$(bash tools/bootstrap.sh)"
    exec "$VENV/bin/python" -m tools.run_workflow "$1" --out "$OUT/" "${@:2}"
fi

MODELS="${STABLEPOSE_MODELS:-}" CHECKPOINT="" ADAPTER="" STEPS=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --models | --checkpoint | --adapter | --steps) [[ $# -ge 2 ]] || die "$1 needs a value" ;;&
        --models) MODELS=$2 ;;
        --checkpoint) CHECKPOINT=$2 ;;
        --adapter) ADAPTER=$2 ;;
        --steps) STEPS=$2 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown option $1 (see tools/demo.sh --help)" ;;
    esac
    shift 2
done

# pick_model FOLDER WORKFLOW_NAME GIVEN_NAME OPTION: print the file to use, or print why not and fail.
pick_model() {
    local folder=$1 preferred=$2 given=$3 files=()
    if [[ -n $given ]]; then
        [[ -f $folder/$given ]] || { echo "$folder/$given does not exist"; return 1; }
        echo "$given"; return 0
    fi
    [[ -f $folder/$preferred ]] && { echo "$preferred"; return 0; }
    shopt -s nullglob
    for file in "$folder"/*.safetensors "$folder"/*.ckpt "$folder"/*.pth; do files+=("${file##*/}"); done
    shopt -u nullglob
    case ${#files[@]} in
        1) echo "${files[0]}" ;;
        0) echo "no model file in $folder"; return 1 ;;
        *) echo "several files in $folder (${files[*]}): choose one with --$4"; return 1 ;;
    esac
}

if [[ -n $MODELS ]]; then  # choose the models before anything runs
    [[ -d $MODELS ]] || die "models folder $MODELS does not exist"
    checkpoint=$(pick_model "$MODELS/checkpoints" "$WORKFLOW_CHECKPOINT" "$CHECKPOINT" checkpoint) ||
        die "no SD1.5 checkpoint: $checkpoint"
    adapter=$(pick_model "$MODELS/stable_pose" "$WORKFLOW_ADAPTER" "$ADAPTER" adapter) ||
        die "no Stable-Pose adapter: $adapter"
fi

VENV="$(bash tools/bootstrap.sh)"
run() {  # run WORKFLOW [options]: images into output/<workflow name>/
    local name=${1##*/}
    "$VENV/bin/python" -m tools.run_workflow "$@" --out "$OUT/${name%.json}/"
}

start=$SECONDS
echo "== $PREVIEW (no model weights)"
run "$PREVIEW"
echo "   $((SECONDS - start)) s"

if [[ -z $MODELS ]]; then
    echo "== skipped $GENERATE: give a models folder (--models DIR or STABLEPOSE_MODELS) with an SD1.5 checkpoint" \
        "in checkpoints/ and a Stable-Pose adapter in stable_pose/"
else
    start=$SECONDS
    echo "== $GENERATE with checkpoints/$checkpoint and stable_pose/$adapter from $MODELS"
    run "$GENERATE" --models "$MODELS" --set "ckpt_name=$checkpoint" --set "adapter_name=$adapter" \
        ${STEPS:+--set "KSampler.steps=$STEPS"}
    echo "   $((SECONDS - start)) s"
fi
echo "Images are in $ROOT/$OUT/"
