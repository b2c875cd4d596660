"""Everything ComfyUI-specific the nodes use, behind plain fallbacks.

With ComfyUI importable this talks to `folder_paths`, `comfy.utils.ProgressBar`,
`comfy.model_management` and `server.PromptServer`; without it (tests, scripts) it falls back to
a models folder given by `set_models_dir` (or $WAN21_MODELS_DIR), no progress UI, no interrupt
and the first CUDA device if there is one. No other module of the pack imports ComfyUI.
"""
from __future__ import annotations

import os

import torch

try:  # ComfyUI's own modules exist only inside a running ComfyUI
    import folder_paths
    import comfy.model_management as model_management
    import comfy.utils as comfy_utils
    IN_COMFY = True
except ImportError:  # pragma: no cover - exercised by the tests' plain environment
    folder_paths = model_management = comfy_utils = None
    IN_COMFY = False

STAGE_EVENT = "wan21.stage"
PREVIEW_SIZE = 512

# model kind -> ComfyUI folder names (new name first, legacy alias second)
FOLDERS = {
    "dit": ("diffusion_models", "unet"),
    "t5": ("text_encoders", "clip"),
    "clip_vision": ("clip_vision",),
    "vae": ("vae",),
    "upscale": ("upscale_models",),
}
MODEL_EXTENSIONS = (".safetensors", ".sft", ".pth", ".pt", ".bin", ".ckpt")

_fallback_dir = os.environ.get("WAN21_MODELS_DIR")


def set_models_dir(path: str | None) -> None:
    """Outside ComfyUI: the folder holding diffusion_models/, text_encoders/, ... (for tests/scripts)."""
    global _fallback_dir
    _fallback_dir = path


# ------------------------------------------------------------------------------------- model files

def list_models(kind: str) -> list[str]:
    """File names (relative to their model folder) offered in a loader's list."""
    names: list[str] = []
    for folder in FOLDERS[kind]:
        for name in _folder_files(folder):
            if name not in names:
                names.append(name)
    return sorted(names)


def model_path(kind: str, name: str) -> str:
    """Absolute path of `name` inside the kind's model folders; never outside them."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise ValueError(f"model file {name!r}: expected a name inside the {FOLDERS[kind][0]} folder")
    for folder in FOLDERS[kind]:
        for root in _folder_roots(folder):
            path = os.path.normpath(os.path.join(os.path.abspath(root), name))
            if _inside(path, root) and os.path.isfile(path):   # symlinked files are fine, as in ComfyUI
                return path
    raise FileNotFoundError(f"model file {name!r} not found in the {FOLDERS[kind][0]} folder(s): "
                            f"{', '.join(r for f in FOLDERS[kind] for r in _folder_roots(f)) or 'none configured'}")


def _folder_roots(folder: str) -> list[str]:
    if IN_COMFY:
        try:
            return list(folder_paths.get_folder_paths(folder))
        except KeyError:
            return []
    return [os.path.join(_fallback_dir, folder)] if _fallback_dir else []


def _folder_files(folder: str) -> list[str]:
    if IN_COMFY:
        try:
            return list(folder_paths.get_filename_list(folder))
        except KeyError:
            return []
    names = []
    for root in _folder_roots(folder):
        for base, _, files in os.walk(root, followlinks=True):
            for f in files:
                if f.lower().endswith(MODEL_EXTENSIONS):
                    names.append(os.path.relpath(os.path.join(base, f), root).replace(os.sep, "/"))
    return names


def _inside(path: str, root: str) -> bool:
    root = os.path.abspath(root)
    return os.path.commonpath([path, root]) == root


# ------------------------------------------------------------------------------------- devices

def torch_device() -> torch.device:
    """The device ComfyUI computes on (or CUDA/CPU outside ComfyUI)."""
    if IN_COMFY:
        return model_management.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where idle models wait (CPU unless ComfyUI runs with --gpu-only / --highvram)."""
    if IN_COMFY:
        return model_management.unet_offload_device()
    return torch.device("cpu")


def make_room(num_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to unload its own models until `num_bytes` fit on `device`."""
    if IN_COMFY and device.type != "cpu":
        model_management.free_memory(num_bytes, device)


def release_memory() -> None:
    if IN_COMFY:
        model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------- progress

def previews_enabled() -> bool:
    """Whether ComfyUI shows sampler previews (off with its default `--preview-method none`)."""
    if not IN_COMFY:
        return False
    from comfy.cli_args import LatentPreviewMethod, args
    return args.preview_method != LatentPreviewMethod.NoPreviews


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel."""
    if IN_COMFY:
        model_management.throw_exception_if_processing_interrupted()


class Progress:
    """A node's progress bar; every update is also a cancellation point (ComfyUI's hook checks it)."""

    def __init__(self, total: int, node_id: str | None = None):
        self.total = total
        self.bar = comfy_utils.ProgressBar(total, node_id=node_id) if IN_COMFY else None

    def update(self, done: int, total: int | None = None, preview=None) -> None:
        """Set progress to `done` of `total`; `preview` is an optional PIL image shown on the node."""
        if total is not None:
            self.total = total
        if self.bar is not None:
            image = ("JPEG", preview, PREVIEW_SIZE) if preview is not None else None
            self.bar.update_absolute(done, self.total, image)
        check_interrupt()

    def callback(self, done: int, total: int) -> None:
        """`callback(done, total)` form for the VAE and upscaler loops."""
        self.update(done, total)


def send_stage_stats(node_id: str | None, stats) -> None:
    """Tell the web extension how long a node took and its peak memory."""
    if not IN_COMFY or node_id is None:
        return
    try:
        from server import PromptServer
        server = PromptServer.instance
    except (ImportError, AttributeError):
        return
    server.send_sync(STAGE_EVENT, {"node": str(node_id), "seconds": round(stats.seconds, 3),
                                   "peak_ram_mb": _round(stats.peak_ram_mb),
                                   "peak_vram_mb": _round(stats.peak_vram_mb)}, server.client_id)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
