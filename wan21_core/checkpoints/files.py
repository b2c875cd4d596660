"""Checkpoint files on disk: which files a path means, and reading their tensors one at a time.

A path may be a single `.safetensors` / `.pth` file, a shard of a sharded safetensors set, a
shard index (`*.safetensors.index.json`), a diffusers / transformers model folder (config.json
plus weights), a diffusers pipeline folder (`model_index.json`), or an official Wan2.1 release
folder. Reading never loads a whole file: safetensors are opened with `safe_open` and read per
tensor; `.pth` files are opened with `torch.load(weights_only=True, mmap=True)`, which maps the
file instead of reading it (legacy non-zip files cannot be mapped and are read with mmap=False,
still weights_only=True). No file is ever unpickled with code execution.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Iterable

import torch

SAFETENSORS_EXT = ".safetensors"
PICKLE_EXTS = (".pth", ".pt", ".bin", ".ckpt")
INDEX_SUFFIX = ".safetensors.index.json"
SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.safetensors$")
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}

# Subfolders of a diffusers pipeline folder and official release file names, per model kind.
PIPELINE_SUBFOLDERS = {"dit": "transformer", "vae": "vae", "t5": "text_encoder", "clip_vision": "image_encoder"}
OFFICIAL_RELEASE_FILES = {
    "vae": ("Wan2.1_VAE.pth",),
    "t5": ("models_t5_umt5-xxl-enc-bf16.pth",),
    "clip_vision": ("models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",),
}
_FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors",
                   "model.safetensors.index.json", "model.safetensors",
                   "diffusion_pytorch_model.bin", "pytorch_model.bin")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message names the file, what was expected and found."""


@dataclass
class ResolvedPath:
    """The tensor files behind a user-given path.

    container: "safetensors" | "sharded-safetensors" | "pth" (the files' format);
    folder: the model folder when the path was a folder (diffusers config.json lives there).
    """

    given: str
    files: list[str]
    container: str
    folder: str | None = None
    config: dict = field(default_factory=dict)


def resolve_path(path: str | os.PathLike, kind: str | None = None) -> ResolvedPath:
    """The files a path means; `kind` picks the model inside a pipeline or release folder."""
    given = os.fspath(path)
    if not os.path.exists(given):
        raise CheckpointError(f"{given}: the file or folder does not exist")
    if os.path.isdir(given):
        return _resolve_folder(given, kind)
    name = os.path.basename(given)
    if name.endswith(INDEX_SUFFIX):
        return _resolve_index(given, given)
    if name.endswith(SAFETENSORS_EXT):
        shard = SHARD_NAME.match(name)
        return _resolve_shard(given, shard) if shard else ResolvedPath(given, [given], "safetensors")
    if name.endswith(PICKLE_EXTS):
        return ResolvedPath(given, [given], "pth")
    raise CheckpointError(
        f"{given}: unsupported file type {os.path.splitext(name)[1] or '(no extension)'!r}; expected "
        f".safetensors, a shard index {INDEX_SUFFIX}, a PyTorch file {'/'.join(PICKLE_EXTS)} or a model folder")


def _resolve_folder(folder: str, kind: str | None) -> ResolvedPath:
    if os.path.isfile(os.path.join(folder, "model_index.json")):
        return _resolve_pipeline_folder(folder, kind)
    release = _official_release_file(folder, kind)
    if release is not None:
        return resolve_path(release)
    for name in _FOLDER_WEIGHTS:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            resolved = resolve_path(candidate)
            resolved.given, resolved.folder = folder, folder
            resolved.config = _read_json(os.path.join(folder, "config.json"), required=False)
            return resolved
    raise CheckpointError(
        f"{folder}: a folder without a recognised checkpoint; expected a diffusers/transformers model folder "
        f"(config.json with {' or '.join(_FOLDER_WEIGHTS[:4])}), a diffusers pipeline folder (model_index.json) "
        f"or an official Wan2.1 release folder; found {_listing(folder)}")


def _resolve_pipeline_folder(folder: str, kind: str | None) -> ResolvedPath:
    if kind is None:
        raise CheckpointError(f"{folder}: a diffusers pipeline folder holds several models; "
                              f"name the model kind (one of {sorted(PIPELINE_SUBFOLDERS)}) or pass its subfolder")
    sub = os.path.join(folder, PIPELINE_SUBFOLDERS[kind])
    if not os.path.isdir(sub):
        raise CheckpointError(f"{folder}: a diffusers pipeline folder without the {PIPELINE_SUBFOLDERS[kind]}/ "
                              f"subfolder that holds the {kind} model; found {_listing(folder)}")
    return _resolve_folder(sub, kind)


def _official_release_file(folder: str, kind: str | None) -> str | None:
    """The file of model `kind` inside an official Wan2.1 release folder, if there is one.

    (The release folder holds the DiT itself as config.json plus shards.)
    """
    for name in OFFICIAL_RELEASE_FILES.get(kind, ()):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _resolve_shard(shard_path: str, match: re.Match) -> ResolvedPath:
    folder = os.path.dirname(shard_path)
    index = os.path.join(folder, match.group("stem") + INDEX_SUFFIX)
    if os.path.isfile(index):
        return _resolve_index(index, shard_path)
    count = int(match.group("count"))
    files = [os.path.join(folder, f"{match.group('stem')}-{i:05d}-of-{count:05d}{SAFETENSORS_EXT}")
             for i in range(1, count + 1)]
    _require_shards(shard_path, files)
    return ResolvedPath(shard_path, files, "sharded-safetensors")


def _resolve_index(index_path: str, given: str) -> ResolvedPath:
    index = _read_json(index_path, required=True)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: a shard index needs a non-empty 'weight_map' "
                              f"{{tensor name: shard file}}; found keys {sorted(index)[:5] if isinstance(index, dict) else type(index).__name__}")
    folder = os.path.dirname(index_path)
    files = [os.path.join(folder, name) for name in sorted(set(weight_map.values()))]
    _require_shards(index_path, files)
    return ResolvedPath(given, files, "sharded-safetensors")


def _require_shards(source: str, files: list[str]) -> None:
    missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise CheckpointError(f"{source}: {len(missing)} of {len(files)} shards are missing: "
                              f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (expected in "
                              f"{os.path.dirname(files[0]) or '.'})")


def _read_json(path: str, required: bool) -> dict:
    if not os.path.isfile(path):
        if required:
            raise CheckpointError(f"{path}: the file does not exist")
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: expected a JSON file, could not parse it ({err})") from None


def _listing(folder: str, limit: int = 8) -> str:
    names = sorted(os.listdir(folder))
    return (", ".join(names[:limit]) + (" ..." if len(names) > limit else "")) if names else "an empty folder"


# ------------------------------------------------------------------------------------------ reading

@dataclass(frozen=True)
class TensorMeta:
    shape: tuple
    dtype: torch.dtype

    def numel(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n


class TensorFiles:
    """Read-only access to the tensors of some files, one tensor at a time.

    `meta` gives every tensor's shape and dtype without reading data; `read(key)` reads one tensor
    (a fresh CPU tensor for safetensors, a memory-mapped one for zip `.pth` files).
    """

    def __init__(self, files: Iterable[str]):
        self.files = list(files)
        self.meta: dict[str, TensorMeta] = {}
        self._readers: dict[str, object] = {}
        self._owner: dict[str, str] = {}
        for path in self.files:
            if path.endswith(SAFETENSORS_EXT):
                self._open_safetensors(path)
            else:
                self._open_pickle(path)

    def keys(self) -> list[str]:
        return list(self.meta)

    def read(self, key: str) -> torch.Tensor:
        path = self._owner[key]
        reader = self._readers[path]
        if isinstance(reader, dict):
            return reader[key]
        try:
            return reader.get_tensor(key)
        except Exception as err:  # safetensors raises its own error type for damaged data
            raise CheckpointError(f"{path}: could not read tensor {key!r} ({err}); the file may be truncated "
                                  f"or corrupt") from None

    def close(self) -> None:
        self._readers.clear()

    def _register(self, path: str, key: str, meta: TensorMeta) -> None:
        if key in self._owner:
            raise CheckpointError(f"{path}: tensor {key!r} is also stored in {self._owner[key]}; "
                                  f"expected each tensor in exactly one shard")
        self._owner[key] = path
        self.meta[key] = meta

    def _open_safetensors(self, path: str) -> None:
        from safetensors import safe_open

        try:
            handle = safe_open(path, framework="pt", device="cpu")
            entries = [(k, handle.get_slice(k)) for k in handle.keys()]
            metas = [(k, TensorMeta(tuple(s.get_shape()), _SAFETENSORS_DTYPES[s.get_dtype()])) for k, s in entries]
        except KeyError as err:
            raise CheckpointError(f"{path}: unsupported tensor dtype {err} in a safetensors file") from None
        except Exception as err:  # SafetensorError is not importable under a stable name
            raise CheckpointError(f"{path}: not a readable safetensors file ({err}); "
                                  f"the file may be truncated or corrupt") from None
        self._readers[path] = handle
        for key, meta in metas:
            self._register(path, key, meta)

    def _open_pickle(self, path: str) -> None:
        state = load_pickle_weights_only(path)
        self._readers[path] = state
        for key, value in state.items():
            self._register(path, key, TensorMeta(tuple(value.shape), value.dtype))


def load_pickle_weights_only(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a `.pth`-style file, loaded with `weights_only=True` (memory-mapped when the
    file is a zip archive). Nested `state_dict` / `model` / `module` wrappers are unwrapped."""
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as err:
        raise CheckpointError(_pickle_failure(path, err, is_zip)) from None
    state = _unwrap(state)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (a mapping of names to tensors); "
                              f"found {type(state).__name__} without tensors")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _unwrap(state):
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and len(state) == 1 and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return state


def _pickle_failure(path: str, err: Exception, is_zip: bool) -> str:
    text = str(err)
    if "Weights only load failed" in text or "weights_only" in text:
        blocked = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"the object {blocked.group(1)}" if blocked else "a Python object that is not a tensor"
        return (f"{path}: refused to load. Expected a pickle of plain tensors; the file asks to construct "
                f"{what}, which would run code. Only weights_only=True loading is allowed; convert the "
                f"file to safetensors with trusted tools if you trust its source")
    if is_zip:
        return f"{path}: not a readable PyTorch zip checkpoint ({text.splitlines()[0]}); the file may be truncated or corrupt"
    return (f"{path}: not a readable PyTorch checkpoint (neither a zip archive nor a legacy tensor pickle: "
            f"{text.splitlines()[0] if text else type(err).__name__}); the file may be truncated or corrupt")
