#!/usr/bin/env bash
# Set up (tools/bootstrap.sh with the test caches, the browser for the editor test), run the JS tests, then pytest;
# arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Python writes its bytecode caches (__pycache__/, git-ignored) even where PYTHONDONTWRITEBYTECODE is set: the ~40
# Python processes of a run would otherwise each compile torch and ComfyUI again.
unset PYTHONDONTWRITEBYTECODE
# glibc's malloc gives every block over 32 MB its own fresh pages (mmap), so each oneDNN convolution that re-lays an
# SD1.5-size weight (59 MB at 1280 channels) first faults in and zeroes its buffer: at the tests' 8x8 latents that
# was half of a UNet step. Served from the heap and kept there, the same steps take half the time.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184"
bash "$ROOT/tools/install_browser.sh" &  # Debian's Chromium + ChromeDriver for the editor's browser test, meanwhile
BROWSER=$!
VENV="$(bash "$ROOT/tools/bootstrap.sh" --test-caches)"
wait "$BROWSER"
cd "$ROOT"
node --test tests/js/                    # the editor's JS model (node's built-in test runner)
# One process: with two (pytest-xdist workers, or the modules split by memory) 24 GB ran out or the run took longer;
# the suite keeps both cores busy on its own.
exec "$VENV/bin/python" -m pytest "$@"
