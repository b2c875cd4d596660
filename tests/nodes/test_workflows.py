"""The example workflows against the node definitions, without ComfyUI.

This pack's nodes are read from NODE_CLASS_MAPPINGS. ComfyUI's own nodes are described below as
read from the ComfyUI 0.3.64 source (commit a125cd84) and its frontend 1.27.10. Each UI workflow is
checked as the frontend would load it and the backend would validate it; its API twin must be the
same graph. The workflows must use the official Wan2.1 480p image-to-video settings.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass

import pytest

from wan21_core.embedded import BUILTIN_NAME, DEMO
from wan21_core.sampling.defaults import NEGATIVE_PROMPT_I2V, default_negative_prompt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOWS = os.path.join(ROOT, "workflows")
OFFICIAL_NAMES = ("wan21_i2v", "wan21_i2v_mixed", "wan21_i2v_upscale")   # the released models, official settings
NAMES = OFFICIAL_NAMES + ("wan21_tiny_demo",)                             # + the built-in Wan2.1-tiny demo
MODEL_FOLDERS = ("diffusion_models", "text_encoders", "clip_vision", "vae", "upscale_models")
FRONTEND_ASSETS = "comfyui_frontend_package/static/assets"

# Official I2V negative prompt, verbatim (Wan-Video/Wan2.1 wan/configs/wan_i2v_14B.py:
# "镜头晃动，" + the shared one).
OFFICIAL_NEGATIVE_I2V = (
    "镜头晃动，色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/"
OFFICIAL_FILES = {"wan2.1_i2v_480p_14B_fp16.safetensors": "diffusion_models",
                  "umt5_xxl_fp8_e4m3fn_scaled.safetensors": "text_encoders",
                  "clip_vision_h.safetensors": "clip_vision", "wan_2.1_vae.safetensors": "vae"}


class Files:
    """A combo over the files of a folder: any file name is accepted (it may not be downloaded yet),
    and so are the fixed entries `also` that some lists put before the files."""

    def __init__(self, folder: str, also: tuple = ()):
        self.folder = folder
        self.also = tuple(also)


# ------------------------------------------------------------------------------------- ComfyUI's nodes
# In V1 INPUT_TYPES form, as /object_info reports them. Paths are relative to the ComfyUI 0.3.64 tree.
CORE_NODES = {
    # nodes.py:1630-1641 (INPUT_TYPES, RETURN_TYPES); display name nodes.py:2062
    "LoadImage": {"display": "Load Image", "output": ("IMAGE", "MASK"),
                  "input": {"required": {"image": (Files("input"), {"image_upload": True})}}},
    # nodes.py:928-938; display nodes.py:2025
    "CLIPLoader": {"display": "Load CLIP", "output": ("CLIP",), "input": {
        "required": {"clip_name": (Files("text_encoders"),),
                     "type": (["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
                               "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
                               "qwen_image", "hunyuan_image"],)},
        "optional": {"device": (["default", "cpu"], {"advanced": True})}}},
    # nodes.py:54-63; display nodes.py:2034
    "CLIPTextEncode": {"display": "CLIP Text Encode (Prompt)", "output": ("CONDITIONING",), "input": {
        "required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True}), "clip": ("CLIP",)}}},
    # nodes.py:985-990; display nodes.py:2029
    "CLIPVisionLoader": {"display": "Load CLIP Vision", "output": ("CLIP_VISION",),
                         "input": {"required": {"clip_name": (Files("clip_vision"),)}}},
    # nodes.py:1002-1009; display nodes.py:2032
    "CLIPVisionEncode": {"display": "CLIP Vision Encode", "output": ("CLIP_VISION_OUTPUT",), "input": {
        "required": {"clip_vision": ("CLIP_VISION",), "image": ("IMAGE",), "crop": (["center", "none"],)}}},
    # nodes.py:767-769 (the list is vae_list(), nodes.py:696-734); display nodes.py:2023
    "VAELoader": {"display": "Load VAE", "output": ("VAE",), "input": {"required": {"vae_name": (Files("vae"),)}}},
    # nodes.py:278-287; display nodes.py:2047
    "VAEDecode": {"display": "VAE Decode", "output": ("IMAGE",),
                  "input": {"required": {"samples": ("LATENT",), "vae": ("VAE",)}}},
    # comfy_extras/nodes_upscale_model.py:18-31 (V3)
    "UpscaleModelLoader": {"display": "Load Upscale Model", "output": ("UPSCALE_MODEL",),
                           "input": {"required": {"model_name": (Files("upscale_models"),)}}},
    # comfy_extras/nodes_video.py:119-133 (V3)
    "CreateVideo": {"display": "Create Video", "output": ("VIDEO",), "input": {
        "required": {"images": ("IMAGE",), "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0})},
        "optional": {"audio": ("AUDIO",)}}},
    # comfy_extras/nodes_video.py:71-87 (V3, output node); options comfy_api/latest/_util/video_types.py:8-28
    "SaveVideo": {"display": "Save Video", "output": (), "output_node": True, "input": {
        "required": {"video": ("VIDEO",), "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                     "format": (["auto", "mp4"], {"default": "auto"}),
                     "codec": (["auto", "h264"], {"default": "auto"})}}},
}
# Frontend-only ("virtual") nodes: one STRING widget, never sent to the backend
# (frontend index-Dvhu5Mc8.js:62255-62313, isVirtualNode).
VIRTUAL_NODES = {"MarkdownNote": "Markdown Note", "Note": "Note"}

# Frontend rules (index-BKeTeXLp.js): an INT with control_after_generate, or named seed/noise_seed, gets a
# second "control" widget (:271436-271447); LoadImage's upload button serialises the value "image" after the
# file name (:271371-271379, widgets_values at :119222-119226); INT values snap to min % step + k*step (:271397-271406).
SEED_NAMES = ("seed", "noise_seed")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
ALLOWED_DOWNLOADS = ("https://civitai.com/", "https://huggingface.co/")     # frontend :267416-267422
ALLOWED_SUFFIXES = (".safetensors", ".sft")


# ------------------------------------------------------------------------------------- node specs

@dataclass
class InputSpec:
    name: str
    kind: object               # type string, option list or Files
    options: dict
    optional: bool

    @property
    def is_widget(self) -> bool:
        combo = isinstance(self.kind, (list, tuple, Files))
        return combo or (self.kind in WIDGET_TYPES and not self.options.get("forceInput"))

    def ui_values(self) -> list[str]:
        """Names of the widgets_values entries this input takes in the UI format."""
        extra = []
        if self.kind == "INT" and (self.options.get("control_after_generate") or self.name in SEED_NAMES):
            extra.append("control")
        if self.options.get("image_upload"):
            extra.append("upload")
        return [self.name] + extra


@dataclass
class NodeSpec:
    display: str
    inputs: list[InputSpec]
    outputs: list[tuple[str, str]]
    output_node: bool = False
    virtual: bool = False

    @property
    def sockets(self) -> list[InputSpec]:
        return [i for i in self.inputs if not i.is_widget]

    @property
    def widgets(self) -> list[InputSpec]:
        return [i for i in self.inputs if i.is_widget]


def _inputs(input_types: dict, probe_folders: dict) -> list[InputSpec]:
    specs = []
    for section in ("required", "optional"):
        for name, (kind, *rest) in input_types.get(section, {}).items():
            folder = probe_folders.get(id(kind)) if isinstance(kind, list) else None
            if folder:
                kind = Files(folder, [o for o in kind if not o.startswith("__probe_")])
            specs.append(InputSpec(name, kind, rest[0] if rest else {}, section == "optional"))
    return specs


@pytest.fixture(scope="module")
def specs(plugin, tmp_path_factory) -> dict[str, NodeSpec]:
    """Every node type the workflows may use. Our loaders' file lists are recognised by probe files."""
    adapter = importlib.import_module(f"{plugin.__name__}.nodes.comfy_adapter")
    probe_root = tmp_path_factory.mktemp("probe_models")
    probes = {}
    for folder in MODEL_FOLDERS:
        os.makedirs(probe_root / folder)
        probes[f"__probe_{folder}__.safetensors"] = folder
        (probe_root / folder / f"__probe_{folder}__.safetensors").write_bytes(b"")
    adapter.set_models_dir(str(probe_root))
    try:
        out = {}
        for name, cls in plugin.NODE_CLASS_MAPPINGS.items():
            input_types = cls.INPUT_TYPES()
            probe_folders = {}
            for section in input_types.values():
                for kind, *_ in (v for v in section.values() if isinstance(v, tuple)):
                    found = [probes[o] for o in kind if o in probes] if isinstance(kind, list) else []
                    if found:
                        probe_folders[id(kind)] = found[0]
            names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
            out[name] = NodeSpec(plugin.NODE_DISPLAY_NAME_MAPPINGS[name], _inputs(input_types, probe_folders),
                                 list(zip(names, cls.RETURN_TYPES)), bool(getattr(cls, "OUTPUT_NODE", False)))
    finally:
        adapter.set_models_dir(os.environ.get("WAN21_MODELS_DIR"))
    for name, core in CORE_NODES.items():
        out[name] = NodeSpec(core["display"], _inputs(core["input"], {}), [(t, t) for t in core["output"]],
                             core.get("output_node", False))
    for name, display in VIRTUAL_NODES.items():
        out[name] = NodeSpec(display, [InputSpec("text", "STRING", {}, False)], [], virtual=True)
    return out


def load(relative: str) -> dict:
    with open(os.path.join(WORKFLOWS, relative), encoding="utf-8") as f:
        return json.load(f)


def ui_widget_values(node: dict, spec: NodeSpec) -> dict:
    """{input name or 'name/control' or 'name/upload': value} of a UI node's widgets_values."""
    names = [n if i == 0 else f"{w.name}/{n}" for w in spec.widgets for i, n in enumerate(w.ui_values())]
    values = node.get("widgets_values", [])
    assert len(values) == len(names), (
        f"node {node['id']} {node['type']}: {len(values)} widgets_values, expected {len(names)} ({names})")
    return dict(zip(names, values))


# ------------------------------------------------------------------------------------- structure

@pytest.mark.parametrize("name", NAMES)
def test_every_node_type_exists_and_its_slots_match(name, specs):
    ui = load(f"{name}.json")
    assert {"id", "revision", "last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra",
            "version"} <= set(ui)
    ids = [n["id"] for n in ui["nodes"]]
    assert len(set(ids)) == len(ids) and ui["last_node_id"] == max(ids)
    for node in ui["nodes"]:
        assert node["type"] in specs, f"{name}: unknown node type {node['type']}"
        spec = specs[node["type"]]
        assert node["mode"] == 0 and len(node["pos"]) == 2 and len(node["size"]) == 2
        if not spec.virtual:
            assert node["properties"]["Node name for S&R"] == node["type"]
        sockets = [(s.name, s.kind) for s in spec.sockets]
        assert [(i["name"], i["type"]) for i in node["inputs"]] == sockets, node["type"]
        assert [(o["name"], o["type"]) for o in node["outputs"]] == spec.outputs, node["type"]
        assert [o["slot_index"] for o in node["outputs"]] == list(range(len(spec.outputs)))


@pytest.mark.parametrize("name", NAMES)
def test_links_are_consistent_and_type_checked(name, specs):
    ui = load(f"{name}.json")
    nodes = {n["id"]: n for n in ui["nodes"]}
    link_ids = [link[0] for link in ui["links"]]
    assert len(set(link_ids)) == len(link_ids) and ui["last_link_id"] == max(link_ids)
    for link_id, source, out_slot, target, in_slot, link_type in ui["links"]:
        src, dst = nodes[source], nodes[target]
        out_type = specs[src["type"]].outputs[out_slot][1]
        in_socket = specs[dst["type"]].sockets[in_slot]
        assert link_type == out_type, f"link {link_id}: TYPE {link_type}, the output gives {out_type}"
        # comfy_execution/validation.py:4-39: comma-separated types, non-empty intersection
        accepted = {t.strip() for t in in_socket.kind.split(",")}
        assert {t.strip() for t in out_type.split(",")} & accepted, (
            f"{name} link {link_id}: {src['type']} gives {out_type}, "
            f"{dst['type']}.{in_socket.name} takes {in_socket.kind}")
        assert dst["inputs"][in_slot]["link"] == link_id
        assert link_id in src["outputs"][out_slot]["links"]
    for node in ui["nodes"]:
        for slot, entry in enumerate(node["inputs"]):
            linked = [link for link in ui["links"] if link[3] == node["id"] and link[4] == slot]
            assert [link[0] for link in linked] == ([entry["link"]] if entry["link"] is not None else [])
            socket = specs[node["type"]].sockets[slot]
            assert socket.optional or entry["link"] is not None, f"{node['type']}.{socket.name}: required, unlinked"
            assert entry.get("shape") == (7 if socket.optional else None)
        for slot, entry in enumerate(node["outputs"]):
            linked = sorted(link[0] for link in ui["links"] if link[1] == node["id"] and link[2] == slot)
            assert sorted(entry["links"] or []) == linked


@pytest.mark.parametrize("name", NAMES)
def test_order_is_topological_and_every_node_feeds_an_output(name, specs):
    ui = load(f"{name}.json")
    order = {n["id"]: n["order"] for n in ui["nodes"]}
    assert sorted(order.values()) == list(range(len(order)))
    for link in ui["links"]:
        assert order[link[1]] < order[link[3]], f"link {link[0]} runs against the execution order"
    outputs = {n["id"] for n in ui["nodes"] if specs[n["type"]].output_node}
    assert outputs, f"{name} has no output node"
    feeding = set(outputs)
    while True:
        more = {link[1] for link in ui["links"] if link[3] in feeding} - feeding
        if not more:
            break
        feeding |= more
    idle = [n["type"] for n in ui["nodes"] if not specs[n["type"]].virtual and n["id"] not in feeding]
    assert not idle, f"{name}: nodes that feed no output never run: {idle}"


# ------------------------------------------------------------------------------------- widget values

def _range(options: dict) -> str:
    return f"[{options.get('min')}, {options.get('max')}]"


def _check_value(node_type: str, item: InputSpec, value) -> None:
    where = f"{node_type}.{item.name} = {value!r}"
    opts = item.options
    if isinstance(item.kind, Files):
        if value in item.kind.also:
            return
        assert isinstance(value, str) and "." in value and not os.path.isabs(value) and ".." not in value, where
    elif isinstance(item.kind, (list, tuple)):
        assert value in item.kind, f"{where}: not one of {item.kind}"
    elif item.kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), where
        assert opts.get("min", value) <= value <= opts.get("max", value), f"{where}: outside {_range(opts)}"
        step = opts.get("step", 1)
        assert (value - opts.get("min", 0) % step) % step == 0, f"{where}: not on the step-{step} grid"
    elif item.kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert opts.get("min", value) <= value <= opts.get("max", value), f"{where}: outside {_range(opts)}"
    elif item.kind == "STRING":
        assert isinstance(value, str), where
    elif item.kind == "BOOLEAN":
        assert isinstance(value, bool), where


@pytest.mark.parametrize("name", NAMES)
def test_widget_values_match_the_widgets(name, specs):
    for node in load(f"{name}.json")["nodes"]:
        spec = specs[node["type"]]
        values = ui_widget_values(node, spec)
        for item in spec.widgets:
            _check_value(node["type"], item, values[item.name])
            if f"{item.name}/control" in values:
                assert values[f"{item.name}/control"] in CONTROL_VALUES
            if f"{item.name}/upload" in values:
                assert values[f"{item.name}/upload"] == "image"


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_is_the_same_graph(name, specs):
    ui, api = load(f"{name}.json"), load(f"api/{name}.api.json")
    expected = {}
    for node in ui["nodes"]:
        spec = specs[node["type"]]
        if spec.virtual:
            continue
        values = ui_widget_values(node, spec)
        inputs = {w.name: values[w.name] for w in spec.widgets}
        for slot, socket in enumerate(spec.sockets):
            link = next((link for link in ui["links"] if link[3] == node["id"] and link[4] == slot), None)
            if link is not None:
                inputs[socket.name] = [str(link[1]), link[2]]
        expected[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                     "_meta": {"title": node.get("title", spec.display)}}
    assert api == expected


# ------------------------------------------------------------------------------------- official settings

def _nodes_of(ui: dict, node_type: str) -> list[dict]:
    return [n for n in ui["nodes"] if n["type"] == node_type]


def _widgets(ui: dict, node_type: str, specs) -> dict:
    (node,) = _nodes_of(ui, node_type)
    return ui_widget_values(node, specs[node_type])


def _source_of(ui: dict, node: dict, input_name: str, specs) -> dict:
    slot = [s.name for s in specs[node["type"]].sockets].index(input_name)
    (link,) = [link for link in ui["links"] if link[3] == node["id"] and link[4] == slot]
    return next(n for n in ui["nodes"] if n["id"] == link[1])


def test_core_default_negative_prompt_is_the_official_one():
    assert NEGATIVE_PROMPT_I2V == OFFICIAL_NEGATIVE_I2V


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_official_480p_defaults(name, specs):
    ui = load(f"{name}.json")
    (fusion,) = _nodes_of(ui, "WanFusionConditioning")
    fused = ui_widget_values(fusion, specs["WanFusionConditioning"])
    assert (fused["width"], fused["height"], fused["length"]) == (832, 480, 81)
    sampler = _widgets(ui, "WanSampler", specs)
    assert (sampler["steps"], sampler["guidance"], sampler["shift"], sampler["solver"], sampler["denoise"]) == \
        (40, 5.0, 3.0, "unipc", 1.0)
    assert _widgets(ui, "CreateVideo", specs)["fps"] == 16
    negative = _source_of(ui, fusion, "negative", specs)
    positive = _source_of(ui, fusion, "positive", specs)
    negative_text = ui_widget_values(negative, specs[negative["type"]])["text"]
    positive_text = ui_widget_values(positive, specs[positive["type"]])["text"]
    assert negative_text == OFFICIAL_NEGATIVE_I2V
    assert positive_text.strip() and positive_text != negative_text


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_model_files_are_the_published_ones_with_download_entries(name, specs):
    ui = load(f"{name}.json")
    used = {}
    for node in ui["nodes"]:
        spec = specs[node["type"]]
        if spec.virtual:
            continue
        values = ui_widget_values(node, spec)
        files = {values[w.name]: w.kind.folder for w in spec.widgets
                 if isinstance(w.kind, Files) and w.kind.folder != "input" and values[w.name] not in w.kind.also}
        entries = {m["name"]: m for m in node["properties"].get("models", [])}
        assert set(entries) == set(files), f"{node['type']}: properties.models {sorted(entries)}, files {sorted(files)}"
        for file_name, folder in files.items():
            entry = entries[file_name]
            assert entry["directory"] == folder
            assert entry["url"].startswith(ALLOWED_DOWNLOADS) and file_name.endswith(ALLOWED_SUFFIXES)
            assert entry["url"].split("?")[0].endswith("/" + file_name)
            if file_name in OFFICIAL_FILES:
                assert entry["url"].split("?")[0] == f"{REPACKAGED}{folder}/{file_name}"
        used.update(files)
    assert {f: d for f, d in used.items() if f in OFFICIAL_FILES} == OFFICIAL_FILES
    (note,) = [n for n in ui["nodes"] if specs[n["type"]].virtual]
    for file_name, folder in used.items():
        assert file_name in note["widgets_values"][0] and f"models/{folder}/" in note["widgets_values"][0]


def test_mixed_workflow_uses_native_loaders_and_encoders(specs):
    ui = load("wan21_i2v_mixed.json")
    types = {n["type"] for n in ui["nodes"]}
    assert {"CLIPLoader", "CLIPTextEncode", "CLIPVisionLoader", "CLIPVisionEncode", "VAELoader", "VAEDecode",
            "WanDiTLoader", "WanFusionConditioning", "WanSampler", "WanCascadedUpscaler", "SaveVideo"} <= types
    assert not types & {"UNETLoader", "WanT5Loader", "WanT5TextEncode", "WanImageEncode", "WanVAELoader"}
    assert _widgets(ui, "CLIPLoader", specs)["type"] == "wan"
    assert _widgets(ui, "CLIPVisionEncode", specs)["crop"] == "none"        # the official squash to 224x224


def test_upscale_workflow_ends_with_the_cascade(specs):
    ui = load("wan21_i2v_upscale.json")
    assert not {n["type"] for n in ui["nodes"]} & set(CORE_NODES) - {"LoadImage", "CreateVideo", "SaveVideo"}
    (create,) = _nodes_of(ui, "CreateVideo")
    upscaler = _source_of(ui, create, "images", specs)
    assert upscaler["type"] == "WanCascadedUpscaler"
    assert ui_widget_values(upscaler, specs["WanCascadedUpscaler"])["mode"] == "x2"
    assert _source_of(ui, upscaler, "upscaler", specs)["type"] == "WanUpscalerLoader"
    assert _source_of(ui, upscaler, "images", specs)["type"] == "WanVAEDecode"


# ------------------------------------------------------------------------------------- the tiny demo

# Their dtypes are checked by tests/nodes/test_builtin_chain.py (the chain gives the command line's frames).
TINY_LOADERS = {"WanDiTLoader": "dit_name", "WanT5Loader": "t5_name", "WanImageEncoderLoader": "clip_name",
                "WanVAELoader": "vae_name"}


def test_tiny_demo_runs_the_builtin_model_with_the_demo_settings(specs):
    ui = load("wan21_tiny_demo.json")
    for node_type, name_input in TINY_LOADERS.items():
        (node,) = _nodes_of(ui, node_type)
        values = ui_widget_values(node, specs[node_type])
        assert (values[name_input], values["device"]) == (BUILTIN_NAME, "cpu"), node_type
        assert "models" not in node["properties"], f"{node_type}: the built-in model needs no download entry"
    assert _widgets(ui, "LoadImage", specs)["image"] == "wan21_tiny_demo_start.png"
    (fusion,) = _nodes_of(ui, "WanFusionConditioning")
    fused = ui_widget_values(fusion, specs["WanFusionConditioning"])
    assert (fused["width"], fused["height"], fused["length"], fused["size_mode"], fused["crop"]) == \
        (DEMO.size, DEMO.size, DEMO.frames, "exact", "none")
    sampler = _widgets(ui, "WanSampler", specs)
    assert (sampler["seed"], sampler["seed/control"], sampler["steps"], sampler["guidance"], sampler["shift"],
            sampler["solver"], sampler["schedule"], sampler["denoise"]) == \
        (0, "fixed", DEMO.steps, DEMO.guidance, DEMO.shift, DEMO.solver, "official", 1.0)
    assert _widgets(ui, "WanImageEncode", specs)["crop"] == "none"
    assert _widgets(ui, "CreateVideo", specs)["fps"] == 16
    texts = [ui_widget_values(n, specs[n["type"]])["text"] for n in (_source_of(ui, fusion, side, specs)
                                                                       for side in ("positive", "negative"))]
    assert texts == [DEMO.prompt, default_negative_prompt("i2v")]          # the CLI's default negative prompt


def test_tiny_demo_note_says_what_the_model_is_and_where_the_image_comes_from(specs):
    (text,) = [n["widgets_values"][0] for n in load("wan21_tiny_demo.json")["nodes"] if specs[n["type"]].virtual]
    for phrase in ("Nothing to download", BUILTIN_NAME, "circles, squares and triangles", "the camera pans left",
                   "nothing moves", "wan21_core/embedded/weights/demo_start.png", "ComfyUI/input/",
                   "wan21_tiny_demo_start.png", f"{DEMO.size}×{DEMO.size}"):
        assert phrase in text, phrase
    assert os.path.isfile(os.path.join(ROOT, "wan21_core", "embedded", "weights", "demo_start.png"))


# ------------------------------------------------------------------------------------- files

def test_committed_files_are_the_generator_output():
    spec = importlib.util.spec_from_file_location("build_workflows", os.path.join(WORKFLOWS, "build_workflows.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                  # its dataclasses look their module up
    spec.loader.exec_module(module)
    expected = module.render_all()
    paths = glob.glob(os.path.join(WORKFLOWS, "*.json")) + glob.glob(os.path.join(WORKFLOWS, "api", "*.json"))
    committed = {os.path.relpath(p, WORKFLOWS).replace(os.sep, "/") for p in paths}
    assert committed == set(expected), "run: python workflows/build_workflows.py"
    for relative, text in expected.items():
        with open(os.path.join(WORKFLOWS, relative), encoding="utf-8") as f:
            assert f.read() == text, f"workflows/{relative} is stale; run: python workflows/build_workflows.py"


def test_template_folder_holds_only_ui_workflows():
    """ComfyUI lists every workflows/*.json of a pack as a template (app/custom_node_manager.py:96-121)."""
    for path in glob.glob(os.path.join(WORKFLOWS, "*.json")):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        assert {"nodes", "links", "version"} <= set(data), f"{path} is not a UI-format workflow"
