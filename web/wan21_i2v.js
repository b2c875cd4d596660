/**
 * Frontend extension of the Wan2.1 image-to-video pack.
 *
 * - Wan Fusion Conditioning: `length` snaps to 4n+1, a duration line ("81 frames = 5.06 s at
 *   16 fps") and a resolution preset list (480p/720p, landscape/portrait) that sets width/height.
 * - Every node of the pack shows its last stage time and peak memory (the "wan21.stage" event)
 *   above its title; the lines are cleared when the next run starts.
 *
 * ComfyUI imports every .js file of the pack's web folder; the logic lives in ./lib (no browser needed).
 */
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { FUSION_NODE, chainMethod, fitNode, installFusionUi, installStageLabel, syncPreset } from "./lib/node_ui.js";
import { isPackNodeDef, packFolderFromUrl } from "./lib/pack.js";
import { STAGE_EVENT, StageBoard } from "./lib/stage.js";

const PACK_FOLDER = packFolderFromUrl(import.meta.url);
const board = new StageBoard();
const packNodeTypes = new Set();

function titleHeight() {
  return globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30;
}

function redraw() {
  app.canvas?.setDirty(true, false);
}

function patchFusionNode(nodeType) {
  chainMethod(nodeType.prototype, "onNodeCreated", function addFusionUi() {
    if (!installFusionUi(this)) console.warn(`[wan21] ${FUSION_NODE}: width/height/length widgets not found`);
  });
  chainMethod(nodeType.prototype, "onConfigure", function afterLoad() {
    syncPreset(this);
    fitNode(this);
  });
}

function isPackNode(node) {
  return packNodeTypes.has(node.type);
}

function listenForStages() {
  api.addEventListener(STAGE_EVENT, ({ detail }) => {
    if (board.show(app.graph, detail, isPackNode)) redraw();
  });
  api.addEventListener("execution_start", () => {
    if (board.clear()) redraw();
  });
  api.addEventListener("execution_cached", ({ detail }) => {
    const cached = board.markCached(app.graph, detail?.nodes, isPackNode);
    if (cached.length) redraw();
  });
}

app.registerExtension({
  name: "wan21.i2v",

  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isPackNodeDef(nodeData, PACK_FOLDER)) return;
    packNodeTypes.add(nodeData.name);
    installStageLabel(nodeType.prototype, board, titleHeight);
    if (nodeData.name === FUSION_NODE) patchFusionNode(nodeType);
  },

  setup() {
    listenForStages();
    console.log(`[wan21] extension loaded (${packNodeTypes.size} nodes)`);
  },
});
