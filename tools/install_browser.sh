#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the editor's browser test (tests/test_editor_browser.py).
#
# The test drives /usr/bin/chromium headless through Selenium with /usr/bin/chromedriver; both come from the
# distribution's packages because browser downloads (Selenium Manager, Playwright) cannot be reached here.
# Idempotent: does nothing when both are installed. Needs root (or sudo) for apt-get.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO=(sudo)
fi
echo "[install_browser] apt-get install chromium chromium-driver" >&2
"${SUDO[@]}" apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q chromium chromium-driver >&2
chromium --version >&2
chromedriver --version >&2
