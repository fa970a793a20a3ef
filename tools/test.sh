#!/usr/bin/env bash
# Set up (tools/bootstrap.sh, the browser for the editor test, the test caches), run the JS tests, then pytest on
# two workers; arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/tools/bootstrap.sh")"
bash "$ROOT/tools/install_browser.sh"   # Debian's Chromium + ChromeDriver for the editor's browser test
cd "$ROOT"
node --test tests/js/                    # the editor's JS model (node's built-in test runner)
"$VENV/bin/python" -m harness.prepare_caches # test models and Anny's data, built once before the workers start
# Two workers, each taking whole test modules; the SD1.5-size modules share one worker (tests/conftest.py), so
# at most one SD1.5-size job runs at a time.
exec "$VENV/bin/python" -m pytest -n 2 --dist loadgroup "$@"
