"""The browser harness of the editor and workflow tests: ComfyUI's own server in a subprocess, headless Chromium
through Selenium, and page helpers that drive ComfyUI's frontend."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.comfy_host import REPO_ROOT
from stablepose_host import find_comfyui

CHROMIUM = os.environ.get("STABLEPOSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STABLEPOSE_CHROMEDRIVER", "/usr/bin/chromedriver")
PACK_NAME = "stable_pose"  # folder name under custom_nodes: the web files are served at /extensions/stable_pose/
BOOT_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyServer:
    """ComfyUI's own ``main.py`` in a subprocess, with its folders under ``base`` and the pack linked in."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "server.log"
        (base / "custom_nodes").mkdir(parents=True)
        (base / "custom_nodes" / PACK_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
        command = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--base-directory", str(base), "--database-url", f"sqlite:///{base}/comfyui.db",
        ]  # fmt: skip
        if os.environ.get("STABLEPOSE_FRONTEND_ROOT"):
            command += ["--front-end-root", os.environ["STABLEPOSE_FRONTEND_ROOT"]]
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=find_comfyui(), stdout=self.log, stderr=subprocess.STDOUT)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/object_info/StablePoseEditor")
                return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"ComfyUI did not answer within {BOOT_TIMEOUT_S} s:\n{self.log_tail()}")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post_json(self, path: str, value: Any) -> None:
        request = urllib.request.Request(
            self.url + path, json.dumps(value).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Selenium (``tools/install_browser.sh`` installs both)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run tools/install_browser.sh (Debian chromium, chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download a browser
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the selenium package is missing: pip install -r requirements-dev.txt")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def run_js(driver: Any, body: str, *args: Any) -> Any:
    """Run an async function body in the page (``app`` and ``args`` in scope) and return its JSON result."""
    script = f"""
        const done = arguments[arguments.length - 1];
        const args = Array.from(arguments).slice(0, -1);
        const app = window.comfyAPI.app.app;
        (async () => {{ {body} }})().then(
            (value) => done({{ ok: true, value: JSON.stringify(value ?? null) }}),
            (error) => done({{ ok: false, error: String(error && error.stack || error) }}),
        );
    """
    result = driver.execute_async_script(script, *args)
    if not result["ok"]:
        raise AssertionError(f"page script failed: {result['error']}")
    return json.loads(result["value"])


def wait_for(driver: Any, condition_js: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(f"try {{ return !!({condition_js}); }} catch (e) {{ return false; }}"):
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_history(server: ComfyServer, prompt_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(0.5)
    raise AssertionError(f"prompt {prompt_id} did not finish:\n{server.log_tail()}")


def load_page(driver: Any, server: ComfyServer) -> None:
    driver.get(server.url)
    wait_for(
        driver,
        "window.comfyAPI.app.app.graph && LiteGraph.registered_node_types['StablePoseEditor'] && "
        "window.comfyAPI.app.app.extensions.some((e) => e.name === 'StablePose.PoseEditor')",
        "the frontend with the pack's extension",
    )


def queue_and_wait(driver: Any, server: ComfyServer) -> dict[str, Any]:
    """Queue the graph as the Run button does (graphToPrompt + queuePrompt); returns the history entry."""
    queued = run_js(
        driver,
        """
        const { output, workflow } = await app.graphToPrompt();
        return await window.comfyAPI.api.api.queuePrompt(0, { output, workflow });
        """,
    )
    entry = wait_for_history(server, queued["prompt_id"])
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert entry["status"]["status_str"] == "success", [(e["node_type"], e["exception_message"]) for e in errors]
    return entry


def assert_no_extension_errors(driver: Any) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and PACK_NAME in e["message"]]
    assert not errors, errors
