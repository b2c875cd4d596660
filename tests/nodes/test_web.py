"""The web extension: its JavaScript tests (`node --test`) and its contract with the Python nodes.

Skipped where `node` (>= 20.6, for `module.register`) is not on PATH; CI machines have it.
"""
import importlib
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "web" / "tests").glob("*.test.mjs"))
NODE = shutil.which("node")


def _node_version():
    if NODE is None:
        return None
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return tuple(int(part) for part in out.lstrip("v").split(".")[:2])


VERSION = _node_version()
pytestmark = pytest.mark.skipif(VERSION is None or VERSION < (20, 6),
                                reason=f"needs node >= 20.6 on PATH (found {VERSION or 'none'})")


def run_js(source: str, stdin: str = "") -> object:
    """Run an ES module snippet from the repository root; it prints one JSON value."""
    done = subprocess.run([NODE, "--input-type=module", "-e", source], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_web_unit_tests_pass():
    assert WEB_TESTS, "no web/tests/*.test.mjs found"
    done = subprocess.run([NODE, "--test", "--test-reporter=tap", *WEB_TESTS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_extension_matches_the_fusion_node(plugin):
    js = run_js("""
        const frames = await import('./web/lib/frames.js');
        const presets = await import('./web/lib/presets.js');
        const ui = await import('./web/lib/node_ui.js');
        console.log(JSON.stringify({fps: frames.FPS, stride: frames.TEMPORAL_STRIDE, fusion: ui.FUSION_NODE,
                                    presets: presets.RESOLUTION_PRESETS, snapped: frames.snapLength(80, 1, 1025)}));
    """)
    from wan21_core.models.configs import VAE_STRIDE
    from wan21_core.sampling.defaults import FPS

    assert js["fps"] == FPS and js["stride"] == VAE_STRIDE[0]
    required = plugin.NODE_CLASS_MAPPINGS[js["fusion"]].INPUT_TYPES()["required"]
    assert "resolution preset" not in required and "duration" not in required
    width, height, length = (required[name] for name in ("width", "height", "length"))
    assert width[0] == height[0] == length[0] == "INT"
    assert (length[1]["default"] - 1) % js["stride"] == 0 and (length[1]["max"] - 1) % js["stride"] == 0
    assert js["snapped"] == 81
    for preset in js["presets"]:
        for side, spec in ((preset["width"], width[1]), (preset["height"], height[1])):
            assert spec["min"] <= side <= spec["max"] and side % spec["step"] == 0, (preset, spec)


def test_extension_reads_the_stage_message_the_nodes_send(plugin, monkeypatch):
    adapter = importlib.import_module(f"{plugin.__name__}.nodes.comfy_adapter")
    from wan21_core.profiling import StageStats

    sent = []
    instance = types.SimpleNamespace(client_id="c1", send_sync=lambda *args: sent.append(args))
    server_module = types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=instance))
    monkeypatch.setitem(sys.modules, "server", server_module)
    monkeypatch.setattr(adapter, "IN_COMFY", True)
    adapter.send_stage_stats("5:12", StageStats("WanSampler", 83.4567, 3072.04, None))
    (event, payload, sid), = sent

    shown = run_js("""
        import { readFileSync } from 'node:fs';
        const stage = await import('./web/lib/stage.js');
        const [event, detail] = JSON.parse(readFileSync(0, 'utf8'));
        const inner = {id: 12};
        const subgraph = {getNodeById: (id) => id === '12' ? inner : null};
        const graph = {getNodeById: (id) => id === '5' ? {subgraph} : null};
        const board = new stage.StageBoard();
        console.log(JSON.stringify({same: event === stage.STAGE_EVENT, found: board.show(graph, detail) === inner,
                                    text: board.textOf(inner)}));
    """, stdin=json.dumps([event, payload]))
    assert sid == "c1"
    assert shown == {"same": True, "found": True, "text": "1 min 23 s · RAM 3.0 GB"}
