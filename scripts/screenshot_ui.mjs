#!/usr/bin/env node
/**
 * Screenshot the pack's workflow in a real ComfyUI, in headless Chromium, and check the web
 * extension on the way. A manual check, not part of CI.
 *
 * What it does:
 *   1. starts ComfyUI (--cpu) in a throw-away base folder with this repository linked as the
 *      custom node `comfyui-wan21-i2v`, and the tiny random models of `wan21_core.tiny`;
 *   2. opens the UI, loads workflows/wan21_i2v.json and saves docs/images/wan21_i2v_workflow.png;
 *   3. checks the fusion node in the real frontend: its saved widgets_values and the prompt it
 *      sends are unchanged by the extension's widgets, and a typed length snaps to 4n+1;
 *   4. unless --no-run: points the loaders at the tiny models, makes the clip small (128x80,
 *      4 steps), runs it and saves wan21_i2v_after_run.png (stage time and peak memory above
 *      every pack node, from the real "wan21.stage" events) and wan21_i2v_fusion_node.png;
 *   5. fails if the extension's load line is missing or a page error mentions the pack.
 *
 * Needs Debian's chromium (apt-get install -y chromium) and the npm package playwright-core,
 * installed outside the repository:
 *
 *   mkdir -p /tmp/ui && cd /tmp/ui && npm install playwright-core
 *   PLAYWRIGHT_DIR=/tmp/ui COMFYUI_PATH=/path/to/ComfyUI node scripts/screenshot_ui.mjs [--no-run]
 *
 * Environment: COMFYUI_PATH (a ComfyUI source tree), COMFYUI_PYTHON (default: the `venv` next to
 * it), PLAYWRIGHT_DIR (a folder whose node_modules holds playwright-core; default: the current
 * folder), CHROMIUM (default /usr/bin/chromium), OUT_DIR (default docs/images).
 */
import { spawn, execFileSync } from "node:child_process";
import {
  existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PACK_NAME = "comfyui-wan21-i2v";
const COMFY = resolve(process.env.COMFYUI_PATH ?? "/work/comfy/ComfyUI");
const PYTHON = process.env.COMFYUI_PYTHON ?? join(dirname(COMFY), "venv", "bin", "python");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const OUT_DIR = resolve(REPO, process.env.OUT_DIR ?? "docs/images");
const WORKFLOW = join(REPO, "workflows", "wan21_i2v.json");
const RUN = !process.argv.includes("--no-run");
const VIEWPORT = { width: 2560, height: 1440 };   // the whole graph at a zoom where LiteGraph draws text
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

const SETTINGS = { "Comfy.TutorialCompleted": true, "Comfy.Minimap.Visible": false, "Comfy.Graph.CanvasInfo": false };

const requireFrom = createRequire(join(resolve(process.env.PLAYWRIGHT_DIR ?? process.cwd()), "package.json"));
const { chromium } = requireFrom("playwright-core");

// The run uses the tiny models written by `python -m wan21_core.tiny` and a small clip.
const TINY_RUN = {
  WanDiTLoader: { dit_name: "wan2.1_i2v_tiny_fp16.safetensors" },
  WanT5Loader: { t5_name: "umt5_xxl_tiny_fp16.safetensors" },
  WanImageEncoderLoader: { clip_name: "clip_vision_tiny.safetensors" },
  WanVAELoader: { vae_name: "wan_2.1_vae_tiny.safetensors" },
  WanFusionConditioning: { width: 128, height: 80, length: 17, size_mode: "exact" },
  WanSampler: { steps: 4 },
};

function log(message) {
  console.log(`[screenshot] ${message}`);
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.on("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** Base folder: the pack linked as a custom node, tiny models, a start image, first-run dialogs off. */
function prepareBase() {
  const base = mkdtempSync(join(tmpdir(), "wan21-ui-"));
  mkdirSync(join(base, "custom_nodes"));
  symlinkSync(REPO, join(base, "custom_nodes", PACK_NAME));
  mkdirSync(join(base, "input"));
  mkdirSync(join(base, "user", "default"), { recursive: true });
  writeFileSync(join(base, "user", "default", "comfy.settings.json"), JSON.stringify(SETTINGS));
  execFileSync(PYTHON, ["-m", "wan21_core.tiny", join(base, "models")], { cwd: REPO, stdio: "inherit" });
  execFileSync(PYTHON, ["-c", [
    "import sys; from PIL import Image",
    "img = Image.linear_gradient('L').resize((128, 80)).convert('RGB')",
    "img.save(sys.argv[1])"].join("\n"), join(base, "input", "example.png")]);
  return base;
}

async function startComfy(base) {
  const port = await freePort();
  const logPath = join(base, "comfyui.log");
  const out = openSync(logPath, "w");
  const server = spawn(PYTHON, ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", String(port), "--cache-none",
    "--base-directory", base, "--database-url", "sqlite:///:memory:"],
  { cwd: COMFY, stdio: ["ignore", out, out], detached: true });
  const url = `http://127.0.0.1:${port}`;
  for (let waited = 0; waited < 240; waited += 1) {
    if (server.exitCode !== null) throw new Error(`ComfyUI exited:\n${readFileSync(logPath, "utf8").slice(-3000)}`);
    try {
      if ((await fetch(`${url}/system_stats`)).ok) return { server, url, logPath };
    } catch { /* not listening yet */ }
    await sleep(1000);
  }
  throw new Error(`ComfyUI did not answer on ${url} within 240 s`);
}

function stopComfy(server) {
  try {
    process.kill(-server.pid, "SIGTERM");
  } catch { /* already gone */ }
}

/** Fit the canvas around every node (titles and the stage labels above them included). */
async function fitView(page, ids = null, zoom = 0.97) {
  await page.evaluate(([only, factor]) => {
    const nodes = window.app.graph._nodes.filter((node) => !only || only.includes(node.id));
    const top = 60;   // title bar + stage label row
    const xs = nodes.flatMap((node) => [node.pos[0], node.pos[0] + node.size[0]]);
    const ys = nodes.flatMap((node) => [node.pos[1] - top, node.pos[1] + node.size[1]]);
    const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
    window.app.canvas.ds.fitToBounds([x0, y0, Math.max(...xs) - x0, Math.max(...ys) - y0], { zoom: factor });
    window.app.canvas.setDirty(true, true);
  }, [ids, zoom]);
  await sleep(500);
}

/** The extension's behaviour in the real frontend (LiteGraph serialisation, widget callbacks). */
async function checkFusionNode(page, savedValues) {
  return page.evaluate(async (saved) => {
    const node = window.app.graph._nodes.find((item) => item.type === "WanFusionConditioning");
    const names = node.widgets.map((widget) => widget.name);
    const serialized = node.serialize().widgets_values;
    const { output } = await window.app.graphToPrompt();
    const length = node.widgets.find((widget) => widget.name === "length");
    const snapped = [];
    for (const typed of [80, 83, 84]) {
      length.setValue(typed, { e: undefined, node, canvas: window.app.canvas });
      snapped.push(length.value);
    }
    length.setValue(81, { e: undefined, node, canvas: window.app.canvas });
    const preset = node.widgets.find((widget) => widget.name === "resolution preset");
    const before = preset.value;
    preset.setValue("720p portrait (720×1280)", { e: undefined, node, canvas: window.app.canvas });
    const presetValues = node.serialize().widgets_values.slice(0, 2);
    preset.setValue(before, { e: undefined, node, canvas: window.app.canvas });
    return {
      presetValues,
      widgets: names,
      widgetsValuesUnchanged: JSON.stringify(serialized) === JSON.stringify(saved),
      promptInputs: Object.keys(output[String(node.id)].inputs),
      snapped,
    };
  }, savedValues);
}

async function setWidgets(page, values) {
  await page.evaluate((byType) => {
    for (const node of window.app.graph._nodes) {
      for (const [name, value] of Object.entries(byType[node.type] ?? {})) {
        const widget = node.widgets.find((item) => item.name === name);
        if (!widget) throw new Error(`${node.type} has no widget ${name}`);
        widget.setValue(value, { e: undefined, node, canvas: window.app.canvas });
      }
    }
  }, values);
}

/** Queue the loaded workflow from the UI and wait for the run to end; returns the stage lines. */
async function runWorkflow(page) {
  return page.evaluate(() => new Promise((done, fail) => {
    const { api } = window.comfyAPI.api;
    const stages = [];
    api.addEventListener("wan21.stage", ({ detail }) => stages.push(detail));
    const finish = () => done({
      stages,
      shown: window.app.graph._nodes.filter((node) => node.wan21Stage).map((node) => [node.type, node.wan21Stage]),
    });
    api.addEventListener("execution_success", () => setTimeout(finish, 300));
    api.addEventListener("execution_error", ({ detail }) => fail(new Error(JSON.stringify(detail).slice(0, 2000))));
    setTimeout(() => fail(new Error("run did not finish in 300 s")), 300_000);
    window.app.queuePrompt(0, 1).catch(fail);
  }));
}

async function screenshotNode(page, path, id, margin = 30) {
  const clip = await page.evaluate(([nodeId, pad]) => {
    const node = window.app.graph.getNodeById(nodeId);
    const { ds, canvas } = window.app.canvas;
    const box = canvas.getBoundingClientRect();
    const [x0, y0] = ds.convertOffsetToCanvas([node.pos[0], node.pos[1] - 60]);
    const [x1, y1] = ds.convertOffsetToCanvas([node.pos[0] + node.size[0], node.pos[1] + node.size[1]]);
    return { x: box.left + x0 - pad, y: box.top + y0 - pad, width: x1 - x0 + 2 * pad, height: y1 - y0 + 2 * pad };
  }, [id, margin]);
  await page.screenshot({ path, clip });
}

async function main() {
  if (!existsSync(WORKFLOW)) throw new Error(`missing ${WORKFLOW}`);
  const workflow = JSON.parse(readFileSync(WORKFLOW, "utf8"));
  const fusionNode = workflow.nodes.find((node) => node.type === "WanFusionConditioning");
  const [fusionId, fusionSaved] = [fusionNode.id, fusionNode.widgets_values];
  mkdirSync(OUT_DIR, { recursive: true });

  const base = prepareBase();
  const { server, url, logPath } = await startComfy(base);
  log(`ComfyUI at ${url}, base ${base}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const consoleLines = [];
    const pageErrors = [];
    page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => pageErrors.push(`${error.message}\n${error.stack ?? ""}`));

    await page.goto(url);
    await page.waitForFunction(() => window.app?.graph && window.comfyAPI?.api, null, { timeout: 120_000 });
    await sleep(2000);
    await page.evaluate((json) => window.app.loadGraphData(json, true, false, "wan21_i2v",
      { showMissingModelsDialog: false }), workflow);
    await fitView(page);
    await page.screenshot({ path: join(OUT_DIR, "wan21_i2v_workflow.png") });
    await fitView(page, [fusionId], 0.5);
    await screenshotNode(page, join(OUT_DIR, "wan21_i2v_fusion_node.png"), fusionId);
    log(`saved wan21_i2v_workflow.png and wan21_i2v_fusion_node.png in ${OUT_DIR}`);

    const fusion = await checkFusionNode(page, fusionSaved);
    log(`fusion node: ${JSON.stringify(fusion)}`);
    if (!fusion.widgetsValuesUnchanged) problems.push("the fusion node's saved widgets_values changed");
    if (fusion.promptInputs.some((name) => ["resolution preset", "duration"].includes(name))) {
      problems.push(`frontend widgets sent to the server: ${fusion.promptInputs}`);
    }
    if (String(fusion.snapped) !== "81,81,85") problems.push(`length 80, 83, 84 snapped to ${fusion.snapped}`);
    if (String(fusion.presetValues) !== "720,1280") problems.push(`720p portrait preset gave ${fusion.presetValues}`);

    if (RUN) {
      await setWidgets(page, TINY_RUN);
      const result = await runWorkflow(page);
      log(`stage events: ${JSON.stringify(result.stages)}`);
      log(`stage lines shown: ${JSON.stringify(result.shown)}`);
      if (result.shown.length !== result.stages.length || !result.stages.length) {
        problems.push(`${result.stages.length} stage events but ${result.shown.length} nodes show a line`);
      }
      await fitView(page);
      await page.screenshot({ path: join(OUT_DIR, "wan21_i2v_after_run.png") });
      log(`saved wan21_i2v_after_run.png in ${OUT_DIR}`);
    }

    const loaded = consoleLines.filter((line) => line.includes("[wan21] extension loaded"));
    log(`console: ${loaded.join(" | ") || "no [wan21] line"}`);
    if (!loaded.length) problems.push("the extension's load line is missing");
    const ours = [...pageErrors, ...consoleLines.filter((line) => line.startsWith("error"))]
      .filter((line) => line.includes(PACK_NAME) || line.includes("wan21"));
    if (ours.length) problems.push(`errors from the pack's web files:\n${ours.join("\n")}`);
    log(`page errors (any source): ${pageErrors.length ? pageErrors.join("\n") : "none"}`);
  } finally {
    await browser.close();
    stopComfy(server);
    if (problems.length) log(`server log kept at ${logPath}`);
    else rmSync(base, { recursive: true, force: true });
  }
  if (problems.length) {
    console.error(`[screenshot] FAILED:\n- ${problems.join("\n- ")}`);
    process.exit(1);
  }
  log("all checks passed");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
