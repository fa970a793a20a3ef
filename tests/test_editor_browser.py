"""End-to-end test of the pose editor in a real browser against the real ComfyUI server.

Starts ComfyUI's ``main.py`` (the host ``stablepose_host.find_comfyui()`` finds, its frontend package; another
frontend with ``STABLEPOSE_FRONTEND_ROOT``) on 127.0.0.1 with this pack installed as a custom node, drives
Debian's headless Chromium through Selenium (``tools/install_browser.sh`` installs both), loads
``workflows/pose_editor.json``, opens the editor from the node's button, adds a person, drags the right
wrist, applies, queues the prompt and checks the image the server saved: the right forearm ends at the new
place and the picture is exactly ``render_pose`` of the stored edit. A screenshot of the open editor is saved
to ``tests/artifacts/pose_editor_open.png``. Needs no model weights.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.browser import (
    PACK_NAME,
    ComfyServer,
    assert_no_extension_errors,
    load_page,
    queue_and_wait,
    run_js,
    wait_for,
)
from harness.comfy_host import REPO_ROOT
from stablepose_core.poses.keyframes import clip_from_keyframes
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.skeleton import LIMB_COLORS, render_pose

pytestmark = pytest.mark.browser

WORKFLOW = REPO_ROOT / "workflows" / "pose_editor.json"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
WEB = REPO_ROOT / "web"
RIGHT_WRIST = COCO17_NAMES.index("right_wrist")
RIGHT_FOREARM = 9  # limb (right elbow, right wrist)
DRAG = (-60, -90)  # screen pixels the right wrist is dragged by


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    running = ComfyServer(tmp_path_factory.mktemp("comfy_server"))
    try:
        running.wait_ready()
        assert "StablePoseEditor" in running.get_json("/object_info/StablePoseEditor"), running.log_tail()
        running.post_json("/settings/Comfy.TutorialCompleted", True)  # no first-run template browser
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(browser: Any) -> Any:
    """The module's Chromium, keeping every resource timing entry: the page's default buffer of 250 fills before
    the extensions load, and the tests read the entries to see what the page fetched."""
    browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": "performance.setResourceTimingBufferSize(1000000);"}
    )
    return browser


def pointer_drag(driver: Any, start: tuple[float, float], delta: tuple[float, float], steps: int = 8) -> None:
    """Press at a viewport point, move in steps, release: real pointer events from the browser."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(start[0]), round(start[1])).pointer_down()
    for step in range(1, steps + 1):
        x, y = start[0] + delta[0] * step / steps, start[1] + delta[1] * step / steps
        actions.pointer_action.move_to_location(round(x), round(y))
    actions.pointer_action.pointer_up()
    actions.perform()


def click_at(driver: Any, point: tuple[float, float]) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(point[0]), round(point[1])).click()
    actions.perform()


def open_editor(driver: Any, node_id: int) -> Any:
    """Click the node's "Open pose editor" button where litegraph drew it; returns the editor element."""
    button_at = run_js(
        driver,
        """
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);
        const node = app.graph.getNodeById(args[0]);
        const button = node.widgets.find((w) => w.type === "button");
        const y = (button.last_y ?? button.y) + LiteGraph.NODE_WIDGET_HEIGHT / 2;
        const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2, node.pos[1] + y]);
        const rect = app.canvas.canvas.getBoundingClientRect();
        const ratio = rect.width / app.canvas.canvas.width;
        return [rect.left + cx * ratio, rect.top + cy * ratio];
        """,
        node_id,
    )
    click_at(driver, button_at)
    wait_for(driver, "document.querySelector('[data-stable-pose-editor=open] canvas')", "the editor to open", 30)
    return driver.find_element("css selector", "[data-stable-pose-editor=open]")


def saved_image(server: ComfyServer, entry: dict[str, Any]) -> np.ndarray:
    saved = next(output["images"][0] for output in entry["outputs"].values() if output.get("images"))
    query = urllib.parse.urlencode({key: saved[key] for key in ("filename", "subfolder", "type")})
    return np.asarray(Image.open(io.BytesIO(server.get(f"/view?{query}"))).convert("RGB"))


def pose_widget_value(driver: Any, node_id: int) -> str:
    return run_js(
        driver, "return app.graph.getNodeById(args[0]).widgets.find((w) => w.name === 'pose_json').value;", node_id
    )


def test_every_web_module_is_served_and_loaded(server: ComfyServer, browser: Any) -> None:
    """ComfyUI lists every .js file of the pack's web/ folder as an extension, serves it unchanged, and the page
    loads each one without an error."""
    names = sorted(path.relative_to(WEB).as_posix() for path in WEB.rglob("*.js"))
    urls = {name: f"/extensions/{PACK_NAME}/{name}" for name in names}
    listed = set(server.get_json("/extensions"))
    assert not set(urls.values()) - listed, f"not listed by /extensions: {sorted(set(urls.values()) - listed)}"
    for name, url in urls.items():
        assert server.get(url) == (WEB / name).read_bytes(), f"{url} is not web/{name}"
    load_page(browser, server)
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => new URL(entry.name).pathname)"
    )
    assert not set(urls.values()) - set(loaded), f"not loaded by the page: {sorted(set(urls.values()) - set(loaded))}"
    assert_no_extension_errors(browser)


def test_edit_in_browser_and_render_on_server(server: ComfyServer, browser: Any) -> None:
    """The bundled workflow: add a person, drag the right wrist, apply, queue; the server draws the edit."""
    driver = browser
    load_page(driver, server)
    node_info = run_js(
        driver,
        """
        await app.loadGraphData(args[0]);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        const node = app.graph._nodes.find((n) => n.type === "StablePoseEditor");
        const pose = node.widgets.find((w) => w.name === "pose_json");
        const button = node.widgets.find((w) => w.type === "button");
        return { id: node.id, hidden: pose.hidden === true, button: button?.name, serialize: button?.serialize };
        """,
        json.loads(WORKFLOW.read_text()),
    )
    assert node_info["hidden"], "the pose_json widget is hidden"
    assert node_info["button"] == "Open pose editor" and node_info["serialize"] is False

    resources_before = driver.execute_script("return performance.getEntriesByType('resource').length")
    editor = open_editor(driver, node_info["id"])
    editor.find_element("css selector", "button[data-action=add-person]").click()
    # Where the default person's right wrist is, from the served spec and the model module, in viewport px.
    wrist = run_js(
        driver,
        """
        const model = await import("/extensions/stable_pose/pose_model.js");
        const spec = await (await fetch("/stable_pose/skeleton_spec?width=512&height=768")).json();
        const [x, y] = model.defaultPerson(spec, 512, 768)[args[0]];
        const canvas = document.querySelector("[data-stable-pose-editor=open] canvas");
        const rect = canvas.getBoundingClientRect();
        const scale = rect.width / canvas.width;
        return { canvas: [x, y], screen: [rect.left + x * scale, rect.top + y * scale], scale,
                 size: [canvas.width, canvas.height] };
        """,
        RIGHT_WRIST,
    )
    assert wrist["size"] == [512, 768], "the editor canvas is the node's (default) canvas"
    pointer_drag(driver, tuple(wrist["screen"]), DRAG)
    expected = np.array(wrist["canvas"]) + np.array(DRAG) / wrist["scale"]
    status = editor.find_element("css selector", ".sp-editor-status").text
    assert "right_wrist at (" in status, status

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "pose_editor_open.png"
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    new_resources = driver.execute_script(
        "return performance.getEntriesByType('resource').slice(arguments[0]).map((e) => e.name)", resources_before
    )
    foreign = [url for url in new_resources if not url.startswith(server.url)]
    assert not foreign, f"the editor reached beyond the ComfyUI server: {foreign}"

    editor.find_element("css selector", "button[data-action=apply]").click()
    wait_for(driver, "!document.querySelector('[data-stable-pose-editor=open]')", "the editor to close", 10)
    stored = pose_widget_value(driver, node_info["id"])
    edit = PoseKeypoints.from_json(stored)
    assert edit.num_people == 1 and (edit.width, edit.height) == (512, 768)
    np.testing.assert_allclose(edit.keypoints[0, RIGHT_WRIST, :2], expected, atol=1.5)

    # Saving the workflow, copying the node and queuing the prompt all carry the edit.
    copied = run_js(
        driver,
        "return app.graph.getNodeById(args[0]).clone().widgets.find((w) => w.name === 'pose_json').value;",
        node_info["id"],
    )
    assert copied == stored
    saved_workflow = run_js(driver, "return app.graph.serialize();")
    saved_node = next(node for node in saved_workflow["nodes"] if node["type"] == "StablePoseEditor")
    assert stored in saved_node["widgets_values"]
    prompt = run_js(driver, "return (await app.graphToPrompt()).output;")
    assert prompt[str(node_info["id"])]["inputs"]["pose_json"] == stored
    entry = queue_and_wait(driver, server)
    assert entry["outputs"][str(node_info["id"])]["canvas"] == [512, 768]
    image = saved_image(server, entry)
    np.testing.assert_array_equal(image, render_pose(edit))
    x, y = (int(v) for v in edit.keypoints[0, RIGHT_WRIST, :2])
    assert tuple(image[y, x]) == LIMB_COLORS[RIGHT_FOREARM], "the right forearm ends at the dragged wrist"
    old_x, old_y = (int(v) for v in wrist["canvas"])
    assert not image[old_y, old_x].any(), "nothing is drawn where the wrist was"
    wait_for(
        driver,
        f"window.comfyAPI.app.app.graph.getNodeById({node_info['id']}).stablePoseInput?.canvas?.[1] === 768",
        "the node's UI output to reach the editor",
        30,
    )
    assert_no_extension_errors(driver)


def test_load_from_input_with_background(server: ComfyServer, browser: Any) -> None:
    """photo -> OpenPoseExtract -> editor: after a run, "Load from input" brings the detected pose, the
    photo shows behind it, and applying it unchanged draws what OpenPoseExtract drew."""
    from skimage import data

    driver = browser
    Image.fromarray(data.astronaut()).save(server.base / "input" / "astronaut.png")
    load_page(driver, server)
    node_id = run_js(
        driver,
        """
        app.graph.clear();
        const add = (type, pos) => {
          const node = LiteGraph.createNode(type);
          node.pos = pos;
          app.graph.add(node);
          return node;
        };
        const load = add("LoadImage", [700, 400]);
        load.widgets.find((w) => w.name === "image").value = "astronaut.png";
        const extract = add("OpenPoseExtract", [700, 120]);
        const editor = add("StablePoseEditor", [100, 160]);
        const save = add("SaveImage", [1000, 120]);
        load.connect(0, extract, 0);
        load.connect(0, editor, editor.findInputSlot("background"));
        extract.connect(1, editor, editor.findInputSlot("pose_keypoint"));
        editor.connect(0, save, 0);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        return editor.id;
        """,
    )
    entry = queue_and_wait(driver, server)
    ui = entry["outputs"][str(node_id)]
    assert ui["canvas"] == [512, 512] and ui["background"][0]["type"] == "temp"
    unedited = saved_image(server, entry)
    wait_for(
        driver,
        f"window.comfyAPI.app.app.graph.getNodeById({node_id}).stablePoseInput?.seeds?.length",
        "the input pose to reach the node in the browser",
        30,
    )
    assert pose_widget_value(driver, node_id) == ""

    editor = open_editor(driver, node_id)
    status = editor.find_element("css selector", ".sp-editor-status").text
    assert "lie off the canvas and are hidden" in status, status  # the astronaut's legs are cut off
    editor.find_element("css selector", "button[data-action=add-person]").click()
    assert "2 people" in editor.find_element("css selector", ".sp-editor-status").text  # the input + a new one
    editor.find_element("css selector", "button[data-action=load-input]").click()
    assert "1 person" in editor.find_element("css selector", ".sp-editor-status").text
    # The photo is drawn behind the skeleton: the top-left corner of the canvas is not black.
    corner = run_js(
        driver,
        """
        const canvas = document.querySelector("[data-stable-pose-editor=open] canvas");
        return Array.from(canvas.getContext("2d").getImageData(5, 5, 1, 1).data);
        """,
    )
    assert sum(corner[:3]) > 30, corner
    editor.find_element("css selector", "button[data-action=apply]").click()
    wait_for(driver, "!document.querySelector('[data-stable-pose-editor=open]')", "the editor to close", 10)

    stored = PoseKeypoints.from_json(pose_widget_value(driver, node_id))
    seed = PoseKeypoints.from_json(ui["seed_pose"][0])
    np.testing.assert_allclose(stored.keypoints[stored.visible], seed.keypoints[seed.visible], atol=0.01)
    assert (stored.visible == seed.visible).all()
    edited = queue_and_wait(driver, server)
    np.testing.assert_array_equal(saved_image(server, edited), unedited)
    assert_no_extension_errors(driver)


def test_vue_node_renderer(server: ComfyServer, browser: Any) -> None:
    """With the frontend's Vue node renderer ("Nodes 2.0") the widget stays hidden and the button opens the editor."""
    driver = browser
    server.post_json("/settings/Comfy.VueNodes.Enabled", True)
    try:
        load_page(driver, server)
        run_js(driver, "await app.loadGraphData(args[0]);", json.loads(WORKFLOW.read_text()))
        wait_for(
            driver,
            "[...document.querySelectorAll('button')].some((b) => b.textContent.includes('Open pose editor'))",
            "the Vue node's button",
            30,
        )
        node_text = driver.execute_script(
            "const node = window.comfyAPI.app.app.graph._nodes.find((n) => n.type === 'StablePoseEditor');"
            "return document.querySelector(`[data-node-id='${node.id}']`).innerText;"
        )
        assert "Open pose editor" in node_text and "width" in node_text
        assert "pose_json" not in node_text, "the pose_json widget is hidden"
        button = next(b for b in driver.find_elements("css selector", "button") if "Open pose editor" in b.text)
        button.click()
        wait_for(driver, "document.querySelector('[data-stable-pose-editor=open] canvas')", "the editor to open", 30)
        driver.find_element("css selector", "[data-stable-pose-editor=open] button[data-action=cancel]").click()
        wait_for(driver, "!document.querySelector('[data-stable-pose-editor=open]')", "the editor to close", 10)
        assert_no_extension_errors(driver)
    finally:
        server.post_json("/settings/Comfy.VueNodes.Enabled", False)


def saved_images(server: ComfyServer, entry: dict[str, Any]) -> list[np.ndarray]:
    saved = next(output["images"] for output in entry["outputs"].values() if output.get("images"))
    pictures = []
    for image in saved:
        query = urllib.parse.urlencode({key: image[key] for key in ("filename", "subfolder", "type")})
        pictures.append(np.asarray(Image.open(io.BytesIO(server.get(f"/view?{query}"))).convert("RGB")))
    return pictures


def editor_state(driver: Any) -> dict[str, Any]:
    return run_js(
        driver,
        """
        const overlay = document.querySelector("[data-stable-pose-editor=open]");
        const { model, timeline, current } = overlay.stablePoseEditor;
        return { frame: current(), pose: model.pose, keys: timeline.keyFrames(), frames: timeline.frameCount,
                 interpolation: overlay.dataset.interpolation };
        """,
    )


def load_editor_workflow(driver: Any, server: ComfyServer) -> int:
    """Load workflows/pose_editor.json at scale 1; returns the editor node's id."""
    load_page(driver, server)
    return run_js(
        driver,
        """
        await app.loadGraphData(args[0]);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [0, 0];
        return app.graph._nodes.find((n) => n.type === "StablePoseEditor").id;
        """,
        json.loads(WORKFLOW.read_text()),
    )


def joint_on_screen(driver: Any, person: int, joint: int) -> tuple[float, float]:
    """Where a joint of the pose the open editor shows is, in viewport pixels."""
    return tuple(
        run_js(
            driver,
            """
            const overlay = document.querySelector("[data-stable-pose-editor=open]");
            const [x, y] = overlay.stablePoseEditor.model.pose.people[args[0]][args[1]];
            const canvas = overlay.querySelector("canvas");
            const rect = canvas.getBoundingClientRect();
            const scale = rect.width / canvas.width;
            return [rect.left + x * scale, rect.top + y * scale];
            """,
            person,
            joint,
        )
    )


def press(driver: Any, key: str, modifier: str | None = None) -> None:
    """Press a key (with a modifier held) as the user does: real key events from the browser."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver)
    if modifier:
        actions.key_down(modifier)
    actions.send_keys(key)
    if modifier:
        actions.key_up(modifier)
    actions.perform()


def test_keyboard_joint_list_and_double_click(server: ComfyServer, browser: Any) -> None:
    """The editor's shortcuts (M, Ctrl+Z, Ctrl+Y, H, K, Esc), the joint list's checkbox and a double-click on a
    joint act as docs/editor.md says; Esc closes without storing."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.keys import Keys

    driver = browser
    node_id = load_editor_workflow(driver, server)
    editor = open_editor(driver, node_id)
    editor.find_element("css selector", "button[data-action=add-person]").click()
    added = editor_state(driver)["pose"]["people"][0]
    left_wrist = COCO17_NAMES.index("left_wrist")
    press(driver, "m")
    mirrored = editor_state(driver)["pose"]["people"][0]
    assert mirrored[left_wrist] == [511 - added[RIGHT_WRIST][0], added[RIGHT_WRIST][1], 1], "M mirrors"
    press(driver, "z", Keys.CONTROL)
    assert editor_state(driver)["pose"]["people"][0] == added, "Ctrl+Z undoes"
    press(driver, "y", Keys.CONTROL)
    assert editor_state(driver)["pose"]["people"][0] == mirrored, "Ctrl+Y redoes"

    press(driver, "h")  # Add person selected the nose
    nose_box = editor.find_element("css selector", ".sp-editor-joints label input[type=checkbox]")
    assert editor_state(driver)["pose"]["people"][0][0][2] == 0 and not nose_box.is_selected(), "H hides"
    nose_box.click()
    assert editor_state(driver)["pose"]["people"][0][0][2] == 1, "the joint list's checkbox shows it again"
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(*(round(v) for v in joint_on_screen(driver, 0, RIGHT_WRIST)))
    actions.pointer_action.double_click()
    actions.perform()
    assert editor_state(driver)["pose"]["people"][0][RIGHT_WRIST][2] == 0, "a double-click hides the joint"
    assert "right_wrist at (" in editor.find_element("css selector", ".sp-editor-status").text

    assert editor_state(driver)["keys"] == [0], "an edited frame is a key"
    press(driver, "k")
    state = editor_state(driver)
    assert state["keys"] == [] and state["pose"]["people"] == [], "K removes the key: no keys, no input, no pose"
    assert "Set key" in editor.find_element("css selector", "button[data-action=toggle-key]").text
    press(driver, Keys.ESCAPE)
    wait_for(driver, "!document.querySelector('[data-stable-pose-editor=open]')", "the editor to close", 10)
    assert pose_widget_value(driver, node_id) == "", "Esc stores nothing"
    assert_no_extension_errors(driver)


def test_timeline_keyframes_play_and_queue(server: ComfyServer, browser: Any) -> None:
    """Nine frames, a key at 0 (a new person) and at 8 (right wrist dragged), scrub, play, apply, queue: every
    frame the server draws is the core's interpolation of the stored keys, and the editor showed the same."""
    driver = browser
    node_id = load_editor_workflow(driver, server)
    resources_before = driver.execute_script("return performance.getEntriesByType('resource').length")
    editor = open_editor(driver, node_id)
    click = lambda action: editor.find_element("css selector", f"button[data-action={action}]").click()  # noqa: E731
    frame_count = editor.find_element("css selector", "input[data-role=frame-count]")
    frame_count.clear()
    frame_count.send_keys("9\t")
    assert editor_state(driver)["frames"] == 9
    click("add-person")
    for _ in range(8):
        click("next-frame")
    state = editor_state(driver)
    assert state["frame"] == 8 and state["keys"] == [0]
    pointer_drag(driver, joint_on_screen(driver, 0, RIGHT_WRIST), DRAG)
    wait_for(driver, "document.querySelector('[data-stable-pose-editor=open]').dataset.interpolation === 'ready'",
             "the server's in-betweens")  # fmt: skip
    assert editor_state(driver)["keys"] == [0, 8]
    for _ in range(4):
        click("prev-frame")
    shown_middle = editor_state(driver)
    assert shown_middle["frame"] == 4
    click("play")
    wait_for(driver, "document.querySelector('[data-stable-pose-editor=open]').dataset.frame === '7'", "playback")
    click("play")
    assert editor.get_attribute("data-playing") == "no"
    new_resources = driver.execute_script(
        "return performance.getEntriesByType('resource').slice(arguments[0]).map((e) => e.name)", resources_before
    )
    assert not [url for url in new_resources if not url.startswith(server.url)], new_resources
    click("apply")
    wait_for(driver, "!document.querySelector('[data-stable-pose-editor=open]')", "the editor to close", 10)

    stored = json.loads(pose_widget_value(driver, node_id))
    assert stored["format"] == "stable-pose-coco17-keyframes" and stored["frames"] == 9
    assert [key["frame"] for key in stored["keys"]] == [0, 8]
    clip = clip_from_keyframes(stored)
    np.testing.assert_allclose(shown_middle["pose"]["people"], clip.keypoints[4], atol=1e-4)
    assert not np.allclose(clip.keypoints[4], clip.keypoints[0]), "frame 4 is an in-between, not a held key"
    entry = queue_and_wait(driver, server)
    images = saved_images(server, entry)
    assert len(images) == 9
    for frame, image in enumerate(images):
        np.testing.assert_array_equal(image, render_pose(clip.poses()[frame]), err_msg=f"frame {frame}")
    assert_no_extension_errors(driver)
