#!/usr/bin/env bash
# Set up (tools/bootstrap.sh, the browser for the editor test, the test caches), run the JS tests, then pytest;
# arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/tools/bootstrap.sh")"
bash "$ROOT/tools/install_browser.sh"   # Debian's Chromium + ChromeDriver for the editor's browser test
cd "$ROOT"
node --test tests/js/                    # the editor's JS model (node's built-in test runner)
"$VENV/bin/python" -m harness.prepare_caches # test models and Anny's data, built once before the tests
# One process: with two workers (-n 2 --dist loadgroup, groups in tests/conftest.py) 24 GB can run out.
exec "$VENV/bin/python" -m pytest "$@"
