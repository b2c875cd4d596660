"""Writes the example workflows: ComfyUI UI format (drag onto the canvas) and API-format twins.

    python workflows/build_workflows.py

Each graph is described once below, by node type, widget values by name and links by input and
output name. This pack's widgets are laid out in the order the node classes declare them (missing
values take the declared default), so the files follow any change of a node's inputs after a rerun;
tests/test_workflows.py checks that the committed files equal this script's output.

UI files go to workflows/<name>.json, which ComfyUI lists in its template browser. The API twins
(what `POST /prompt` takes) go to workflows/api/<name>.api.json, out of the browser's list, which
would show every *.json of this folder as a template.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for folder in (ROOT, HERE):              # the pack and the notes module beside this script
    if folder not in sys.path:
        sys.path.insert(0, folder)

from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from wan21_core.embedded import BUILTIN_NAME, DEMO  # noqa: E402
from wan21_core.sampling import (AREA_480P, FPS, I2V_FRAMES, I2V_GUIDANCE, I2V_SHIFT,  # noqa: E402
                                 I2V_STEPS, NEGATIVE_PROMPT_I2V)
from workflow_notes import (CLIP_FILE, DIT_FILE, ESRGAN_FILE, ESRGAN_URL, MIXED_NOTE, MODEL_FILES,  # noqa: E402
                            MODELS_NOTE, REPACKAGED, T5_FILE, TINY_DEMO_IMAGE, TINY_NOTE, UPSCALE_NOTE, VAE_FILE)

API_DIR = os.path.join(HERE, "api")
FRONTEND_VERSION = "1.27.10"            # the frontend ComfyUI 0.3.64 pins
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
SEED_NAMES = ("seed", "noise_seed")     # INT inputs that get a control widget whatever their options
OPTIONAL_SHAPE = 7                      # the frontend's socket shape for optional inputs (hollow dot)
POSITIVE_PROMPT = ("A white cat sits on a sunny windowsill, slowly turns its head towards the camera and blinks; "
                   "the curtains sway in a gentle breeze, soft natural light, realistic, smooth motion.")
GREEN = {"color": "#232", "bgcolor": "#353"}
RED = {"color": "#322", "bgcolor": "#533"}
NOTE = {"color": "#432", "bgcolor": "#653"}


# ------------------------------------------------------------------------------------- node types

@dataclass(frozen=True)
class Input:
    """One input of a node type: a socket (link) or a widget (a value stored in the workflow)."""

    name: str
    type: str
    widget: bool
    optional: bool = False
    default: object = None
    control: bool = False       # an INT followed by a control_after_generate value in widgets_values
    in_api: bool = True         # False: a frontend-only widget (LoadImage's upload button)


@dataclass(frozen=True)
class NodeType:
    name: str
    display: str
    inputs: tuple[Input, ...]
    outputs: tuple[tuple[str, str], ...]        # (name, type)
    in_api: bool = True                         # False: a frontend-only node (notes)

    @property
    def sockets(self) -> list[Input]:
        return [i for i in self.inputs if not i.widget]

    @property
    def widgets(self) -> list[Input]:
        return [i for i in self.inputs if i.widget]


def pack_node_type(name: str) -> NodeType:
    """A node type of this pack, read from its class (widget order = declaration order)."""
    cls = NODE_CLASS_MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for input_name, (kind, *rest) in spec.get(section, {}).items():
            options = rest[0] if rest else {}
            is_combo = isinstance(kind, (list, tuple))
            widget = is_combo or (kind in WIDGET_TYPES and not options.get("forceInput"))
            default = options.get("default", kind[0] if is_combo and kind else None)
            control = kind == "INT" and bool(options.get("control_after_generate") or input_name in SEED_NAMES)
            inputs.append(Input(input_name, "COMBO" if is_combo else kind, widget, section == "optional",
                                default, control))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return NodeType(name, NODE_DISPLAY_NAME_MAPPINGS[name], tuple(inputs), tuple(zip(names, cls.RETURN_TYPES)))


def _socket(name: str, type_: str, optional: bool = False) -> Input:
    return Input(name, type_, widget=False, optional=optional)


def _widget(name: str, type_: str, default=None, optional: bool = False, in_api: bool = True) -> Input:
    return Input(name, type_, widget=True, optional=optional, default=default, in_api=in_api)


# ComfyUI's own nodes used here, in the frontend's widget order (tests/test_workflows.py holds the
# full description with option lists and ranges, read from the ComfyUI 0.3.64 source).
CORE_TYPES = {t.name: t for t in (
    NodeType("LoadImage", "Load Image", (_widget("image", "COMBO"),
                                         _widget("upload", "IMAGEUPLOAD", "image", in_api=False)),
             (("IMAGE", "IMAGE"), ("MASK", "MASK"))),
    NodeType("CLIPLoader", "Load CLIP", (_widget("clip_name", "COMBO"), _widget("type", "COMBO", "stable_diffusion"),
                                         _widget("device", "COMBO", "default", optional=True)),
             (("CLIP", "CLIP"),)),
    NodeType("CLIPTextEncode", "CLIP Text Encode (Prompt)", (_widget("text", "STRING", ""), _socket("clip", "CLIP")),
             (("CONDITIONING", "CONDITIONING"),)),
    NodeType("CLIPVisionLoader", "Load CLIP Vision", (_widget("clip_name", "COMBO"),),
             (("CLIP_VISION", "CLIP_VISION"),)),
    NodeType("CLIPVisionEncode", "CLIP Vision Encode",
             (_socket("clip_vision", "CLIP_VISION"), _socket("image", "IMAGE"), _widget("crop", "COMBO", "center")),
             (("CLIP_VISION_OUTPUT", "CLIP_VISION_OUTPUT"),)),
    NodeType("VAELoader", "Load VAE", (_widget("vae_name", "COMBO"),), (("VAE", "VAE"),)),
    NodeType("VAEDecode", "VAE Decode", (_socket("samples", "LATENT"), _socket("vae", "VAE")), (("IMAGE", "IMAGE"),)),
    NodeType("UpscaleModelLoader", "Load Upscale Model", (_widget("model_name", "COMBO"),),
             (("UPSCALE_MODEL", "UPSCALE_MODEL"),)),
    NodeType("CreateVideo", "Create Video",
             (_socket("images", "IMAGE"), _widget("fps", "FLOAT", 30.0), _socket("audio", "AUDIO", optional=True)),
             (("VIDEO", "VIDEO"),)),
    NodeType("SaveVideo", "Save Video",
             (_socket("video", "VIDEO"), _widget("filename_prefix", "STRING", "video/ComfyUI"),
              _widget("format", "COMBO", "auto"), _widget("codec", "COMBO", "auto")), ()),
    NodeType("MarkdownNote", "Markdown Note", (_widget("text", "STRING", ""),), (), in_api=False),
)}


def node_type(name: str) -> NodeType:
    return CORE_TYPES[name] if name in CORE_TYPES else pack_node_type(name)


# ------------------------------------------------------------------------------------- graphs

@dataclass
class Node:
    id: int
    type: NodeType
    pos: tuple[float, float]
    size: tuple[float, float]
    values: dict
    title: str | None = None
    extra: dict = field(default_factory=dict)          # color / bgcolor
    models: list = field(default_factory=list)         # properties.models entries
    control: str = "randomize"                         # control_after_generate of its seed widget


class Graph:
    """A workflow under construction: nodes, links between named outputs and inputs, groups."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[Node] = []
        self.links: list[list] = []                    # [id, from, from_slot, to, to_slot, TYPE]
        self.groups: list[dict] = []

    def add(self, type_name: str, pos: tuple[float, float], *, title: str | None = None,
            size: tuple[float, float] | None = None, models: list | None = None, style: dict | None = None,
            control: str = "randomize", **values) -> Node:
        """A node with widget `values` by name; widgets not named take their declared default.
        control: the frontend's control_after_generate mode of its seed widget ("fixed" keeps the seed)."""
        kind = node_type(type_name)
        known = {w.name for w in kind.widgets}
        if set(values) - known:
            raise KeyError(f"{type_name}: no widget(s) {sorted(set(values) - known)}")
        filled = {w.name: values.get(w.name, w.default) for w in kind.widgets}
        missing = [name for name, value in filled.items() if value is None]
        if missing:
            raise ValueError(f"{type_name}: no value and no default for widget(s) {missing}")
        node = Node(len(self.nodes) + 1, kind, pos, size or _default_size(kind), filled, title,
                    dict(style or {}), list(models or []), control)
        self.nodes.append(node)
        return node

    def connect(self, source: Node, output: str, target: Node, input_name: str) -> None:
        out_slot = [name for name, _ in source.type.outputs].index(output)
        in_slot = [s.name for s in target.type.sockets].index(input_name)
        if any(link[3] == target.id and link[4] == in_slot for link in self.links):
            raise ValueError(f"{target.type.name}.{input_name} is already linked")
        self.links.append([len(self.links) + 1, source.id, out_slot, target.id, in_slot,
                           source.type.outputs[out_slot][1]])

    def group(self, title: str, nodes: list[Node], color: str = "#3f789e", pad: float = 20) -> None:
        left = min(n.pos[0] for n in nodes) - pad
        top = min(n.pos[1] for n in nodes) - pad - 46          # room for the group title above the nodes' titles
        right = max(n.pos[0] + n.size[0] for n in nodes) + pad
        bottom = max(n.pos[1] + n.size[1] for n in nodes) + pad
        self.groups.append({"id": len(self.groups) + 1, "title": title,
                            "bounding": [left, top, right - left, bottom - top],
                            "color": color, "font_size": 24, "flags": {}})

    # ---------------------------------------------------------------- serialisation

    def ui(self) -> dict:
        order = {node_id: i for i, node_id in enumerate(self._execution_order())}
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "comfyui-wan21-i2v/workflows/" + self.name)),
                "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": [self._ui_node(n, order[n.id]) for n in self.nodes], "links": self.links,
                "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.6, "offset": [460, 120]}, "frontendVersion": FRONTEND_VERSION},
                "version": 0.4}

    def api(self) -> dict:
        prompt = {}
        for node in self.nodes:
            if not node.type.in_api:
                continue
            inputs = {}
            for item in node.type.inputs:
                if item.widget and item.in_api:
                    inputs[item.name] = node.values[item.name]
                elif not item.widget:
                    link = self._link_into(node, item.name)
                    if link is not None:
                        inputs[item.name] = [str(link[1]), link[2]]
            prompt[str(node.id)] = {"inputs": inputs, "class_type": node.type.name,
                                    "_meta": {"title": node.title or node.type.display}}
        return prompt

    def _ui_node(self, node: Node, order: int) -> dict:
        inputs = []
        for socket in node.type.sockets:
            link = self._link_into(node, socket.name)
            entry = {"name": socket.name, "type": socket.type, "link": link[0] if link else None}
            if socket.optional:
                entry["shape"] = OPTIONAL_SHAPE
            inputs.append(entry)
        outputs = []
        for slot, (name, type_) in enumerate(node.type.outputs):
            links = [link[0] for link in self.links if link[1] == node.id and link[2] == slot]
            outputs.append({"name": name, "type": type_, "links": links or None, "slot_index": slot})
        properties = {} if not node.type.in_api else {"Node name for S&R": node.type.name}
        if node.models:
            properties["models"] = node.models
        entry = {"id": node.id, "type": node.type.name, "pos": list(node.pos), "size": list(node.size), "flags": {},
                 "order": order, "mode": 0, "inputs": inputs, "outputs": outputs}
        if node.title:
            entry["title"] = node.title
        entry["properties"] = properties
        entry["widgets_values"] = self._widgets_values(node)
        entry.update(node.extra)
        return entry

    @staticmethod
    def _widgets_values(node: Node) -> list:
        values = []
        for widget in node.type.widgets:
            values.append(node.values[widget.name])
            if widget.control:
                values.append(node.control)             # the frontend's default is "randomize"
        return values

    def _link_into(self, node: Node, input_name: str) -> list | None:
        slot = [s.name for s in node.type.sockets].index(input_name)
        return next((link for link in self.links if link[3] == node.id and link[4] == slot), None)

    def _execution_order(self) -> list[int]:
        """Node ids in a topological order of the links (the UI format's `order`)."""
        pending = {n.id: {link[1] for link in self.links if link[3] == n.id} for n in self.nodes}
        order: list[int] = []
        while pending:
            ready = sorted(node_id for node_id, needs in pending.items() if not needs - set(order))
            if not ready:
                raise ValueError(f"{self.name}: the links form a cycle")
            order.append(ready[0])
            del pending[ready[0]]
        return order


def _default_size(kind: NodeType) -> tuple[float, float]:
    rows = max(len(kind.sockets), len(kind.outputs))
    return (360, 36 + 22 * rows + 26 * len(kind.widgets))


def model_entry(file_name: str) -> dict:
    """A `properties.models` entry, as the Comfy templates carry it (the frontend offers the download)."""
    folder = MODEL_FILES[file_name]
    return {"name": file_name, "url": f"{REPACKAGED}/{folder}/{file_name}?download=true", "directory": folder}


# ------------------------------------------------------------------------------------- the graphs

# Loader widget values of the released models (with their download entries) and of the built-in Wan2.1-tiny.
# The tiny demo computes on the CPU with the dtypes `python -m wan21_core demo` loads (the DiT's default rule,
# fp16 weights become fp32 on a CPU; the umT5 in bf16; the image encoder in fp32 on a CPU; the VAE in fp32),
# so the graph gives the command line's frames (tests/nodes/test_builtin_chain.py checks it).
RELEASED_LOADERS = {
    "WanDiTLoader": {"dit_name": DIT_FILE, "models": [model_entry(DIT_FILE)]},
    "WanT5Loader": {"t5_name": T5_FILE, "models": [model_entry(T5_FILE)]},
    "WanImageEncoderLoader": {"clip_name": CLIP_FILE, "models": [model_entry(CLIP_FILE)]},
    "WanVAELoader": {"vae_name": VAE_FILE, "models": [model_entry(VAE_FILE)]},
}
TINY_LOADERS = {
    "WanDiTLoader": {"dit_name": BUILTIN_NAME, "weight_dtype": "default", "device": "cpu"},
    "WanT5Loader": {"t5_name": BUILTIN_NAME, "dtype": "bf16", "device": "cpu"},
    "WanImageEncoderLoader": {"clip_name": BUILTIN_NAME, "dtype": "default", "device": "cpu"},
    "WanVAELoader": {"vae_name": BUILTIN_NAME, "dtype": "fp32", "device": "cpu"},
}
# Fusion and sampler widget values: the official 480p settings, and the tiny model's demo (seed 0, kept fixed).
OFFICIAL_FUSION = {"width": AREA_480P // 480, "height": 480, "length": I2V_FRAMES, "size_mode": "official area"}
OFFICIAL_SAMPLER = {"seed": 42, "steps": I2V_STEPS, "guidance": I2V_GUIDANCE, "shift": I2V_SHIFT[AREA_480P],
                    "solver": "unipc"}
TINY_FUSION = {"width": DEMO.size, "height": DEMO.size, "length": DEMO.frames, "size_mode": "exact"}
TINY_SAMPLER = {"seed": 0, "control": "fixed", "steps": DEMO.steps, "guidance": DEMO.guidance, "shift": DEMO.shift,
                "solver": DEMO.solver}


def _our_front_end(g: Graph, loaders: dict = RELEASED_LOADERS, image: str = "example.png",
                   prompt: str = POSITIVE_PROMPT) -> dict:
    """Our loaders, LoadImage and encoders: the nodes every pack-only graph starts with."""
    dit = g.add("WanDiTLoader", (20, 80), **loaders["WanDiTLoader"])
    t5 = g.add("WanT5Loader", (20, 250), **loaders["WanT5Loader"])
    image_encoder = g.add("WanImageEncoderLoader", (20, 420), **loaders["WanImageEncoderLoader"])
    vae = g.add("WanVAELoader", (20, 590), **loaders["WanVAELoader"])
    image = g.add("LoadImage", (20, 820), size=(360, 330), image=image)
    positive = g.add("WanT5TextEncode", (460, 80), size=(400, 200), title="Wan T5 Text Encode (Positive)",
                     style=GREEN, text=prompt)
    negative = g.add("WanT5TextEncode", (460, 330), size=(400, 200), title="Wan T5 Text Encode (Negative)",
                     style=RED, text=NEGATIVE_PROMPT_I2V)
    encode = g.add("WanImageEncode", (460, 800))
    g.connect(t5, "t5", positive, "t5")
    g.connect(t5, "t5", negative, "t5")
    g.connect(image_encoder, "image_encoder", encode, "image_encoder")
    g.connect(image, "IMAGE", encode, "image")
    g.group("Models", [dit, t5, image_encoder, vae])
    g.group("Start image", [image])
    g.group("Prompts and image features", [positive, negative, encode])
    return {"dit": dit, "vae": vae, "image": image, "positive": positive, "negative": negative, "encode": encode}


def _fusion_and_sampler(g: Graph, positive: Node, negative: Node, vae: Node, image: Node, clip_vision: Node,
                        dit: Node, fusion_values: dict = OFFICIAL_FUSION,
                        sampler_values: dict = OFFICIAL_SAMPLER) -> Node:
    """Wan Fusion Conditioning + Wan Sampler (the official 480p settings by default); returns the sampler."""
    fusion = g.add("WanFusionConditioning", (940, 80), **fusion_values)
    sampler = g.add("WanSampler", (1380, 80), **sampler_values)
    g.connect(positive, "CONDITIONING", fusion, "positive")
    g.connect(negative, "CONDITIONING", fusion, "negative")
    g.connect(vae, vae.type.outputs[0][0], fusion, "vae")
    g.connect(image, "IMAGE", fusion, "start_image")
    g.connect(clip_vision, "CLIP_VISION_OUTPUT", fusion, "clip_vision_output")
    g.connect(dit, "dit", sampler, "dit")
    g.connect(fusion, "positive", sampler, "positive")
    g.connect(fusion, "negative", sampler, "negative")
    g.connect(fusion, "latent", sampler, "latent")
    g.group("Image-to-video", [fusion, sampler])
    return sampler


def _video_out(g: Graph, frames: Node, output: str, x: float, prefix: str) -> None:
    create = g.add("CreateVideo", (x, 80), fps=float(FPS))
    save = g.add("SaveVideo", (x, 240), size=(480, 520), filename_prefix=prefix)
    g.connect(frames, output, create, "images")
    g.connect(create, "VIDEO", save, "video")
    g.group("Video", [create, save])


def _pack_only(name: str, note: str, note_size: tuple[float, float], prefix: str, front: dict | None = None,
               fusion_values: dict = OFFICIAL_FUSION, sampler_values: dict = OFFICIAL_SAMPLER,
               align: bool = False) -> Graph:
    """Every stage from this pack, decoded to the video (front: `_our_front_end`'s options); with `align`,
    Wan Frame Align (defaults) sits between the decode and the video."""
    g = Graph(name)
    g.add("MarkdownNote", (-480, 80), size=note_size, title="Model files and settings", style=NOTE, text=note)
    front = _our_front_end(g, **(front or {}))
    sampler = _fusion_and_sampler(g, front["positive"], front["negative"], front["vae"], front["image"],
                                  front["encode"], front["dit"], fusion_values, sampler_values)
    decode = g.add("WanVAEDecode", (1820, 80))
    g.connect(sampler, "LATENT", decode, "samples")
    g.connect(front["vae"], "vae", decode, "vae")
    frames = decode
    if align:
        frames = g.add("WanFrameAlign", (1820, 260))
        g.connect(decode, "IMAGE", frames, "images")
        g.group("Decode and align", [decode, frames])
    _video_out(g, frames, "IMAGE", 2240, prefix)
    return g


def wan21_i2v() -> Graph:
    return _pack_only("wan21_i2v", MODELS_NOTE, (440, 640), "video/Wan21_I2V", align=True)


def wan21_tiny_demo() -> Graph:
    """The built-in Wan2.1-tiny with the settings of `python -m wan21_core demo` (nothing to download)."""
    return _pack_only("wan21_tiny_demo", TINY_NOTE, (440, 760), "video/Wan21_tiny_demo",
                      {"loaders": TINY_LOADERS, "image": TINY_DEMO_IMAGE, "prompt": DEMO.prompt},
                      TINY_FUSION, TINY_SAMPLER)


def wan21_i2v_upscale() -> Graph:
    g = Graph("wan21_i2v_upscale")
    g.add("MarkdownNote", (-480, 80), size=(440, 600), title="Model files and settings", style=NOTE,
          text=UPSCALE_NOTE)
    front = _our_front_end(g)
    sampler = _fusion_and_sampler(g, front["positive"], front["negative"], front["vae"], front["image"],
                                  front["encode"], front["dit"])
    decode = g.add("WanVAEDecode", (1820, 80))
    loader = g.add("WanUpscalerLoader", (1820, 300), model_name="built-in: wan21 x2 cascade (PSNR)")
    upscale = g.add("WanCascadedUpscaler", (1820, 460), mode="x2")
    g.connect(sampler, "LATENT", decode, "samples")
    g.connect(front["vae"], "vae", decode, "vae")
    g.connect(decode, "IMAGE", upscale, "images")
    g.connect(loader, "upscaler", upscale, "upscaler")
    g.group("Decode and upscale", [decode, loader, upscale])
    _video_out(g, upscale, "IMAGE", 2260, "video/Wan21_I2V_x2")
    return g


def wan21_i2v_mixed() -> Graph:
    g = Graph("wan21_i2v_mixed")
    g.add("MarkdownNote", (-480, 80), size=(440, 700), title="Model files and settings", style=NOTE,
          text=MIXED_NOTE)
    dit = g.add("WanDiTLoader", (20, 80), dit_name=DIT_FILE, models=[model_entry(DIT_FILE)])
    clip = g.add("CLIPLoader", (20, 250), clip_name=T5_FILE, type="wan", models=[model_entry(T5_FILE)])
    clip_vision = g.add("CLIPVisionLoader", (20, 420), clip_name=CLIP_FILE, models=[model_entry(CLIP_FILE)])
    vae = g.add("VAELoader", (20, 540), vae_name=VAE_FILE, models=[model_entry(VAE_FILE)])
    image = g.add("LoadImage", (20, 820), size=(360, 330), image="example.png")
    positive = g.add("CLIPTextEncode", (460, 80), size=(400, 200), title="CLIP Text Encode (Positive Prompt)",
                     style=GREEN, text=POSITIVE_PROMPT)
    negative = g.add("CLIPTextEncode", (460, 330), size=(400, 200), title="CLIP Text Encode (Negative Prompt)",
                     style=RED, text=NEGATIVE_PROMPT_I2V)
    encode = g.add("CLIPVisionEncode", (460, 800), crop="none")
    g.connect(clip, "CLIP", positive, "clip")
    g.connect(clip, "CLIP", negative, "clip")
    g.connect(clip_vision, "CLIP_VISION", encode, "clip_vision")
    g.connect(image, "IMAGE", encode, "image")
    g.group("Models", [dit, clip, clip_vision, vae])
    g.group("Start image", [image])
    g.group("Prompts and image features (ComfyUI nodes)", [positive, negative, encode])
    sampler = _fusion_and_sampler(g, positive, negative, vae, image, encode, dit)
    decode = g.add("VAEDecode", (1820, 80))
    loader = g.add("UpscaleModelLoader", (1820, 220), model_name=ESRGAN_FILE,
                   models=[{"name": ESRGAN_FILE, "url": ESRGAN_URL, "directory": "upscale_models"}])
    upscale = g.add("WanCascadedUpscaler", (1820, 360), mode="x2")
    g.connect(sampler, "LATENT", decode, "samples")
    g.connect(vae, "VAE", decode, "vae")
    g.connect(decode, "IMAGE", upscale, "images")
    g.connect(loader, "UPSCALE_MODEL", upscale, "upscaler")
    g.group("Decode and upscale", [decode, loader, upscale])
    _video_out(g, upscale, "IMAGE", 2260, "video/Wan21_I2V_mixed")
    return g


GRAPHS = (wan21_i2v, wan21_i2v_mixed, wan21_i2v_upscale, wan21_tiny_demo)


# ------------------------------------------------------------------------------------- files

def to_text(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """{path relative to workflows/: file text} of every workflow and its API twin."""
    files = {}
    for build in GRAPHS:
        graph = build()
        files[f"{graph.name}.json"] = to_text(graph.ui())
        files[f"api/{graph.name}.api.json"] = to_text(graph.api())
    return files


def main() -> None:
    os.makedirs(API_DIR, exist_ok=True)
    for relative, text in render_all().items():
        with open(os.path.join(HERE, relative), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote workflows/{relative}")


if __name__ == "__main__":
    main()
