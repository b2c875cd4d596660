"""Progress, previews, per-node stage events and cancelling, seen through the WebSocket."""
import io

import pytest

from graphs import tiny_pack_graph, write_start_image

STEPS = 3
LONG_RUN = dict(steps=1000, width=128, height=128, length=17)     # about 0.1-0.5 s per step on a CPU


@pytest.fixture(scope="module")
def preview_server(comfy_factory, comfy_model_writer):
    """A second server started with `--preview-method latent2rgb`."""
    return comfy_factory(model_writer=comfy_model_writer, extra_args=["--preview-method", "latent2rgb"])


@pytest.fixture(scope="module")
def preview_image(preview_server, tmp_path_factory):
    return preview_server.upload_image(write_start_image(tmp_path_factory.mktemp("images") / "start.png"))


def run_listening(server, prompt: dict):
    """Queue with a client id, wait for the end; (prompt_id, history entry, events of this prompt)."""
    with server.listen() as ws:
        prompt_id = server.queue(prompt, client_id=ws.client_id)
        entry = server.wait(prompt_id, timeout=600)
        ws.wait_for(lambda e: e.type == "executing" and e.data.get("node") is None
                    and e.data.get("prompt_id") == prompt_id, timeout=60)
        return prompt_id, entry, list(ws.events)


def pack_node_ids(prompt: dict, plugin) -> set:
    return {i for i, n in prompt.items() if n["class_type"] in plugin.NODE_CLASS_MAPPINGS}


def test_sampler_progress_previews_and_stage_events(preview_server, preview_image, plugin):
    from PIL import Image

    g, nodes = tiny_pack_graph(preview_image, steps=STEPS)
    prompt = g.prompt()
    prompt_id, entry, events = run_listening(preview_server, prompt)
    assert entry["status"]["status_str"] == "success"

    sampler = nodes["sampler"].id
    progress = [e.data for e in events if e.type == "progress" and e.data["node"] == sampler]
    assert [p["value"] for p in progress] == list(range(1, STEPS + 1))
    assert {p["max"] for p in progress} == {STEPS} and {p["prompt_id"] for p in progress} == {prompt_id}

    previews = [e.data for e in events if e.type == "b_preview"]
    assert len(previews) >= STEPS
    for preview in previews:
        image = Image.open(io.BytesIO(preview["image"]))
        assert preview["image_type"] == image.format == "JPEG" and min(image.size) > 0

    stages = {e.data["node"]: e.data for e in events if e.type == "wan21.stage"}
    assert set(stages) == pack_node_ids(prompt, plugin)
    for data in stages.values():
        assert data["seconds"] >= 0 and data["peak_ram_mb"] > 0


def test_no_sampler_previews_with_preview_method_none(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image, steps=STEPS)
    _, entry, events = run_listening(comfy, g.prompt())
    assert entry["status"]["status_str"] == "success"
    assert [e for e in events if e.type == "progress" and e.data["node"] == nodes["sampler"].id]
    assert not [e for e in events if e.type in ("b_preview", "b_preview_with_metadata")], \
        "the server runs with the default --preview-method none, yet previews were sent"


def test_interrupt_stops_sampling_within_about_one_step(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image, **LONG_RUN)
    sampler = nodes["sampler"].id

    def sampler_steps(ws) -> list:
        return [e.data["value"] for e in ws.of_type("progress") if e.data["node"] == sampler]

    with comfy.listen() as ws:
        prompt_id = comfy.queue(g.prompt(), client_id=ws.client_id)
        ws.wait_for(lambda e: e.type == "progress" and e.data["node"] == sampler and e.data["value"] >= 2,
                    timeout=300)
        seen = max(sampler_steps(ws))
        comfy.interrupt()
        stopped = ws.wait_for(lambda e: e.type == "execution_interrupted"
                              and e.data["prompt_id"] == prompt_id, timeout=120)
        assert stopped.data["node_id"] == sampler
        last = max(sampler_steps(ws))
    assert last <= seen + 2 < LONG_RUN["steps"], (seen, last)
    entry = comfy.wait(prompt_id, timeout=60)
    assert entry["status"]["status_str"] == "error"

    g, nodes = tiny_pack_graph(start_image, steps=STEPS)
    _, entry, _ = run_listening(comfy, g.prompt())
    assert entry["status"]["status_str"] == "success"
