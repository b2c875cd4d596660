/** The extension module itself, loaded as ComfyUI serves it, against fake app/api modules. */
import assert from "node:assert/strict";
import { register } from "node:module";
import { before, test } from "node:test";

import { FakeContext, FakeGraph, FakeNode, fusionWidgets } from "./fakes/litegraph.mjs";

register("./fakes/comfy_server_layout.mjs", import.meta.url);
const SERVER = "file:///comfy-server/";
const PACK_NODES = [
  "WanDiTLoader", "WanT5Loader", "WanImageEncoderLoader", "WanVAELoader", "WanUpscalerLoader", "WanT5TextEncode",
  "WanImageEncode", "WanFusionConditioning", "WanSampler", "WanVAEDecode", "WanCascadedUpscaler",
];

let app, api, extension, logs;
const types = {};

before(async () => {
  ({ app } = await import(`${SERVER}scripts/app.js`));
  ({ api } = await import(`${SERVER}scripts/api.js`));
  await import(`${SERVER}extensions/comfyui-wan21-i2v/wan21_i2v.js`);
  extension = app.extensions[0];
  const defs = [
    ...PACK_NODES.map((name) => ({ name, python_module: "custom_nodes.comfyui-wan21-i2v" })),
    { name: "WanImageToVideo", python_module: "comfy_extras.nodes_wan" },
    { name: "KSampler", python_module: "nodes" },
  ];
  for (const def of defs) {
    types[def.name] = class extends FakeNode {};
    types[def.name].prototype.type = def.name;
    await extension.beforeRegisterNodeDef?.(types[def.name], def, app);
  }
  logs = [];
  const log = console.log;
  console.log = (...args) => logs.push(args.join(" "));
  try {
    await extension.setup?.(app);
  } finally {
    console.log = log;
  }
});

function create(typeName, id, widgets = []) {
  const node = new types[typeName]({ id, type: typeName, widgets });
  node.onNodeCreated?.();
  return node;
}

test("one extension, and the load line counts the pack's nodes only", () => {
  assert.equal(app.extensions.length, 1);
  assert.equal(extension.name, "wan21.i2v");
  assert.deepEqual(logs, [`[wan21] extension loaded (${PACK_NODES.length} nodes)`]);
});

test("listeners are registered for the stage event and the run events", () => {
  for (const type of ["wan21.stage", "execution_start", "execution_cached"]) assert.ok(api.listened.has(type), type);
});

test("only pack nodes are patched; core Wan nodes are left alone", () => {
  assert.equal(typeof types.WanSampler.prototype.onDrawForeground, "function");
  assert.equal(types.WanImageToVideo.prototype.onDrawForeground, undefined);
  assert.equal(types.KSampler.prototype.onDrawForeground, undefined);
  assert.equal(types.WanSampler.prototype.onNodeCreated, undefined);
  assert.equal(typeof types.WanFusionConditioning.prototype.onNodeCreated, "function");
});

test("a created fusion node gets the frontend widgets; a loaded one syncs its preset", () => {
  const node = create("WanFusionConditioning", 8, fusionWidgets());
  assert.deepEqual(node.widgets.slice(-2).map((widget) => widget.name), ["resolution preset", "duration"]);
  node.widgets[0].value = 480;                 // LGraphNode.configure writes the saved values...
  node.widgets[1].value = 832;
  node.onConfigure({});                        // ...then calls onConfigure
  assert.equal(node.widgets.at(-2).value, "480p portrait (480×832)");
  assert.deepEqual(node.serializedWidgetValues(), [480, 832, 81, 1, "exact", "none", 0]);
});

test("stage events draw on their node; the next run clears them", () => {
  const sampler = create("WanSampler", 9);
  const loader = create("WanDiTLoader", 1);
  const core = create("KSampler", 3);
  app.graph = new FakeGraph([sampler, loader, core]);

  api.emit("wan21.stage", { node: "3", seconds: 1, peak_ram_mb: 1, peak_vram_mb: null });   // not a pack node
  assert.equal(core.wan21Stage, undefined);
  api.emit("wan21.stage", { node: "9", seconds: 42.5, peak_ram_mb: 3000, peak_vram_mb: 9000 });
  const ctx = new FakeContext();
  sampler.onDrawForeground(ctx);
  assert.deepEqual(ctx.texts.map((item) => item.text), ["42.5 s · RAM 2.9 GB · VRAM 8.8 GB"]);

  api.emit("execution_cached", { nodes: ["1", "3"], prompt_id: "p" });
  const loaderCtx = new FakeContext();
  loader.onDrawForeground(loaderCtx);
  assert.deepEqual(loaderCtx.texts.map((item) => item.text), ["cached (not run)"]);
  assert.equal(core.wan21Stage, undefined);

  const dirty = app.canvas.dirty;
  api.emit("execution_start", { prompt_id: "q" });
  assert.ok(app.canvas.dirty > dirty);
  const after = new FakeContext();
  sampler.onDrawForeground(after);
  loader.onDrawForeground(after);
  assert.equal(after.texts.length, 0);
});

test("events for missing nodes and malformed events are ignored", () => {
  app.graph = new FakeGraph([]);
  assert.doesNotThrow(() => api.emit("wan21.stage", { node: "77", seconds: 1 }));
  assert.doesNotThrow(() => api.emit("wan21.stage", null));
  assert.doesNotThrow(() => api.emit("execution_cached", null));
});
