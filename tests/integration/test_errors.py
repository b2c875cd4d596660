"""Bad prompts come back as validation errors (HTTP 400) or execution errors with the pack's own
message, never as a server crash; the server serves the next prompt afterwards."""
import pytest

import model_files as mf
from comfy_server import ComfyError
from graphs import read_latent, saved_files, tiny_pack_graph


def rejected(comfy, prompt: dict) -> dict:
    """POST /prompt that must be refused: the `node_errors` of the 400 answer."""
    status, payload = comfy.post_prompt_raw(prompt)
    assert status == 400, (status, payload)
    assert payload["error"]["type"] == "prompt_outputs_failed_validation", payload
    return payload["node_errors"]


def errors_of(node_errors: dict, node_id: str) -> list[dict]:
    assert node_id in node_errors, node_errors
    return node_errors[node_id]["errors"]


def test_valid_tiny_pipeline_runs(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image)
    outputs = comfy.run(g.prompt(), timeout=300)
    (path,) = saved_files(comfy, outputs, nodes["save"].id)
    assert tuple(read_latent(path).shape) == (1, 16, 3, 6, 8)


def test_wrong_link_type_into_vae_input(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image)
    prompt = g.prompt()
    prompt[nodes["fusion"].id]["inputs"]["vae"] = nodes["image"][0]          # IMAGE into "WAN_VAE,VAE"
    (error,) = errors_of(rejected(comfy, prompt), nodes["fusion"].id)
    assert error["type"] == "return_type_mismatch"
    assert "IMAGE" in error["details"] and "WAN_VAE" in error["details"]
    assert error["extra_info"]["input_name"] == "vae"


def test_length_out_of_range(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image, length=2001)
    (error,) = errors_of(rejected(comfy, g.prompt()), nodes["fusion"].id)
    assert error["type"] == "value_bigger_than_max"
    assert error["extra_info"]["input_name"] == "length"


def test_unknown_model_file(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image)
    prompt = g.prompt()
    prompt[nodes["dit"].id]["inputs"]["dit_name"] = "no_such_model.safetensors"
    (error,) = errors_of(rejected(comfy, prompt), nodes["dit"].id)
    assert error["type"] == "value_not_in_list"
    assert "no_such_model.safetensors" in error["details"]


def test_unknown_node_class(comfy, start_image):
    g, _ = tiny_pack_graph(start_image)
    g.add("WanNoSuchNode", x=1)
    status, payload = comfy.post_prompt_raw(g.prompt())
    assert status == 400 and payload["error"]["type"] == "invalid_prompt"


def run_failing(comfy, prompt: dict) -> ComfyError:
    with pytest.raises(ComfyError) as caught:
        comfy.run(prompt, timeout=300)
    assert caught.value.status is None, "expected an execution error, not a validation error"
    return caught.value


def test_frames_not_4n_plus_1_is_a_clear_execution_error(comfy, start_image):
    # The widget's step of 4 keeps the UI on 4n+1; an API prompt bypasses it (ComfyUI's backend
    # checks only min/max), so the fusion node itself must refuse the value.
    g, nodes = tiny_pack_graph(start_image, length=10)
    error = run_failing(comfy, g.prompt())
    assert (error.node_id, error.node_type) == (nodes["fusion"].id, "WanFusionConditioning")
    message = error.exception_message
    assert "4n+1" in message and "10" in message, message
    assert "Traceback" not in message


def test_t2v_dit_is_a_clear_execution_error(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image)
    prompt = g.prompt()
    prompt[nodes["dit"].id]["inputs"]["dit_name"] = mf.DIT_T2V
    error = run_failing(comfy, prompt)
    assert (error.node_id, error.node_type) == (nodes["dit"].id, "WanDiTLoader")
    message = error.exception_message
    assert "t2v" in message and "i2v" in message, message


def test_server_serves_after_errors(comfy, start_image):
    g, nodes = tiny_pack_graph(start_image, length=10)
    run_failing(comfy, g.prompt())
    g, nodes = tiny_pack_graph(start_image)
    outputs = comfy.run(g.prompt(), timeout=300)
    assert saved_files(comfy, outputs, nodes["save"].id)
    assert comfy.system_stats()["system"]["comfyui_version"]
