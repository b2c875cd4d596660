/** Static checks over the shipped web files. */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const WEB = fileURLToPath(new URL("../", import.meta.url));

function shippedFiles(folder = WEB) {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return entry.name === "tests" ? [] : shippedFiles(path);
    return entry.name.endsWith(".js") ? [path] : [];
  });
}

test("the web folder ships the extension and its lib", () => {
  const names = shippedFiles().map((path) => relative(WEB, path)).sort();
  assert.ok(names.includes("wan21_i2v.js"), names.join(", "));
  assert.ok(names.some((name) => name.startsWith("lib/")), names.join(", "));
});

test("no text is ever inserted as HTML and nothing is evaluated", () => {
  const forbidden = /\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\s*\(|new\s+Function\s*\()/;
  for (const path of shippedFiles()) {
    const match = forbidden.exec(readFileSync(path, "utf8"));
    assert.equal(match, null, `${relative(WEB, path)} uses ${match?.[0]}`);
  }
});

test("lib modules import nothing from the frontend (they run without a browser)", () => {
  for (const path of shippedFiles(join(WEB, "lib"))) {
    const imports = [...readFileSync(path, "utf8").matchAll(/\bfrom\s+["']([^"']+)["']/g)].map((m) => m[1]);
    for (const specifier of imports) {
      assert.match(specifier, /^\.\/[\w-]+\.js$/, `${relative(WEB, path)}: ${specifier}`);
    }
  }
});

test("the tests are not served as extensions (ComfyUI imports every **/*.js of web/)", () => {
  const tests = readdirSync(join(WEB, "tests"), { recursive: true }).filter((name) => String(name).endsWith(".js"));
  assert.deepEqual(tests, []);
});
