import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DURATION_WIDGET, PRESET_WIDGET, applyPreset, chainMethod, durationLine, fitNode, installFusionUi, installStageLabel,
  syncPreset, widgetOf,
} from "../lib/node_ui.js";
import { CUSTOM } from "../lib/presets.js";
import { StageBoard } from "../lib/stage.js";
import { FakeContext, FakeGraph, FakeNode, fusionWidgets } from "./fakes/litegraph.mjs";

function fusionNode(inputs = []) {
  const node = new FakeNode({ id: 4, type: "WanFusionConditioning", widgets: fusionWidgets(), inputs });
  assert.equal(installFusionUi(node), true);
  return node;
}

const BACKEND_VALUES = [832, 480, 81, 1, "exact", "none", 0];

test("frontend widgets are appended after the backend widgets", () => {
  const node = fusionNode();
  assert.deepEqual(node.widgets.map((widget) => widget.name),
    ["width", "height", "length", "batch_size", "size_mode", "crop", "vae_tile", PRESET_WIDGET, DURATION_WIDGET]);
});

test("saved widgets_values keep the backend order and length", () => {
  const node = fusionNode();
  assert.deepEqual(node.serializedWidgetValues(), BACKEND_VALUES);
  node.setWidget(PRESET_WIDGET, "720p portrait (720×1280)");
  assert.deepEqual(node.serializedWidgetValues(), [720, 1280, 81, 1, "exact", "none", 0]);
});

test("the prompt sent to the server has only the backend inputs", () => {
  const node = fusionNode();
  assert.deepEqual(Object.keys(node.promptInputs()),
    ["width", "height", "length", "batch_size", "size_mode", "crop", "vae_tile"]);
});

test("typed or dragged lengths snap to 4n+1 (ties down, like the core)", () => {
  const node = fusionNode();
  const cases = [[80, 81], [82, 81], [83, 81], [84, 85], [3, 1], [2000, 1025], [0, 1], [97, 97]];
  for (const [typed, expected] of cases) {
    node.setWidget("length", typed);
    assert.equal(widgetOf(node, "length").value, expected, `typed ${typed}`);
  }
});

test("the frontend's own callback still runs before the snap", () => {
  const node = new FakeNode({ widgets: fusionWidgets() });
  const seen = [];
  widgetOf(node, "length").callback = (value) => seen.push(value);
  installFusionUi(node);
  node.setWidget("length", 50);
  assert.deepEqual(seen, [50]);
  assert.equal(widgetOf(node, "length").value, 49);
});

test("presets set width and height; custom leaves them", () => {
  const node = fusionNode();
  node.setWidget(PRESET_WIDGET, "480p portrait (480×832)");
  assert.deepEqual([widgetOf(node, "width").value, widgetOf(node, "height").value], [480, 832]);
  assert.ok(node.dirty > 0);
  node.setWidget(PRESET_WIDGET, CUSTOM);
  assert.deepEqual([widgetOf(node, "width").value, widgetOf(node, "height").value], [480, 832]);
  assert.equal(applyPreset(node, "bogus"), false);
  assert.equal(applyPreset(new FakeNode(), "480p portrait (480×832)"), false);
});

test("the preset list follows width/height edits and loaded values", () => {
  const node = fusionNode();
  assert.equal(widgetOf(node, PRESET_WIDGET).value, "480p landscape (832×480)");
  node.setWidget("width", 848);
  assert.equal(widgetOf(node, PRESET_WIDGET).value, CUSTOM);
  node.setWidget("width", 1280);
  node.setWidget("height", 720);
  assert.equal(widgetOf(node, PRESET_WIDGET).value, "720p landscape (1280×720)");
  widgetOf(node, "width").value = 720;          // as LGraphNode.configure does, without callbacks
  widgetOf(node, "height").value = 1280;
  syncPreset(node);
  assert.equal(widgetOf(node, PRESET_WIDGET).value, "720p portrait (720×1280)");
});

test("duration line: value, warning, linked input", () => {
  const node = fusionNode();
  assert.deepEqual(durationLine(node), { text: "81 frames = 5.06 s at 16 fps", warn: false });
  widgetOf(node, "length").value = 80;          // e.g. an old workflow
  assert.deepEqual(durationLine(node), { text: "80 frames is not 4n+1 (use 77 or 81)", warn: true });
  const linked = fusionNode([{ name: "length", widget: { name: "length" }, link: 17 }]);
  assert.equal(durationLine(linked).text, "length comes from a linked input");
  const unlinked = fusionNode([{ name: "length", widget: { name: "length" }, link: null }]);
  assert.equal(durationLine(unlinked).text, "81 frames = 5.06 s at 16 fps");
});

test("the duration widget draws its line as canvas text", () => {
  const node = fusionNode();
  const ctx = new FakeContext();
  const widget = widgetOf(node, DURATION_WIDGET);
  widget.draw(ctx, node, 400, 200, 20);
  assert.equal(ctx.texts.length, 1);
  assert.equal(ctx.texts[0].text, "81 frames = 5.06 s at 16 fps");
  assert.equal(ctx.texts[0].y, 210);
  assert.ok(ctx.texts[0].maxWidth <= 400);
  assert.deepEqual(widget.computeSize(400), [400, 20]);
});

test("nothing is added when a backend widget is missing", () => {
  const node = new FakeNode({ widgets: fusionWidgets().filter((widget) => widget.name !== "length") });
  assert.equal(installFusionUi(node), false);
  assert.equal(node.widgets.length, 6);
});

test("a node saved smaller than its widgets need is grown, never shrunk", () => {
  const node = fusionNode();
  node.size = [150, 60];
  fitNode(node);
  assert.deepEqual(node.size, node.computeSize());
  node.size = [900, 900];
  fitNode(node);
  assert.deepEqual(node.size, [900, 900]);
});

test("stage label is drawn above the title after the node's own foreground", () => {
  const order = [];
  class NodeType extends FakeNode {}
  NodeType.prototype.onDrawForeground = function own() { order.push("own"); };
  const board = new StageBoard();
  installStageLabel(NodeType.prototype, board, () => 30);
  const node = new NodeType({ id: 3 });
  const ctx = new FakeContext();

  node.onDrawForeground(ctx);
  assert.deepEqual(order, ["own"]);
  assert.equal(ctx.texts.length, 0);                 // nothing before a run

  board.show(new FakeGraph([node]), { node: "3", seconds: 2, peak_ram_mb: 300, peak_vram_mb: null });
  node.onDrawForeground(ctx);
  assert.equal(ctx.texts.length, 1);
  assert.equal(ctx.texts[0].text, "2.00 s · RAM 300 MB");
  assert.ok(ctx.texts[0].y < -30, "above the title bar");
  board.clear();
  node.onDrawForeground(ctx);
  assert.equal(ctx.texts.length, 1);
});

test("chainMethod keeps the original result and this", () => {
  const proto = { value: 2, compute(x) { return this.value * x; } };
  const seen = [];
  chainMethod(proto, "compute", function after(x) { seen.push([this.value, x]); });
  assert.equal(proto.compute(5), 10);
  assert.deepEqual(seen, [[2, 5]]);
  const bare = {};
  chainMethod(bare, "missing", () => seen.push("after"));
  assert.equal(bare.missing(), undefined);
  assert.equal(seen.at(-1), "after");
});
