"""Loader nodes: a file from ComfyUI's model folders -> this pack's model objects."""
from __future__ import annotations


import torch

from wan21_core import inspect_checkpoint, load_dit, load_image_encoder, load_text_encoder, load_vae
from wan21_core.checkpoints import default_dit_dtype
from wan21_core.embedded import BUILTIN_NAME, builtin_available, builtin_path
from wan21_core.upscale import default_cascade, default_cascade_path, load_cascade

from . import comfy_adapter as comfy
from .base import (WAN_DIT, WAN_IMAGE_ENCODER, WAN_T5, WAN_UPSCALER, WAN_VAE, ModelCache, WanNode,
                   tooltip)
from .placement import PLACEMENTS, ModelHandle

DTYPES = {"default": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FP8 = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
BUILTIN_UPSCALERS = {"built-in: wan21 x2 cascade (PSNR)": "psnr",
                     "built-in: wan21 x2 cascade (adversarial)": "adversarial"}

DEVICE_TIP = ("auto: wait in RAM and visit the GPU while working (saves VRAM); gpu: stay on the GPU "
              "(faster between runs); cpu: compute on the CPU")


def _placement_input(default: str = "auto") -> tuple:
    return (list(PLACEMENTS), tooltip(DEVICE_TIP, default=default))


def _model_choices(kind: str) -> list[str]:
    """The files of the kind's model folders, then the built-in Wan2.1-tiny model (shipped in the pack,
    nothing copied into ComfyUI's folders) when this checkout has its files."""
    return comfy.list_models(kind) + ([BUILTIN_NAME] if builtin_available() else [])


BUILTIN_TIP = f" {BUILTIN_NAME}: the small model shipped with this pack (96x96, 25 frames, a toy world of shapes)."


class ModelLoader(WanNode):
    """The shared `execute` of the model loaders: the file `NAME_INPUT` names in ComfyUI's model folder of
    `KIND`, loaded by `load` once per file and options (each loader class has its own `ModelCache`), and
    handed on as a `ModelHandle` with the chosen placement ("device" input).

    A loader declares only its `inputs`, its `KIND` (with the name input) and its `load` call.
    """

    KIND = ""           # the model folder kind of comfy.list_models / comfy.model_path
    NAME_INPUT = ""     # the input naming the file in that folder

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._cache = ModelCache()

    def execute(self, device, **inputs):
        name = inputs.pop(self.NAME_INPUT)
        path = builtin_path(self.KIND) if name == BUILTIN_NAME else comfy.model_path(self.KIND, name)
        options = (*sorted(inputs.items()), device)
        model = self._cache.get(path, options, lambda: self.load(path, device, **inputs))
        return (ModelHandle(model, device, name),)

    def load(self, path: str, device: str, **options):
        """Load the model file at `path` for the placement `device` with the node's other inputs."""
        raise NotImplementedError


class WanDiTLoader(ModelLoader):
    DESCRIPTION = ("Loads a Wan2.1 diffusion transformer (the denoiser) from models/diffusion_models: "
                   "Comfy-Org repackaged files (fp16/bf16/fp8/fp8_scaled), official shards or diffusers folders.")
    RETURN_TYPES = (WAN_DIT,)
    RETURN_NAMES = ("dit",)
    OUTPUT_TOOLTIPS = ("The Wan2.1 DiT, for the Wan Sampler.",)
    KIND, NAME_INPUT = "dit", "dit_name"

    @classmethod
    def inputs(cls):
        return {"required": {
            "dit_name": (_model_choices("dit"), tooltip(
                "Diffusion model file, e.g. wan2.1_i2v_480p_14B_fp16.safetensors (image-to-video needs an i2v "
                "or flf2v model)." + BUILTIN_TIP)),
            "weight_dtype": (["default"] + list(DTYPES)[1:] + list(FP8), tooltip(
                "Weight storage. default: as stored (fp8 files stay fp8 and are dequantised per layer; fp16 "
                "becomes fp32 when computing on a CPU); fp8 halves memory at a small quality cost.",
                default="default")),
            "device": _placement_input(),
        }}

    def load(self, path, device, weight_dtype):
        dtype = FP8.get(weight_dtype, DTYPES.get(weight_dtype))
        if dtype is None:
            dtype = default_dit_dtype(inspect_checkpoint(path, "dit"), ModelHandle.compute_device_of(device))
        return load_dit(path, ModelHandle.load_device(device), dtype, require=("i2v", "flf2v"))


class WanT5Loader(ModelLoader):
    DESCRIPTION = ("Loads the umT5-XXL text encoder from models/text_encoders (umt5_xxl_fp16 / "
                   "fp8_e4m3fn_scaled, or the official .pth) with its built-in tokenizer.")
    RETURN_TYPES = (WAN_T5,)
    RETURN_NAMES = ("t5",)
    OUTPUT_TOOLTIPS = ("The umT5 text encoder, for Wan T5 Text Encode.",)
    KIND, NAME_INPUT = "t5", "t5_name"

    @classmethod
    def inputs(cls):
        return {"required": {
            "t5_name": (_model_choices("t5"), tooltip("Text encoder file, e.g. umt5_xxl_fp8_e4m3fn_scaled.safetensors." + BUILTIN_TIP)),
            "dtype": (["bf16", "fp32"], tooltip("Compute dtype (the official model runs in bf16).", default="bf16")),
            "device": (list(PLACEMENTS), tooltip(
                "cpu (default, the official t5_cpu option) keeps 11 GB of weights out of VRAM; " + DEVICE_TIP,
                default="cpu")),
        }}

    def load(self, path, device, dtype):
        return load_text_encoder(path, ModelHandle.load_device(device), DTYPES[dtype])


class WanImageEncoderLoader(ModelLoader):
    DESCRIPTION = ("Loads the ViT-H/14 CLIP image encoder from models/clip_vision (clip_vision_h.safetensors "
                   "or the official open-clip .pth).")
    RETURN_TYPES = (WAN_IMAGE_ENCODER,)
    RETURN_NAMES = ("image_encoder",)
    OUTPUT_TOOLTIPS = ("The CLIP image encoder, for Wan Image Encode.",)
    KIND, NAME_INPUT = "clip_vision", "clip_name"

    @classmethod
    def inputs(cls):
        return {"required": {
            "clip_name": (_model_choices("clip_vision"), tooltip("Image encoder file, e.g. clip_vision_h.safetensors." + BUILTIN_TIP)),
            "dtype": (list(DTYPES), tooltip("default: fp16 on a GPU (official), fp32 on the CPU.", default="default")),
            "device": _placement_input(),
        }}

    def load(self, path, device, dtype):
        return load_image_encoder(path, ModelHandle.load_device(device), DTYPES[dtype])


class WanVAELoader(ModelLoader):
    DESCRIPTION = "Loads the Wan2.1 3D causal VAE from models/vae (wan_2.1_vae.safetensors or Wan2.1_VAE.pth)."
    RETURN_TYPES = (WAN_VAE,)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The Wan2.1 VAE; ComfyUI's own VAE nodes cannot use it, our VAE inputs accept both.",)
    KIND, NAME_INPUT = "vae", "vae_name"

    @classmethod
    def inputs(cls):
        return {"required": {
            "vae_name": (_model_choices("vae"), tooltip("VAE file, e.g. wan_2.1_vae.safetensors." + BUILTIN_TIP)),
            "dtype": (["fp32", "bf16", "fp16"], tooltip("fp32 is the official precision; bf16 halves memory.",
                                                        default="fp32")),
            "device": _placement_input(),
        }}

    def load(self, path, device, dtype):
        return load_vae(path, ModelHandle.load_device(device), DTYPES[dtype])


class WanUpscalerLoader(WanNode):
    DESCRIPTION = ("Loads a cascaded upscaler: this pack's built-in x2 cascades, a cascade file, or any single "
                   "super-resolution model spandrel reads (ESRGAN, Compact, SwinIR, SPAN, ...) from models/upscale_models.")
    RETURN_TYPES = (WAN_UPSCALER,)
    RETURN_NAMES = ("upscaler",)
    OUTPUT_TOOLTIPS = ("The upscaler, for Wan Cascaded Upscaler.",)
    _cache = ModelCache()

    @classmethod
    def inputs(cls):
        return {"required": {
            "model_name": (list(BUILTIN_UPSCALERS) + comfy.list_models("upscale"), tooltip(
                "built-in: the shipped cascades (PSNR-oriented = faithful, adversarial = sharper); "
                "or a file in models/upscale_models.")),
        }}

    def execute(self, model_name):
        if model_name in BUILTIN_UPSCALERS:
            variant = BUILTIN_UPSCALERS[model_name]
            return (self._cache.get(default_cascade_path(variant), (), lambda: default_cascade(variant)),)
        path = comfy.model_path("upscale", model_name)
        return (self._cache.get(path, (), lambda: load_cascade(path)),)
