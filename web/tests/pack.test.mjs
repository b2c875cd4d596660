import assert from "node:assert/strict";
import { test } from "node:test";

import { isPackNodeDef, packFolderFromUrl } from "../lib/pack.js";

test("the pack folder comes from the /extensions/<folder>/ URL ComfyUI serves", () => {
  assert.equal(packFolderFromUrl("http://127.0.0.1:8188/extensions/comfyui-wan21-i2v/wan21_i2v.js"),
    "comfyui-wan21-i2v");
  assert.equal(packFolderFromUrl("https://host/sub/extensions/My%20Pack/lib/x.js"), "My Pack");
  assert.equal(packFolderFromUrl("file:///work/main/web/wan21_i2v.js"), null);
});

test("pack nodes are recognised by python_module, not by their name", () => {
  const folder = "comfyui-wan21-i2v";
  assert.equal(isPackNodeDef({ name: "WanSampler", python_module: "custom_nodes.comfyui-wan21-i2v" }, folder), true);
  assert.equal(isPackNodeDef({ name: "WanImageToVideo", python_module: "comfy_extras.nodes_wan" }, folder), false);
  assert.equal(isPackNodeDef({ name: "WanSampler", python_module: "custom_nodes.other-pack" }, folder), false);
  assert.equal(isPackNodeDef({ name: "WanSampler", python_module: "custom_nodes.comfyui-wan21-i2v" }, null), false);
  assert.equal(isPackNodeDef(undefined, folder), false);
});
