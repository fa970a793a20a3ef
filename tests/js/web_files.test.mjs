// The files ComfyUI serves from web/ stay offline and on the frontend's stable API: node --test tests/js/

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const WEB = new URL("../../web/", import.meta.url);
const files = readdirSync(WEB, { recursive: true }).filter((name) => name.endsWith(".js"));
const source = (name) => readFileSync(new URL(name, WEB), "utf8");
const imports = (name) =>
  [...source(name).matchAll(/\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"/g)].map(
    (match) => match[1] ?? match[2],
  );
const EXTENSION = "stable_pose_editor.js"; // the module that registers the ComfyUI extension
// ComfyUI 0.3.x and 0.8.x frontends both serve these module shims; scripts/ui.js is deprecated.
const COMFY_MODULES = new Set(["../../scripts/app.js", "../../scripts/api.js"]);

// The editor's modules, each importing only modules after it (docs/editor.md, "Code layout").
const LAYERS = [
  "stable_pose_editor.js",
  "pose_editor.js",
  "pose_editor_input.js",
  "pose_editor_view.js",
  "pose_editor_render.js",
  "pose_editor_timeline.js",
  "pose_timeline.js",
  "pose_model.js",
];

test("web/ holds the editor's modules", () => {
  assert.deepEqual(files.sort(), [...LAYERS].sort());
});

test("the editor's modules import only downwards", () => {
  for (const [layer, name] of LAYERS.entries()) {
    for (const specifier of imports(name).filter((path) => path.startsWith("./"))) {
      const below = LAYERS.indexOf(specifier.slice(2));
      assert.ok(below > layer, `${name} imports ${specifier}, which is not below it`);
    }
  }
});

// ComfyUI's frontend imports every .js file under web/ as an extension: all but the extension itself must
// do nothing when imported (no DOM, no ComfyUI), which importing them here, without either, shows.
for (const name of files.filter((file) => file !== EXTENSION)) {
  test(`${name}: importing it does nothing but define`, async () => {
    const module = await import(new URL(name, WEB));
    assert.ok(Object.keys(module).length > 0, "it exports what the editor uses");
  });
}

for (const name of files) {
  test(`${name}: nothing from the internet, no iframes`, () => {
    const text = source(name);
    assert.doesNotMatch(text, /\bhttps?:\/\//i);
    assert.doesNotMatch(text, /iframe/i);
    assert.doesNotMatch(text, /\bws:\/\/|\bwss:\/\//i);
  });

  test(`${name}: imports only its siblings and ComfyUI's app/api modules`, () => {
    for (const specifier of imports(name)) {
      assert.ok(
        COMFY_MODULES.has(specifier) || /^\.\/[\w-]+\.js$/.test(specifier),
        `unexpected import "${specifier}"`,
      );
    }
  });
}

test("the server routes the editor calls live under the pack's prefix or are ComfyUI's /view", () => {
  const paths = files.flatMap((name) =>
    [...source(name).matchAll(/(?:fetchApi|apiURL)\(`([^`$?]+)/g)].map((m) => m[1]),
  );
  assert.ok(paths.length > 0);
  for (const path of paths) assert.ok(path.startsWith("/stable_pose/") || path === "/view", path);
});
