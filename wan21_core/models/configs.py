"""Model configurations and constants of Wan2.1 (see the official `wan/configs/*.py`,
`wan/modules/model.py` `WanModel.__init__` and `wan/modules/vae.py` `WanVAE`).

Every loader detects its config from the weights; the presets here are the released sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, asdict

MODEL_TYPES = ("t2v", "i2v", "flf2v")

# Per-channel statistics of the raw VAE latent (official `wan/modules/vae.py`, `WanVAE.__init__` mean/std).
LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)

VAE_STRIDE = (4, 8, 8)        # time, height, width
PATCH_SIZE = (1, 2, 2)
TEXT_LEN = 512                # T5 context is zero-padded to this many tokens
CLIP_TOKENS = 257             # ViT-H/14 at 224 px: 16x16 patches + CLS
DIT_HEAD_DIM = 128            # every released Wan2.1 DiT
CLIP_HEAD_DIM = 80            # ViT-H/14: 1280 / 16 heads
FLF2V_IMAGE_TOKENS = 2 * CLIP_TOKENS


@dataclass
class DiTConfig:
    """Hyper-parameters of `WanModel` (official names)."""

    model_type: str = "i2v"
    in_dim: int = 36
    out_dim: int = 16
    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    freq_dim: int = 256
    text_dim: int = 4096
    img_dim: int = 1280
    text_len: int = TEXT_LEN
    eps: float = 1e-6
    patch_size: tuple = PATCH_SIZE

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"DiTConfig.model_type: expected one of {MODEL_TYPES}, found {self.model_type!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig: dim {self.dim} is not divisible by num_heads {self.num_heads}")
        self.patch_size = tuple(self.patch_size)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def has_image_input(self) -> bool:
        return self.model_type in ("i2v", "flf2v")

    @property
    def image_tokens(self) -> int:
        return FLF2V_IMAGE_TOKENS if self.model_type == "flf2v" else CLIP_TOKENS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def i2v_14b(cls) -> "DiTConfig":
        return cls()

    @classmethod
    def flf2v_14b(cls) -> "DiTConfig":
        return cls(model_type="flf2v")

    @classmethod
    def t2v_14b(cls) -> "DiTConfig":
        return cls(model_type="t2v", in_dim=16)

    @classmethod
    def t2v_1_3b(cls) -> "DiTConfig":
        return cls(model_type="t2v", in_dim=16, dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)


@dataclass
class VAEConfig:
    """Hyper-parameters of the Wan2.1 3D causal VAE (`WanVAE_`)."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple = (False, True, True)
    latent_mean: tuple = field(default=LATENT_MEAN)
    latent_std: tuple = field(default=LATENT_STD)

    def __post_init__(self):
        self.dim_mult = tuple(self.dim_mult)
        self.temporal_downsample = tuple(self.temporal_downsample)

    def to_dict(self) -> dict:
        return asdict(self)
