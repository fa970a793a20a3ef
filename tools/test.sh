#!/usr/bin/env bash
# Set up (tools/bootstrap.sh with the test caches, the browser for the editor test), run the JS tests, then pytest;
# arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/tools/bootstrap.sh" --test-caches)"
bash "$ROOT/tools/install_browser.sh"   # Debian's Chromium + ChromeDriver for the editor's browser test
cd "$ROOT"
node --test tests/js/                    # the editor's JS model (node's built-in test runner)
# Two workers: the SD1.5-size modules on one (one after the other), the others on the second (tests/conftest.py).
exec "$VENV/bin/python" -m pytest -n 2 --dist loadgroup "$@"
