"""Build API-format prompts node by node, and read back what a run saved.

An API-format prompt is `{node_id: {"class_type": ..., "inputs": {name: value or [node_id, output]}}}`;
`Graph.add` returns a `Node` whose `[i]` is the link to its output i.
Standard library plus numpy, PIL, PyAV and safetensors (all in this repository's venv).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import model_files as mf

# Small run settings shared by the tests: 64x48 px, 9 frames (3 latent frames), 2 steps.
WIDTH, HEIGHT, LENGTH, STEPS = 64, 48, 9, 2
PROMPT, NEGATIVE = "a red cat walks slowly on the beach at sunset", "blurry, static"


@dataclass(frozen=True)
class Node:
    id: str
    class_type: str

    def __getitem__(self, output: int) -> list:
        return [self.id, output]


class Graph:
    """An API-format prompt under construction."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, **inputs) -> Node:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return Node(node_id, class_type)

    def prompt(self) -> dict:
        return copy.deepcopy(self.nodes)


# ------------------------------------------------------------------------------------- pack parts

def pack_text(g: Graph, t5_name: str = mf.T5) -> tuple[Node, Node]:
    """Wan T5 Loader + two Wan T5 Text Encode: (positive, negative) CONDITIONING nodes."""
    t5 = g.add("WanT5Loader", t5_name=t5_name, dtype="fp32", device="cpu")
    return (g.add("WanT5TextEncode", t5=t5[0], text=PROMPT),
            g.add("WanT5TextEncode", t5=t5[0], text=NEGATIVE))


def pack_image_features(g: Graph, image: list, clip_name: str = mf.TINY_CLIP_VISION) -> Node:
    encoder = g.add("WanImageEncoderLoader", clip_name=clip_name, dtype="fp32", device="cpu")
    return g.add("WanImageEncode", image_encoder=encoder[0], image=image, crop="none")


def pack_fusion(g: Graph, positive: list, negative: list, vae: list, image: list, clip_vision_output=None,
                crop: str = "center", **size) -> Node:
    """Wan Fusion Conditioning at the small test size (override with width/height/length)."""
    inputs = dict(positive=positive, negative=negative, vae=vae, start_image=image, width=WIDTH,
                  height=HEIGHT, length=LENGTH, batch_size=1, size_mode="exact", crop=crop, vae_tile=0)
    inputs.update(size)
    if clip_vision_output is not None:
        inputs["clip_vision_output"] = clip_vision_output
    return g.add("WanFusionConditioning", **inputs)


def pack_sampler(g: Graph, dit: list, positive: list, negative: list, latent: list, steps: int = STEPS,
                 seed: int = 7, solver: str = "euler") -> Node:
    return g.add("WanSampler", dit=dit, positive=positive, negative=negative, latent=latent, seed=seed,
                 steps=steps, guidance=5.0, shift=3.0, solver=solver, schedule="official", denoise=1.0)


def pack_dit(g: Graph, dit_name: str = mf.DIT_I2V, weight_dtype: str = "fp32") -> Node:
    """Wan DiT Loader; fp32 like ComfyUI on the CPU ("default" keeps the file's fp16 weights)."""
    return g.add("WanDiTLoader", dit_name=dit_name, weight_dtype=weight_dtype, device="cpu")


def tiny_pack_graph(image_name: str, steps: int = STEPS, **size) -> tuple[Graph, dict[str, Node]]:
    """The whole pack pipeline on tiny models (tiny VAE and ViT), ending in SaveLatent.

    Returns the graph and its main nodes by role ("fusion", "sampler", "dit", "save", ...).
    """
    g = Graph()
    image = g.add("LoadImage", image=image_name)
    positive, negative = pack_text(g)
    features = pack_image_features(g, image[0])
    vae = g.add("WanVAELoader", vae_name=mf.TINY_VAE, dtype="fp32", device="cpu")
    fusion = pack_fusion(g, positive[0], negative[0], vae[0], image[0], features[0], **size)
    dit = pack_dit(g)
    sampler = pack_sampler(g, dit[0], fusion[0], fusion[1], fusion[2], steps=steps)
    save = g.add("SaveLatent", samples=sampler[0], filename_prefix="latents/tiny_pack")
    return g, {"image": image, "positive": positive, "negative": negative, "features": features, "vae": vae,
               "fusion": fusion, "dit": dit, "sampler": sampler, "save": save}


def video_out(g: Graph, images: list, prefix: str, fps: float = 16.0) -> Node:
    """Native CreateVideo + SaveVideo (mp4); returns the SaveVideo node."""
    video = g.add("CreateVideo", images=images, fps=fps)
    return g.add("SaveVideo", video=video[0], filename_prefix=prefix, format="mp4", codec="h264")


# ------------------------------------------------------------------------------------- results

def saved_files(server, outputs: dict, node_id: str) -> list[Path]:
    """Files a saving node reported in its UI output (`images`, `latents`, ...), as local paths."""
    paths = []
    for items in (outputs.get(node_id) or {}).values():
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("type") == "output" and "filename" in item:
                paths.append(server.output_dir / item.get("subfolder", "") / item["filename"])
    return paths


def read_latent(path: Path):
    """The tensor of a `.latent` file written by SaveLatent."""
    from safetensors.torch import load_file

    return load_file(str(path))["latent_tensor"]


def video_info(path: Path) -> tuple[int, int, int]:
    """(decoded frame count, width, height) of a video file: PyAV, or PIL for animated WebP."""
    if path.suffix.lower() == ".webp":
        from PIL import Image

        with Image.open(path) as image:
            return image.n_frames, image.width, image.height
    import av

    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
    return len(frames), frames[0].width, frames[0].height


def read_video_frames(path: Path):
    """uint8 array [N, H, W, 3] of a video's decoded frames (PyAV, converted to RGB)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def combo_options(spec) -> list:
    """Options of a combo input spec in /object_info: V1 `[[...], {...}]` or V3 `["COMBO", {"options": [...]}]`."""
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def read_pngs(paths: list[Path]):
    """uint8 array [N, H, W, 3] of the PNGs, in file-name order."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(paths)])


def write_start_image(path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """A deterministic colourful PNG (gradients and a disc) of exactly width x height."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = ((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) < (min(width, height) * 0.25) ** 2
    rgb = np.stack([x / width, y / height, 0.5 + 0.4 * disc], axis=-1)
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(path)
    return path
