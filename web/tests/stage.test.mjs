import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CACHED_TEXT, STAGE_EVENT, StageBoard, findNodeByExecutionId, formatMegabytes, formatSeconds, parseExecutionId,
  stageText,
} from "../lib/stage.js";
import { FakeGraph, FakeNode } from "./fakes/litegraph.mjs";

test("the event name is the one nodes/comfy_adapter.py sends", () => {
  assert.equal(STAGE_EVENT, "wan21.stage");
});

test("seconds", () => {
  assert.equal(formatSeconds(0.4213), "0.42 s");
  assert.equal(formatSeconds(9.994), "9.99 s");
  assert.equal(formatSeconds(12.34), "12.3 s");
  assert.equal(formatSeconds(125.4), "2 min 05 s");
  assert.equal(formatSeconds(3600), "60 min 00 s");
});

test("megabytes", () => {
  assert.equal(formatMegabytes(850.4), "850 MB");
  assert.equal(formatMegabytes(1023.4), "1023 MB");
  assert.equal(formatMegabytes(1024), "1.0 GB");
  assert.equal(formatMegabytes(5734.4), "5.6 GB");
  assert.equal(formatMegabytes(null), null);
  assert.equal(formatMegabytes(undefined), null);
  assert.equal(formatMegabytes(NaN), null);
});

test("stage line with and without VRAM", () => {
  assert.equal(stageText({ node: "3", seconds: 3.214, peak_ram_mb: 1228.8, peak_vram_mb: 5734.4 }),
    "3.21 s · RAM 1.2 GB · VRAM 5.6 GB");
  assert.equal(stageText({ node: "3", seconds: 0.5, peak_ram_mb: 512, peak_vram_mb: null }), "0.50 s · RAM 512 MB");
  assert.equal(stageText({ node: "3", seconds: 0.5, peak_ram_mb: null, peak_vram_mb: null }), "0.50 s");
});

test("malformed events give no line", () => {
  for (const detail of [null, undefined, {}, { node: "3" }, { node: "3", seconds: "1" }, { node: "3", seconds: NaN }]) {
    assert.equal(stageText(detail), null, JSON.stringify(detail));
  }
});

test("execution ids", () => {
  assert.deepEqual(parseExecutionId("12"), ["12"]);
  assert.deepEqual(parseExecutionId("5:12"), ["5", "12"]);
  assert.deepEqual(parseExecutionId(7), ["7"]);
  assert.equal(parseExecutionId(""), null);
  assert.equal(parseExecutionId(null), null);
  assert.equal(parseExecutionId({}), null);
});

function graphWithSubgraph() {
  const inner = new FakeNode({ id: 12, type: "WanSampler" });
  const subgraphNode = new FakeNode({ id: 5, type: "subgraph-uuid" });
  subgraphNode.subgraph = new FakeGraph([inner]);
  const top = new FakeNode({ id: 12, type: "WanVAEDecode" });
  return { graph: new FakeGraph([top, subgraphNode]), top, inner };
}

test("nodes are found in the root graph and inside subgraphs", () => {
  const { graph, top, inner } = graphWithSubgraph();
  assert.equal(findNodeByExecutionId(graph, "12"), top);
  assert.equal(findNodeByExecutionId(graph, "5:12"), inner);
  assert.equal(findNodeByExecutionId(graph, "12:1"), null);   // node 12 is not a subgraph
  assert.equal(findNodeByExecutionId(graph, "99"), null);
  assert.equal(findNodeByExecutionId(null, "12"), null);
});

test("an event's line lands on its node and is cleared at the next run", () => {
  const { graph, top, inner } = graphWithSubgraph();
  const board = new StageBoard();
  assert.equal(board.show(graph, { node: "12", seconds: 1.5, peak_ram_mb: 100, peak_vram_mb: null }), top);
  assert.equal(board.show(graph, { node: "5:12", seconds: 20, peak_ram_mb: 2048, peak_vram_mb: 4096 }), inner);
  assert.equal(board.textOf(top), "1.50 s · RAM 100 MB");
  assert.equal(board.textOf(inner), "20.0 s · RAM 2.0 GB · VRAM 4.0 GB");
  assert.equal(board.clear(), 2);
  assert.equal(board.textOf(top), undefined);
  assert.equal(board.textOf(inner), undefined);
  assert.equal(board.clear(), 0);
});

test("the line is a plain field, not a saved property", () => {
  const { graph, top } = graphWithSubgraph();
  top.properties = {};
  new StageBoard().show(graph, { node: "12", seconds: 1, peak_ram_mb: 1, peak_vram_mb: null });
  assert.deepEqual(top.properties, {});
  assert.equal(top.wan21Stage, "1.00 s · RAM 1 MB");
});

test("events for unknown nodes or without seconds change nothing", () => {
  const { graph, top } = graphWithSubgraph();
  const board = new StageBoard();
  assert.equal(board.show(graph, { node: "404", seconds: 1 }), null);
  assert.equal(board.show(graph, { node: "12" }), null);
  assert.equal(board.show(graph, null), null);
  assert.equal(board.textOf(top), undefined);
  assert.equal(board.clear(), 0);
});

test("an id that now names a node of another kind is skipped", () => {
  const { graph, top } = graphWithSubgraph();
  const board = new StageBoard();
  const detail = { node: "12", seconds: 1, peak_ram_mb: 1, peak_vram_mb: null };
  assert.equal(board.show(graph, detail, (node) => node.type === "WanSampler"), null);
  assert.equal(board.textOf(top), undefined);
  assert.equal(board.show(graph, detail, (node) => node.type === "WanVAEDecode"), top);
});

test("cached pack nodes are marked, other cached nodes are not", () => {
  const { graph, top, inner } = graphWithSubgraph();
  const core = graph.add(new FakeNode({ id: 7, type: "WanImageToVideo" }));
  const board = new StageBoard();
  const marked = board.markCached(graph, ["12", "5:12", "7", "404"], (node) => node.type !== "WanImageToVideo");
  assert.deepEqual(marked, [top, inner]);
  assert.equal(board.textOf(top), CACHED_TEXT);
  assert.equal(board.textOf(core), undefined);
  assert.deepEqual(board.markCached(graph, undefined, () => true), []);
});
