// The files ComfyUI serves from web/ stay offline and on the frontend's stable API: node --test tests/js/

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const WEB = new URL("../../web/", import.meta.url);
const files = readdirSync(WEB, { recursive: true }).filter((name) => name.endsWith(".js"));
const source = (name) => readFileSync(new URL(name, WEB), "utf8");
// ComfyUI 0.3.x and 0.8.x frontends both serve these module shims; scripts/ui.js is deprecated.
const COMFY_MODULES = new Set(["../../scripts/app.js", "../../scripts/api.js"]);

test("web/ holds the editor's modules", () => {
  assert.deepEqual(files.sort(), ["pose_editor.js", "pose_model.js", "pose_timeline.js", "stable_pose_editor.js"]);
});

for (const name of files) {
  test(`${name}: nothing from the internet, no iframes`, () => {
    const text = source(name);
    assert.doesNotMatch(text, /\bhttps?:\/\//i);
    assert.doesNotMatch(text, /iframe/i);
    assert.doesNotMatch(text, /\bws:\/\/|\bwss:\/\//i);
  });

  test(`${name}: imports only its siblings and ComfyUI's app/api modules`, () => {
    const specifiers = [...source(name).matchAll(/\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"/g)].map(
      (match) => match[1] ?? match[2],
    );
    for (const specifier of specifiers) {
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
