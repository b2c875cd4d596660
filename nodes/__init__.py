"""ComfyUI node adapters. Each node declares its inputs and calls one `wan21_core` function."""
from .alignment import WanFrameAlign
from .decode import WanVAEDecode
from .encoders import WanImageEncode, WanT5TextEncode
from .fusion import WanFusionConditioning
from .loaders import WanDiTLoader, WanImageEncoderLoader, WanT5Loader, WanUpscalerLoader, WanVAELoader
from .sampler import WanSampler
from .sampler_alignment import WanSamplerAlignment
from .upscale import WanCascadedUpscaler

_NODES = {
    # class id: (class, display name)
    "WanDiTLoader": (WanDiTLoader, "Wan DiT Loader"),
    "WanT5Loader": (WanT5Loader, "Wan T5 Loader"),
    "WanImageEncoderLoader": (WanImageEncoderLoader, "Wan Image Encoder Loader"),
    "WanVAELoader": (WanVAELoader, "Wan VAE Loader"),
    "WanUpscalerLoader": (WanUpscalerLoader, "Wan Upscaler Loader"),
    "WanT5TextEncode": (WanT5TextEncode, "Wan T5 Text Encode"),
    "WanImageEncode": (WanImageEncode, "Wan Image Encode"),
    "WanFusionConditioning": (WanFusionConditioning, "Wan Fusion Conditioning"),
    "WanSamplerAlignment": (WanSamplerAlignment, "Wan Sampler Alignment"),
    "WanSampler": (WanSampler, "Wan Sampler"),
    "WanVAEDecode": (WanVAEDecode, "Wan VAE Decode"),
    "WanFrameAlign": (WanFrameAlign, "Wan Frame Align"),
    "WanCascadedUpscaler": (WanCascadedUpscaler, "Wan Cascaded Upscaler"),
}

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: display for name, (_, display) in _NODES.items()}
