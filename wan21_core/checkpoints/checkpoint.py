"""Open any supported Wan2.1 checkpoint: detect the model kind, the key layout and the config, and
read tensors under canonical names, lazily and one at a time.

Kinds: "dit", "vae", "t5" (umT5-XXL encoder), "clip_vision" (CLIP ViT-H/14 visual tower).
Key layouts ("naming"): "official" (the Wan2.1 release; ComfyUI's DiT and VAE files use it too),
"diffusers" (WanTransformer3DModel, AutoencoderKLWan), "hf" (transformers UMT5 / CLIP vision; the
ComfyUI umT5 and clip_vision_h files use it). Canonical names are those of the module each model
is built on (see `keymaps`): official for the DiT and VAE, transformers for umT5 and CLIP.

`inspect_checkpoint(path)` reports kind, format, config, dtypes and fp8 state without reading a
tensor; `open_checkpoint(path, kind)` gives a `Checkpoint` that loaders read from.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import torch

from .configs import clip_config_from_shapes, dit_config_from_shapes, t5_config_from_shapes, vae_config_from_shapes
from .files import CheckpointError, ResolvedPath, TensorFiles, TensorMeta, resolve_path
from .fp8 import NOT_WEIGHTS, SCALE_WEIGHT_NAMES, SCALED_FP8_MARKER, dequantize, is_fp8, marker_storage_dtype
from .keymaps import (CLIP_NOT_WEIGHTS, clip_official_to_hf, dit_diffusers_to_official, find_prefix, t5_hf_alias,
                      t5_official_to_hf, vae_diffusers_to_official)

__all__ = ["CheckpointError", "CheckpointInfo", "Checkpoint", "open_checkpoint", "inspect_checkpoint", "KINDS"]

KINDS = ("dit", "vae", "t5", "clip_vision")
KIND_NAMES = {
    "dit": "Wan2.1 DiT (diffusion model)",
    "vae": "Wan2.1 VAE",
    "t5": "umT5-XXL text encoder",
    "clip_vision": "CLIP ViT-H/14 image encoder (clip_vision)",
}
LOADERS = {"dit": "the DiT loader (load_dit)", "vae": "the VAE loader (load_vae)",
           "t5": "the text encoder loader (load_text_encoder)",
           "clip_vision": "the image encoder loader (load_image_encoder)"}
SPIECE_KEY = "spiece_model"
_EXTRA_KEYS = (SCALED_FP8_MARKER, SPIECE_KEY, *CLIP_NOT_WEIGHTS)
_SCALE_SUFFIXES = tuple("." + name for name in NOT_WEIGHTS)
_ALIGNMENT = 64   # bytes; what PyTorch's CPU allocator guarantees


@dataclass(frozen=True)
class _Layout:
    kind: str
    naming: str
    anchors: tuple   # keys that must all exist, after a common prefix


# Order matters: the official CLIP .pth also holds an XLM-R text tower whose keys resemble T5's.
_LAYOUTS = (
    _Layout("dit", "official", ("head.modulation", "patch_embedding.weight")),
    _Layout("dit", "diffusers", ("condition_embedder.time_proj.weight", "scale_shift_table")),
    _Layout("vae", "official", ("decoder.middle.0.residual.0.gamma", "conv2.weight")),
    _Layout("vae", "diffusers", ("decoder.mid_block.resnets.0.norm1.gamma", "post_quant_conv.weight")),
    _Layout("clip_vision", "official", ("transformer.0.attn.to_qkv.weight", "cls_embedding")),
    _Layout("clip_vision", "hf", ("encoder.layers.0.self_attn.q_proj.weight", "embeddings.class_embedding")),
    _Layout("t5", "official", ("blocks.0.pos_embedding.embedding.weight", "token_embedding.weight")),
    _Layout("t5", "hf", ("encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.final_layer_norm.weight")),
)

# Models that are recognisable but not supported: (anchor key, what it is).
_FOREIGN = (
    ("decoder.upsamples.0.upsamples.0.residual.2.weight", "a Wan2.2 VAE (48 latent channels); Wan2.1 needs the Wan2.1 VAE"),
    ("visual.transformer.resblocks.0.attn.in_proj_weight", "an open_clip CLIP checkpoint in its original layout; "
                                                             "use clip_vision_h.safetensors or the official Wan2.1 CLIP .pth"),
    ("encoder.block.0.layer.1.DenseReluDense.wi.weight", "a T5 v1.0 encoder (not gated); Wan2.1 needs umT5-XXL"),
    ("text_model.encoder.layers.0.mlp.fc1.weight", "a CLIP text encoder; Wan2.1 needs umT5-XXL and the CLIP vision tower"),
)


@dataclass
class CheckpointInfo:
    """What a checkpoint is, read from its file headers only.

    kind: "dit" | "vae" | "t5" | "clip_vision"; naming: "official" | "diffusers" | "hf";
    container: "safetensors" | "sharded-safetensors" | "pth"; prefix: stripped key prefix;
    stored_dtype: the floating dtype holding most weight elements; fp8: the fp8 storage dtype or None;
    scaled_fp8: per-layer `scale_weight` present; config: DiTConfig / VAEConfig / transformers config;
    tokenizer: where the umT5 tokenizer comes from (T5 only).
    """

    path: str
    files: list
    kind: str
    naming: str
    container: str
    prefix: str
    stored_dtype: torch.dtype
    fp8: torch.dtype | None
    scaled_fp8: bool
    tensor_count: int
    parameter_count: int
    config: object
    tokenizer: str | None = None
    ignored_keys: list = field(default_factory=list)

    @property
    def format(self) -> str:
        """A short human name of the file format."""
        if self.container == "pth":
            return "PyTorch .pth (official release)"
        container = "sharded safetensors" if self.container == "sharded-safetensors" else "single-file safetensors"
        if os.path.isdir(self.path):
            return f"{self.naming} model folder ({container})"
        return container

    def describe(self) -> str:
        """One line for messages, e.g. in ComfyUI nodes."""
        dtype = str(self.fp8 or self.stored_dtype).replace("torch.", "")
        fp8 = " scaled" if self.scaled_fp8 else ""
        return (f"{os.path.basename(os.path.normpath(self.path))}: {KIND_NAMES[self.kind]}, {self.format}, "
                f"{self.naming} keys, {dtype}{fp8}, {self.tensor_count} tensors, "
                f"{self.parameter_count / 1e6:.1f} M parameters")


class Checkpoint:
    """Canonical-name, one-tensor-at-a-time access to a detected checkpoint.

    `keys()` are canonical names; `meta(key)` their stored shape and dtype; `read(key, dtype,
    device)` reads and converts one tensor (fp8 is dequantised with its scale unless
    `keep_fp8=True`); `scale(key)` the fp8 `scale_weight` of a weight (None if unscaled).
    """

    def __init__(self, resolved: ResolvedPath, files: TensorFiles, layout: _Layout, prefix: str):
        self.resolved, self.files, self.layout, self.prefix = resolved, files, layout, prefix
        self.kind, self.naming = layout.kind, layout.naming
        self._stored, self.ignored_keys, self._derive = _canonical_names(files, layout, prefix, resolved)
        self._fp8_marker = files.meta.get(prefix + SCALED_FP8_MARKER) or files.meta.get(SCALED_FP8_MARKER)
        self._derived_meta_cache: dict | None = None
        self._check_quantised()

    @property
    def path(self) -> str:
        return self.resolved.given

    def keys(self) -> list[str]:
        return list(self._stored) + list(self._derived_meta())

    def meta(self, key: str) -> TensorMeta:
        if key in self._stored:
            return self.files.meta[self._stored[key]]
        return self._derived_meta()[key]

    def shapes(self) -> dict[str, torch.Tensor]:
        """{canonical key: meta-device tensor of the stored shape and dtype}; reads no data."""
        return {k: torch.empty(m.shape, dtype=m.dtype, device="meta") for k, m in
                ((k, self.meta(k)) for k in self.keys())}

    def read(self, key: str, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
             keep_fp8: bool = False) -> torch.Tensor:
        """One canonical tensor, converted to `dtype` (None keeps it; fp8 then becomes bfloat16).

        fp8 tensors are dequantised with their `scale_weight`, unless `keep_fp8` (then they are
        returned as stored; fetch the scale with `scale`).
        """
        if key in self._stored:
            return self._read_stored(self._stored[key], dtype, device, keep_fp8)
        if key not in self._derived_meta():
            raise KeyError(f"{self.path}: no tensor {key!r}")
        convert, sources = self._derive
        layer = _layer_index(key)
        needed = {name: self._read_stored(stored, dtype, device, keep_fp8=False)
                  for name, stored in sources.items() if _layer_index(name) == layer}
        return convert(needed)[key]

    def scale(self, key: str) -> torch.Tensor | None:
        """The float32 `scale_weight` stored next to an fp8 weight, or None."""
        stored = self._stored.get(key)
        return None if stored is None else self._stored_scale(stored)

    def tokenizer_source(self):
        """The embedded `spiece_model` uint8 tensor, or a tokenizer folder next to the weights, or None."""
        for key in (self.prefix + SPIECE_KEY, SPIECE_KEY):
            if key in self.files.meta:
                return self.files.read(key)
        return _tokenizer_folder_near(self.resolved)

    def stored_dtype(self) -> torch.dtype:
        """The floating dtype that holds most of the weights (an fp8 dtype for fp8 files)."""
        return _dtype_summary(self)[0]

    def info(self, num_heads: int | None = None) -> CheckpointInfo:
        stored_dtype, fp8, numel = _dtype_summary(self)
        tokenizer = None
        if self.kind == "t5":
            embedded = any(k in self.files.meta for k in (self.prefix + SPIECE_KEY, SPIECE_KEY))
            tokenizer = "embedded spiece_model" if embedded else _tokenizer_folder_near(self.resolved)
        return CheckpointInfo(
            path=self.path, files=list(self.resolved.files), kind=self.kind, naming=self.naming,
            container=self.resolved.container, prefix=self.prefix, stored_dtype=stored_dtype, fp8=fp8,
            scaled_fp8=self._fp8_marker is not None or any(self._scale_key(s) for s in self._stored.values()),
            tensor_count=len(self.keys()), parameter_count=numel, config=detect_config(self, num_heads),
            tokenizer=tokenizer, ignored_keys=list(self.ignored_keys))

    def close(self) -> None:
        self.files.close()

    # -- reading stored tensors ------------------------------------------------------------------
    def _scale_key(self, stored_key: str) -> str | None:
        if not stored_key.endswith(".weight"):
            return None
        module = stored_key[: -len("weight")]
        return next((module + n for n in SCALE_WEIGHT_NAMES if module + n in self.files.meta), None)

    def _stored_scale(self, stored_key: str) -> torch.Tensor | None:
        scale_key = self._scale_key(stored_key)
        return None if scale_key is None else self.files.read(scale_key).float()

    def _check_quantised(self) -> None:
        """A weight with a scale must be fp8: other quantised formats (int8, fp4) are not supported."""
        for stored in self._stored.values():
            dtype = self.files.meta[stored].dtype
            if self._scale_key(stored) is not None and not is_fp8(dtype):
                raise CheckpointError(f"{self.path}: {stored} is stored as {dtype} with a scale; only fp8 "
                                      f"(float8_e4m3fn / float8_e5m2) scaled weights are supported")

    def _read_stored(self, stored_key: str, dtype, device, keep_fp8: bool) -> torch.Tensor:
        raw = self.files.read(stored_key)
        if is_fp8(raw.dtype) and not (keep_fp8 and (dtype is None or is_fp8(dtype))):
            return dequantize(raw.to(device), self._stored_scale(stored_key), dtype or torch.bfloat16)
        return _aligned(raw.to(device=device, dtype=dtype or raw.dtype))

    # -- tensors derived from stored ones (the official CLIP's q/k/v, class and position embeddings) --
    def _derived_meta(self) -> dict[str, TensorMeta]:
        """Shapes of the derived tensors, from running the converter on meta tensors."""
        if self._derive is None:
            return {}
        if self._derived_meta_cache is None:
            convert, sources = self._derive
            probes = {name: torch.empty(self.files.meta[s].shape, dtype=self.files.meta[s].dtype, device="meta")
                      for name, s in sources.items()}
            self._derived_meta_cache = {k: TensorMeta(tuple(v.shape), v.dtype) for k, v in convert(probes).items()}
        return self._derived_meta_cache


def _aligned(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself, or a copy when it sits at a CPU address that is not 64-byte aligned.

    safetensors hands out zero-copy views of its memory map at whatever offset the file header
    leaves; kernels pick different vector paths for unaligned data, so the same weights would give
    last-bit different results depending on the file. A copy is made one tensor at a time.
    """
    if tensor.device.type == "cpu" and tensor.numel() and tensor.data_ptr() % _ALIGNMENT:
        return tensor.clone(memory_format=torch.contiguous_format)
    return tensor


def _layer_index(name: str) -> str | None:
    """The first numeric component of a dotted key (the layer), or None for top-level keys."""
    return next((part for part in name.split(".") if part.isdigit()), None)


def open_checkpoint(path: str | os.PathLike, kind: str | None = None) -> Checkpoint:
    """Open and detect a checkpoint; with `kind`, a checkpoint of another kind is an error."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, found {kind!r}")
    resolved = resolve_path(path, kind)
    files = TensorFiles(resolved.files)
    layout, prefix = _detect_layout(files, resolved)
    if kind is not None and layout.kind != kind:
        raise CheckpointError(
            f"{resolved.given}: expected a {KIND_NAMES[kind]}, but this file looks like a "
            f"{KIND_NAMES[layout.kind]} ({layout.naming} keys); load it with {LOADERS[layout.kind]}")
    return Checkpoint(resolved, files, layout, prefix)


def inspect_checkpoint(path: str | os.PathLike, kind: str | None = None,
                       num_heads: int | None = None) -> CheckpointInfo:
    """Kind, format, detected config, stored dtype, fp8 state and tensor count, without reading weights."""
    checkpoint = open_checkpoint(path, kind)
    try:
        return checkpoint.info(num_heads)
    finally:
        checkpoint.close()


# ------------------------------------------------------------------------------------- detection

def _detect_layout(files: TensorFiles, resolved: ResolvedPath) -> tuple[_Layout, str]:
    keys = files.keys()
    foreign = _foreign_model(keys)   # first: a Wan2.2 VAE also has every Wan2.1 VAE anchor
    if foreign is not None:
        raise CheckpointError(f"{resolved.given}: this looks like {foreign}")
    for layout in _LAYOUTS:
        prefix = find_prefix(keys, layout.anchors[0])
        if prefix is not None and all(prefix + a in files.meta for a in layout.anchors[1:]):
            return layout, prefix
    shown = ", ".join(sorted(keys)[:6]) + (" ..." if len(keys) > 6 else "")
    expected = "; ".join(f"{KIND_NAMES[l.kind]} ({l.naming}): {l.anchors[0]}" for l in _LAYOUTS)
    raise CheckpointError(f"{resolved.given}: unknown key layout, not a Wan2.1 model file. Expected one of "
                          f"these keys (any prefix): {expected}. Found {len(keys)} keys: {shown or 'none'}")


def _foreign_model(keys: list[str]) -> str | None:
    for anchor, what in _FOREIGN:
        if find_prefix(keys, anchor) is not None:
            return what
    return None


def _canonical_names(files: TensorFiles, layout: _Layout, prefix: str, resolved: ResolvedPath):
    """({canonical key: stored key}, [ignored stored keys], derivation or None).

    Keys outside a non-empty prefix (other models in the same file, ComfyUI's
    `visual_projection.weight`, the CLIP text tower) are ignored; fp8 scales, the `scaled_fp8`
    marker and the embedded tokenizer are not weights.
    """
    own, ignored = [], []
    for key in files.keys():
        inside = key.startswith(prefix)
        local = key[len(prefix):] if inside else key
        if local in _EXTRA_KEYS or key.endswith(_SCALE_SUFFIXES):
            continue
        (own if inside else ignored).append(key)
    renamer = _renamer(layout, files, prefix, resolved)
    if renamer is None:
        return {k[len(prefix):]: k for k in own}, ignored, None
    mapping, derive = _apply_renamer(renamer, own, prefix, files, resolved)
    return mapping, ignored, derive


def _renamer(layout: _Layout, files: TensorFiles, prefix: str, resolved: ResolvedPath):
    """(style, function): "key" maps one name (None if unknown), "dict" converts a state dict (tensors
    whose shape changes are derived from it); None where the stored names are canonical."""
    if layout.kind == "dit":
        return None if layout.naming == "official" else ("key", dit_diffusers_to_official)
    if layout.kind == "vae":
        if layout.naming == "official":
            return None
        blocks = resolved.config.get("num_res_blocks") or _diffusers_vae_res_blocks(files.keys(), prefix)
        return "key", lambda key: vae_diffusers_to_official(key, blocks)
    if layout.kind == "t5":
        return "key", (t5_official_to_hf if layout.naming == "official" else t5_hf_alias)
    return None if layout.naming == "hf" else ("dict", clip_official_to_hf)


def _diffusers_vae_res_blocks(keys: list[str], prefix: str) -> int:
    """diffusers decoder stage 0 holds num_res_blocks + 1 resnets."""
    head = prefix + "decoder.up_blocks.0.resnets."
    indices = {int(k[len(head):].split(".")[0]) for k in keys if k.startswith(head)}
    return max(len(indices) - 1, 1)


def _apply_renamer(renamer: tuple, own: list[str], prefix: str, files: TensorFiles, resolved: ResolvedPath):
    """Key maps rename lazily. A whole-dict converter is probed with meta tensors: an output that is
    one of the input objects is a rename; the others are derived (computed on read, per layer)."""
    style, rename = renamer
    local = {k[len(prefix):]: k for k in own}
    if style == "key":
        mapping, unknown = {}, []
        for name, stored in local.items():
            canonical = rename(name)
            if canonical is None:
                unknown.append(stored)
            elif canonical not in mapping or name == canonical:   # a tied tensor saved twice: one is enough
                mapping[canonical] = stored
        if unknown:
            raise CheckpointError(_unexpected_message(resolved.given, unknown, "keys the key map does not know"))
        return mapping, None
    probes = {name: torch.empty(files.meta[stored].shape, dtype=files.meta[stored].dtype, device="meta")
              for name, stored in local.items()}
    try:
        out = rename(probes)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{resolved.given}: {err.args[0] if err.args else err}") from None
    by_id = {id(t): name for name, t in probes.items()}
    mapping = {canonical: local[by_id[id(t)]] for canonical, t in out.items() if id(t) in by_id}
    if len(mapping) == len(out):
        return mapping, None
    used = set(mapping.values())
    sources = {name: stored for name, stored in local.items() if stored not in used}
    return mapping, (rename, sources)


def _unexpected_message(path: str, keys: list[str], what: str) -> str:
    shown = ", ".join(sorted(keys)[:6]) + (" ..." if len(keys) > 6 else "")
    return f"{path}: {len(keys)} {what}: {shown}"


# ------------------------------------------------------------------------------------- configs

def detect_config(checkpoint: Checkpoint, num_heads: int | None = None):
    """The model config read from the checkpoint's tensor shapes (no data is read)."""
    shapes = checkpoint.shapes()
    try:
        if checkpoint.kind == "dit":
            return dit_config_from_shapes(shapes, num_heads, checkpoint.path)
        if checkpoint.kind == "vae":
            return vae_config_from_shapes(shapes)
        if checkpoint.kind == "t5":
            return t5_config_from_shapes(shapes)
        return clip_config_from_shapes(shapes)
    except (KeyError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{checkpoint.path}: cannot read the {KIND_NAMES[checkpoint.kind]} config: "
                              f"{err.args[0] if err.args else err}") from None


def _dtype_summary(checkpoint: Checkpoint) -> tuple[torch.dtype, torch.dtype | None, int]:
    """(floating dtype holding most elements, fp8 dtype if any, parameter count)."""
    by_dtype: Counter = Counter()
    for key in checkpoint.keys():
        meta = checkpoint.meta(key)
        by_dtype[meta.dtype] += meta.numel()
    floating = {d: n for d, n in by_dtype.items() if d.is_floating_point}
    stored = max(floating, key=floating.get) if floating else torch.float32
    fp8 = next((d for d in floating if is_fp8(d)), None)
    if fp8 is None and checkpoint._fp8_marker is not None:
        fp8 = marker_storage_dtype(checkpoint._fp8_marker.dtype)
    return stored, fp8, sum(by_dtype.values())


def _tokenizer_folder_near(resolved: ResolvedPath) -> str | None:
    """A umT5 tokenizer folder next to the weights: the diffusers `tokenizer/` sibling of
    `text_encoder/`, the official `google/umt5-xxl/`, or the weights' own folder."""
    from ..models.text_encoder.tokenizer import SPIECE_FILE, TOKENIZER_JSON_FILE

    folder = resolved.folder or os.path.dirname(os.path.abspath(resolved.files[0]))
    for candidate in (os.path.join(os.path.dirname(folder), "tokenizer"), os.path.join(folder, "tokenizer"),
                      os.path.join(folder, "google", "umt5-xxl"), folder):
        if any(os.path.isfile(os.path.join(candidate, n)) for n in (SPIECE_FILE, TOKENIZER_JSON_FILE)):
            return candidate
    return None
