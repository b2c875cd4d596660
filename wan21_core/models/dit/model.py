"""The Wan2.1 diffusion transformer `WanModel` (official `wan/modules/model.py`, `WanModel`): t2v, i2v and flf2v.

Call:  v = model(x, t, context, clip_fea=None, y=None)   (velocity, float32 [B, 16, T, H, W])
Fast sampling:  cache = model.prepare_context(context, clip_fea);  v = model(x, t, y=y, cache=cache)

The state dict carries exactly the official Wan2.1 keys (`wan/modules/model.py`, `WanModel.__init__`);
the RoPE table is not
in it. A checkpoint's tensors define the config as follows (`DiTConfig` field <- tensor):

| field | defined by |
|---|---|
| dim, in_dim, patch_size | `patch_embedding.weight` [dim, in_dim, *patch_size] |
| out_dim | `head.head.weight`.shape[0] / prod(patch_size) |
| ffn_dim | `blocks.0.ffn.0.weight`.shape[0] |
| num_layers | the number of `blocks.{i}.modulation` tensors |
| freq_dim | `time_embedding.0.weight`.shape[1] |
| text_dim | `text_embedding.0.weight`.shape[1] |
| img_dim | `img_emb.proj.1.weight`.shape[1] (i2v/flf2v) |
| model_type | no `img_emb.*` -> t2v; `img_emb.emb_pos` present -> flf2v; otherwise i2v |
| num_heads | not stored: dim / 128 (every released Wan2.1 DiT has head_dim 128) |
| text_len, eps | not stored: 512 and 1e-6 |

Inputs (moved to the model's device; every batch size must be 1 or the common batch B, and size-1
batches broadcast):
- x [B, 16, T, H, W]: the noisy latent (or the full in_dim channels with y=None). H and W even.
- t [B] (or a scalar): timesteps in 0..1000, float or int. They are truncated to integers
  (towards zero, like the official int64 timesteps): t = 500.7 acts as 500.
- context [B, L, 4096] or a list of [L_i, 4096] T5 outputs, L <= 512. Each is zero-padded to 512
  tokens and the padding is NOT masked (the official behaviour: `wan/modules/model.py` `WanModel.forward`
  pads to `text_len` with `context_lens=None`; diffusers `WanTransformer3DModel` passes no mask either).
- clip_fea (i2v/flf2v): CLIP penultimate hidden states [B, 257, 1280]. flf2v takes [B, 514, 1280]:
  first-frame tokens then last-frame tokens (the official [2, 257, 1280] is `.reshape(1, 514, 1280)`).
- y (i2v/flf2v): [B, 20, T, H, W] = 4 mask channels + 16 condition-latent channels, appended
  after x's channels.

Precision: weights may be fp32, bf16 or fp16 (`cast_weights`; `keeps_fp32` names what stays fp32).
The residual stream, the time embedding and projection, the modulation, the norms, RoPE and the head
run in fp32; the big linear layers and attention in `compute_dtype` (the block weights' dtype, or
set it, e.g. to bf16 for fp8-stored weights). The output is always float32. Attention goes through
`attention.attention` (on CPU in bf16 a blocked matmul kernel, elsewhere SDPA; see attention.py).
Inference only: forward and prepare_context run without autograd.

Sampling (see `prepare_context`): the cache holds the text/image embeddings and every block's
cross-attention K/V, so a step costs only the video-token work. Per block it holds K and V of 512
tokens per text context and n_img tokens per image (14B model, bf16, 2 texts + 1 image: ~1.1 GB
over its 40 blocks). The RoPE table is cached per grid and device. For CFG, pass x, t, y with batch 1
and a cache prepared from a batch of 2 text contexts (cond, uncond) with one image: the patch
embedding, the first block's self-attention and the image K/V are computed once, and the output
has batch 2 (cond first). Passing x with batch 2 works too, without that saving.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from ..configs import DiTConfig
from .blocks import CrossKV, Head, ImageEmbedding, WanBlock
from .rope import rope_table

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_KEEP_FP32 = ("time_embedding.", "time_projection.", "modulation", "norm", "img_emb.proj.0.",
              "img_emb.proj.4.", "img_emb.emb_pos", "head.head.")


@dataclass
class ContextCache:
    """Everything constant over the sampling steps: embeddings and each block's cross-attention K/V.

    text [Bc, 512, C] and image [Bi, n_img, C] are in `dtype` (the model's compute dtype when it was
    prepared); blocks[i] holds block i's keys and values after norm_k / norm_k_img.
    """

    text: torch.Tensor
    image: torch.Tensor | None
    blocks: list[CrossKV]
    dtype: torch.dtype

    @property
    def text_batch(self) -> int:
        return self.text.shape[0]

    @property
    def image_batch(self) -> int | None:
        return None if self.image is None else self.image.shape[0]


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Official timestep sinusoid [B, dim] in float64: [cos(t·ω), sin(t·ω)], ω_j = 10000^(-j/(dim/2))."""
    half = dim // 2
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    angles = torch.outer(t.to(torch.float64), omega)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class WanModel(nn.Module):
    """Wan2.1 DiT. See the module docstring for the call, the inputs and the precision rules."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = c = config
        if c.head_dim % 2:
            raise ValueError(f"DiTConfig: head_dim (dim / num_heads) must be even for RoPE, found {c.head_dim}")
        self.patch_embedding = nn.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(c.dim, c.dim))
        self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 6 * c.dim))
        self.blocks = nn.ModuleList(WanBlock(c.dim, c.ffn_dim, c.num_heads, c.eps, c.has_image_input)
                                    for _ in range(c.num_layers))
        self.head = Head(c.dim, c.out_dim * math.prod(c.patch_size), c.eps)
        if c.has_image_input:
            pos_tokens = c.image_tokens if c.model_type == "flf2v" else None
            self.img_emb = ImageEmbedding(c.img_dim, c.dim, pos_tokens)
        self._compute_dtype: torch.dtype | None = None

    # ----------------------------------------------------------------------------------- dtypes
    @staticmethod
    def keeps_fp32(param_name: str) -> bool:
        """True for parameters that stay fp32 whatever the weight dtype: the time embedding and
        projection, the modulations, every norm, `img_emb.emb_pos` and the (small) output head."""
        return any(pattern in param_name for pattern in _KEEP_FP32)

    def cast_weights(self, dtype: torch.dtype) -> "WanModel":
        """Cast every parameter to `dtype` except those `keeps_fp32` names, which become fp32."""
        for name, param in self.named_parameters():
            param.data = param.data.to(torch.float32 if self.keeps_fp32(name) else dtype)
        return self

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype of the big linear layers and attention: the dtype of the block weights unless set
        explicitly (`model.compute_dtype = torch.bfloat16`, e.g. for fp8-stored weights); `None` resets."""
        if self._compute_dtype is not None:
            return self._compute_dtype
        dtype = self.blocks[0].self_attn.q.weight.dtype if len(self.blocks) else torch.float32
        return dtype if dtype in _FLOAT_DTYPES else torch.bfloat16

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype | None) -> None:
        if dtype is not None and dtype not in _FLOAT_DTYPES:
            raise ValueError(f"compute_dtype: expected one of {_FLOAT_DTYPES} or None, found {dtype}")
        self._compute_dtype = dtype

    # ---------------------------------------------------------------------------------- context
    @torch.no_grad()
    def prepare_context(self, context, clip_fea: torch.Tensor | None = None) -> ContextCache:
        """Embed the text (and image) context and project every block's cross-attention K/V once.

        context: [B, L, text_dim] or a list of [L_i, text_dim], L <= 512; clip_fea as for `forward`.
        The text and image batches may differ when one of them is 1 (e.g. 2 texts for CFG, 1 image).
        """
        cd = self.compute_dtype
        device = self.patch_embedding.weight.device
        padded = self._padded_context(context).to(device, cd)                    # [Bc, 512, text_dim]
        text = self.text_embedding(padded)                                        # [Bc, 512, C]
        image = None
        if self._checked_clip_fea(clip_fea) is not None:
            image = self.img_emb(clip_fea.to(device), cd)                           # [Bi, n_img, C]
        lengths = [int(row.nonzero().max()) + 1 if row.any() else 0 for row in padded.ne(0).any(dim=-1)]
        blocks = [block.cross_attn.project_context(text, image, lengths) for block in self.blocks]
        return ContextCache(text, image, blocks, cd)

    def _padded_context(self, context) -> torch.Tensor:
        """T5 outputs zero-padded to [B, text_len, text_dim]."""
        c = self.config
        if isinstance(context, (list, tuple)):
            for i, item in enumerate(context):
                if not (torch.is_tensor(item) and item.dim() == 2):
                    found = tuple(item.shape) if torch.is_tensor(item) else type(item).__name__
                    raise ValueError(f"context[{i}]: expected a [L, {c.text_dim}] tensor, found {found}")
            rows = [self._pad_rows(item, f"context[{i}]") for i, item in enumerate(context)]
            return torch.stack(rows)
        if not (torch.is_tensor(context) and context.dim() == 3):
            found = tuple(context.shape) if torch.is_tensor(context) else type(context).__name__
            raise ValueError(f"context: expected a [B, L, {c.text_dim}] tensor or a list of [L, {c.text_dim}] "
                             f"tensors, found {found}")
        return self._pad_rows(context, "context")

    def _pad_rows(self, context: torch.Tensor, name: str) -> torch.Tensor:
        c = self.config
        length, width = context.shape[-2:]
        if width != c.text_dim:
            raise ValueError(f"{name}: expected {c.text_dim} features per token (T5 width), found {width}")
        if length > c.text_len:
            raise ValueError(f"{name}: at most {c.text_len} text tokens, found {length}")
        return nn.functional.pad(context, (0, 0, 0, c.text_len - length))

    def _checked_clip_fea(self, clip_fea: torch.Tensor | None) -> torch.Tensor | None:
        c = self.config
        if not c.has_image_input:
            if clip_fea is not None:
                raise ValueError("clip_fea: this is a t2v checkpoint; it takes no image features. "
                                 "Pass clip_fea=None, or load an i2v/flf2v checkpoint for image-to-video.")
            return None
        expected = f"[B, {c.image_tokens}, {c.img_dim}]"
        if clip_fea is None:
            raise ValueError(f"clip_fea: the model is {c.model_type} and needs image features "
                             f"(CLIP penultimate hidden states {expected}), found None")
        if not torch.is_tensor(clip_fea) or clip_fea.dim() != 3 or tuple(clip_fea.shape[1:]) != (c.image_tokens,
                                                                                               c.img_dim):
            found = tuple(clip_fea.shape) if torch.is_tensor(clip_fea) else type(clip_fea).__name__
            hint = (" (flf2v: concatenate the first- and last-frame features along the tokens, "
                    "e.g. clip_fea.reshape(-1, 514, 1280))") if c.model_type == "flf2v" else ""
            raise ValueError(f"clip_fea: expected {expected}{hint}, found {found}")
        return clip_fea

    # ---------------------------------------------------------------------------------- forward
    @torch.no_grad()
    def forward(self, x: torch.Tensor, t, context=None, clip_fea: torch.Tensor | None = None,
                y: torch.Tensor | None = None, cache: ContextCache | None = None) -> torch.Tensor:
        """Velocity [B, out_dim, T, H, W] float32 for the noisy latent x at timesteps t."""
        cd = self.compute_dtype
        cache = self._context_cache(context, clip_fea, cache, cd)
        inputs = self._latent_input(x, y).to(self.patch_embedding.weight.device)
        t = self._timesteps(t, inputs.device)
        self._check_batches(x=x.shape[0], t=t.shape[0], y=None if y is None else y.shape[0],
                            context=cache.text_batch, clip_fea=cache.image_batch)

        tokens, grid = self._patchify(inputs.to(cd))                   # [Bx, L, C] fp32
        rotations = rope_table(grid, self.config.head_dim, tokens.device)
        e, e0 = self._time_embeddings(t)                               # [Bt, C], [Bt, 6, C] fp32
        for block, kv in zip(self.blocks, cache.blocks):
            tokens = block(tokens, e0, rotations, kv, cd)              # batch grows to B in block 0
        return self._unpatchify(self.head(tokens, e), grid)

    def _context_cache(self, context, clip_fea, cache: ContextCache | None, cd: torch.dtype) -> ContextCache:
        if cache is None:
            if context is None:
                raise ValueError("context: expected the T5 text context (or cache=model.prepare_context(...)), "
                                 "found None")
            return self.prepare_context(context, clip_fea)
        if context is not None or clip_fea is not None:
            raise ValueError("cache: it already holds the text and image context; pass either cache or "
                             "context/clip_fea, not both")
        device = self.patch_embedding.weight.device
        if cache.dtype != cd or len(cache.blocks) != len(self.blocks) or cache.text.device != device:
            raise ValueError(f"cache: prepared for {len(cache.blocks)} blocks in {cache.dtype} on {cache.text.device}, "
                             f"but the model has {len(self.blocks)} blocks computing in {cd} on {device}; "
                             f"call prepare_context again")
        return cache

    def _latent_input(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """x (and y) checked and concatenated along channels: [B, in_dim, T, H, W]."""
        c = self.config
        if not (torch.is_tensor(x) and x.dim() == 5):
            found = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x: expected a latent [B, {c.out_dim}, T, H, W], found {found}")
        if y is not None and not c.has_image_input:
            raise ValueError("y: this is a t2v checkpoint; it takes no conditioning latent y. Pass y=None, or "
                             "load an i2v/flf2v checkpoint for image-to-video.")
        y_channels = 0 if y is None else y.shape[1]
        if y is None and c.has_image_input and x.shape[1] != c.in_dim:
            raise ValueError(f"y: the model is {c.model_type} and needs y, the [B, {c.in_dim - x.shape[1]}, T, H, W] "
                             f"condition (4 mask + 16 latent channels), found None")
        if x.shape[1] + y_channels != c.in_dim:
            raise ValueError(f"x/y channels: the model takes {c.in_dim} input channels in total, found "
                             f"x {x.shape[1]} + y {y_channels} = {x.shape[1] + y_channels}")
        if y is not None and (y.dim() != 5 or y.shape[2:] != x.shape[2:]):
            raise ValueError(f"y: expected [B, {y_channels}, {', '.join(map(str, x.shape[2:]))}] like x, "
                             f"found {tuple(y.shape)}")
        frames, height, width = x.shape[2:]
        pt, ph, pw = c.patch_size
        if frames % pt or height % ph or width % pw:
            raise ValueError(f"x: latent (T, H, W) must be divisible by the patch size {c.patch_size} "
                             f"(H and W even), found {(frames, height, width)}")
        if y is None:
            return x
        batch = max(x.shape[0], y.shape[0])
        return torch.cat([x.expand(batch, *x.shape[1:]), y.to(x.dtype).expand(batch, *y.shape[1:])], dim=1)

    @staticmethod
    def _timesteps(t, device: torch.device) -> torch.Tensor:
        """Timesteps as int64 [Bt], truncated towards zero like the official integer timesteps."""
        t = torch.as_tensor(t, device=device)
        if t.dim() > 1 or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"t: expected a real scalar or a [B] tensor of timesteps, found shape {tuple(t.shape)} "
                             f"of {t.dtype}")
        return t.reshape(-1).to(torch.int64)

    @staticmethod
    def _check_batches(**batches: int | None) -> None:
        sizes = {name: b for name, b in batches.items() if b is not None}
        common = max(sizes.values())
        if any(b not in (1, common) for b in sizes.values()):
            listing = ", ".join(f"{name} {b}" for name, b in sizes.items())
            raise ValueError(f"batch sizes do not match: {listing} (each must be 1 or the common batch {common})")

    def _time_embeddings(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """e = time_embedding(sinusoid(t)) [B, C] and e0 = time_projection(e) [B, 6, C], in fp32."""
        fc_in, proj = self.time_embedding[0], self.time_projection[1]
        sinusoid = sinusoidal_embedding(t, self.config.freq_dim).float()
        e = self.time_embedding(sinusoid.to(fc_in.weight.dtype)).float()
        e0 = self.time_projection(e.to(proj.weight.dtype)).float()
        return e, e0.unflatten(1, (6, self.config.dim))

    def _patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """[B, in_dim, T, H, W] -> tokens [B, L, C] fp32 (order f, h, w) and the grid (T/pt, H/ph, W/pw)."""
        patches = self.patch_embedding(x)                             # [B, C, T', H', W']
        grid = tuple(patches.shape[2:])
        return patches.flatten(2).transpose(1, 2).float().contiguous(), grid

    def _unpatchify(self, out: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, L, prod(patch)·out_dim] (channel fastest) -> [B, out_dim, T, H, W]."""
        pt, ph, pw = self.config.patch_size
        frames, rows, cols = grid
        return rearrange(out, "b (f h w) (pt ph pw c) -> b c (f pt) (h ph) (w pw)",
                         f=frames, h=rows, w=cols, pt=pt, ph=ph, pw=pw)
