"""Wan2.1 VAE: key layout, parity with diffusers, chunking vs a whole-sequence reference, tiling,
normalisation, dtypes, input checks and the progress callback.

All models are tiny (base_dim 8, num_res_blocks 2) with re-randomised weights.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wan21_core.models.configs import VAEConfig
from wan21_core.checkpoints import vae_from_state_dict
from wan21_core.checkpoints.configs import vae_config_from_shapes
from wan21_core.models.vae.model import WanVAE
from wan21_core.models.vae.tiling import axis_spans, plan_tiles

TINY = VAEConfig(base_dim=8)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def randomize_(vae: WanVAE, seed: int = 0) -> WanVAE:
    """Re-randomise every weight: gains 1 ± 0.2, small biases, fan-in scaled kernels."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
        vae.decoder.head[2].weight.mul_(0.4)  # keep most decoded values inside the clamp range
    return vae.eval()


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    return randomize_(WanVAE(TINY))


def video(frames: int, height: int = 32, width: int = 48, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, frames, height, width, generator=g).clamp_(-1, 1)


def latent(t: int, h: int = 4, w: int = 6, seed: int = 2) -> torch.Tensor:
    return torch.randn(1, 16, t, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- key layout
def test_state_dict_has_the_official_keys_and_shapes():
    with torch.device("meta"):
        sd = WanVAE().state_dict()
    assert len(sd) == 194
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["decoder.upsamples.3.time_conv.weight"] == (768, 384, 3, 1, 1)
    assert shapes["decoder.upsamples.3.resample.1.weight"] == (192, 384, 3, 3)
    assert shapes["encoder.downsamples.5.time_conv.weight"] == (192, 192, 3, 1, 1)
    assert shapes["encoder.head.2.weight"] == (32, 384, 3, 3, 3)
    assert shapes["encoder.head.0.gamma"] == (384, 1, 1, 1)
    assert shapes["decoder.middle.1.norm.gamma"] == (384, 1, 1)
    assert shapes["decoder.upsamples.4.shortcut.weight"] == (384, 192, 1, 1, 1)
    assert shapes["conv1.weight"] == (32, 32, 1, 1, 1) and shapes["conv2.weight"] == (16, 16, 1, 1, 1)
    assert "decoder.upsamples.11.time_conv.weight" not in shapes  # upsample2d
    assert "encoder.downsamples.2.time_conv.weight" not in shapes  # downsample2d
    assert {k.split(".")[2] for k in sd if k.startswith("decoder.upsamples.")} == {str(i) for i in range(15)}
    assert {k.split(".")[2] for k in sd if k.startswith("encoder.downsamples.")} == {str(i) for i in range(11)}


@pytest.mark.parametrize("config", [
    TINY,
    VAEConfig(base_dim=4, dim_mult=(1, 2, 2), num_res_blocks=1, temporal_downsample=(True, False)),
    VAEConfig(base_dim=4, dim_mult=(1, 3, 2, 2), num_res_blocks=3, temporal_downsample=(False, False, True)),
])
def test_from_state_dict_infers_config_and_adopts_tensors(config):
    sd = randomize_(WanVAE(config)).state_dict()
    assert vae_config_from_shapes(sd) == config
    loaded = vae_from_state_dict(sd)
    assert loaded.config == config and not loaded.training
    assert all(loaded.state_dict()[k].data_ptr() == v.data_ptr() for k, v in sd.items())  # assign, no copy
    as_bf16 = vae_from_state_dict(sd, dtype=torch.bfloat16)
    assert as_bf16.dtype == torch.bfloat16 and as_bf16.device.type == "cpu"


def test_from_state_dict_rejects_a_foreign_state_dict():
    with pytest.raises(ValueError, match="missing 'encoder.conv1.weight'"):
        vae_from_state_dict({"decoder.conv_in.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- diffusers parity
def test_encode_and_decode_match_diffusers(vae):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    peer = AutoencoderKLWan(base_dim=TINY.base_dim, z_dim=16, num_res_blocks=2).eval()
    peer.load_state_dict(convert_wan_vae_to_diffusers(dict(vae.state_dict())), strict=True)
    x = video(9)
    with torch.no_grad():
        z_peer = peer.encode(x).latent_dist.mode()
        y_peer = peer.decode(z_peer).sample
    z = vae.encode(x)
    y = vae.decode(z_peer)
    assert z.shape == (1, 16, 3, 4, 6) and y.shape == (1, 3, 9, 32, 48)
    assert (y_peer.abs() < 1).float().mean() > 0.9  # the clamp hides little of the comparison
    assert rel_l2(z, z_peer) <= 1e-5
    assert rel_l2(y, y_peer) <= 1e-5
    with torch.no_grad():  # ties the whole-sequence reference below to the official chunked code
        assert rel_l2(ref_decode(vae, z_peer), y_peer) <= 1e-5
        assert rel_l2(ref_encode(vae, x), z_peer) <= 1e-5


# ----------------------------------------------------------------------------- whole-sequence reference
# An independent, non-chunked implementation of the same causal semantics, read off the official
# code: causal convs pad kt-1 zero frames in front of the whole sequence; downsample3d keeps frame 0
# and runs its stride-2 time conv over all frames from frame 0; upsample3d keeps frame 0 as it is
# and runs its time conv (zero-padded) over frames 1.., interleaving the two output halves.
def ref_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    kt, kh, kw = conv.weight.shape[2:]
    return F.conv3d(F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0)), conv.weight, conv.bias)


def ref_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(x.shape[1]) * norm.gamma


def ref_residual(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r = block.residual
    h = ref_conv(r[2], F.silu(ref_norm(r[0], x)))
    h = ref_conv(r[6], F.silu(ref_norm(r[3], h)))
    return h + (x if isinstance(block.shortcut, nn.Identity) else ref_conv(block.shortcut, x))


def ref_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    qkv = F.conv2d(ref_norm(block.norm, frames), block.to_qkv.weight, block.to_qkv.bias).flatten(2)
    q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]                     # [(b t), c, hw]
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)       # [(b t), hw, hw]
    out = (v @ attn.transpose(1, 2)).reshape(b * t, c, h, w)
    out = F.conv2d(out, block.proj.weight, block.proj.bias)
    return x + out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def ref_resample(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    conv = block.resample[1]
    if block.mode == "upsample3d" and x.shape[2] > 1:
        b, c, t, h, w = x.shape
        y = ref_conv(block.time_conv, x[:, :, 1:]).reshape(b, 2, c, t - 1, h, w)
        y = torch.stack([y[:, 0], y[:, 1]], dim=3).reshape(b, c, 2 * (t - 1), h, w)
        x = torch.cat([x[:, :, :1], y], dim=2)
    frames = x.transpose(1, 2).flatten(0, 1)
    if block.mode.startswith("upsample"):
        frames = frames.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        frames = F.conv2d(frames, conv.weight, conv.bias, padding=1)
    else:
        frames = F.conv2d(F.pad(frames, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    x = frames.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)
    if block.mode == "downsample3d":
        tc = block.time_conv
        if x.shape[2] > 1:
            x = torch.cat([x[:, :, :1], F.conv3d(x, tc.weight, tc.bias, stride=(2, 1, 1))], dim=2)
    return x


def ref_blocks(blocks, x):
    for block in blocks:
        kind = type(block).__name__
        x = {"ResidualBlock": ref_residual, "AttentionBlock": ref_attention, "Resample": ref_resample}[kind](block, x)
    return x


def ref_head(head, x):
    return ref_conv(head[2], F.silu(ref_norm(head[0], x)))


def ref_encode(vae, x):
    e = vae.encoder
    h = ref_head(e.head, ref_blocks(e.middle, ref_blocks(e.downsamples, ref_conv(e.conv1, x))))
    return ref_conv(vae.conv1, h)[:, :16]


def ref_decode(vae, z):
    d = vae.decoder
    h = ref_blocks(d.upsamples, ref_blocks(d.middle, ref_conv(d.conv1, ref_conv(vae.conv2, z))))
    return ref_head(d.head, h).clamp(-1, 1)


@pytest.mark.parametrize("frames", [1, 9, 17, 33])
def test_chunked_decode_equals_whole_sequence_reference(vae, frames):
    z = latent((frames - 1) // 4 + 1)
    with torch.no_grad():
        expected = ref_decode(vae, z)
    got = vae.decode(z)
    assert got.shape == expected.shape == (1, 3, frames, 32, 48)
    assert rel_l2(got, expected) <= 1e-5  # fp32 rounding only


@pytest.mark.parametrize("frames", [1, 17])
def test_chunked_encode_equals_whole_sequence_reference(vae, frames):
    x = video(frames, seed=frames)
    with torch.no_grad():
        expected = ref_encode(vae, x)
    got = vae.encode(x)
    assert got.shape == expected.shape == (1, 16, (frames - 1) // 4 + 1, 4, 6)
    assert rel_l2(got, expected) <= 1e-5


def test_batch_items_are_independent(vae):
    z = torch.cat([latent(2, seed=7), latent(2, seed=8)])
    both = vae.decode(z)
    assert rel_l2(both[1:], vae.decode(z[1:])) <= 1e-5  # fp32 rounding of batched kernels


# ----------------------------------------------------------------------------- tiling
def test_tile_weights_ramp_linearly_and_sum_to_one():
    spans = axis_spans(13, 5, 2)
    assert spans[0][0] == 0 and spans[-1][1] == 13
    assert all(a[1] - b[0] >= 2 for a, b in zip(spans, spans[1:]))
    tiles = plan_tiles(13, 9, (5, 4), (2, 1), scale=8)
    total = torch.zeros(13 * 8, 9 * 8)
    for tile in tiles:
        rows, cols = tile.region(8)
        total[rows, cols] += tile.weight
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    first = tiles[0].weight[0]  # along a row of the first tile: 1, then a falling linear ramp
    assert first[0] == 1 and first[-1] < 0.1
    ramp = first[first < 1]
    assert torch.allclose(ramp.diff(), ramp.diff()[:1].expand_as(ramp.diff()), atol=1e-6)
    assert plan_tiles(4, 6, (4, 6), (1, 1), scale=8)[0].weight is None


def _spatially_pointwise(vae: WanVAE, keep=()) -> WanVAE:
    """A copy whose 3×3 kernels keep only their centre tap (except modules in `keep`) and whose
    middle attentions are cut off (proj = 0): each output cell then sees only its own column."""
    local = randomize_(WanVAE(TINY))
    local.load_state_dict(vae.state_dict())
    kept = {id(m) for m in keep(local)} if keep else set()
    with torch.no_grad():
        for module in local.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)) and module.weight.shape[-1] == 3 \
                    and id(module) not in kept:
                centre = module.weight[..., 1:2, 1:2].clone()
                module.weight.zero_()[..., 1:2, 1:2] = centre
        for coder in (local.encoder, local.decoder):
            coder.middle[1].proj.weight.zero_()
    return local


def test_tiled_decode_and_encode_equal_untiled_for_a_pointwise_model(vae):
    local = _spatially_pointwise(vae)
    z = latent(3, h=6, w=9)
    assert rel_l2(local.decode(z, tile=(32, 40), overlap=(16, 8)), local.decode(z)) <= 1e-6  # 2×2 tiles
    x = video(5, 48, 72)
    assert rel_l2(local.encode(x, tile=(32, 48), overlap=(8, 16)), local.encode(x)) <= 1e-6  # 2×2 tiles


def test_tiled_decode_equals_untiled_away_from_seams(vae):
    """Only the last conv sees neighbours (1 px): errors can appear only inside the overlap bands."""
    local = _spatially_pointwise(vae, keep=lambda m: [m.decoder.head[2]])
    z = latent(2, h=6, w=9)
    tiles = plan_tiles(6, 9, (3, 5), (1, 2), scale=8)
    band = torch.zeros(48, 72, dtype=torch.bool)
    for tile in tiles:
        band[tile.region(8)] |= tile.weight < 1
    error = (local.decode(z, tile=(24, 40), overlap=(8, 16)) - local.decode(z)).abs().amax(dim=(0, 1, 2))
    assert error[~band].max() <= 1e-6
    assert error[band].max() > 1e-4  # the 1-px tile borders do leak into the seams


def test_a_tile_covering_everything_is_the_untiled_result(vae):
    z = latent(2)
    assert torch.equal(vae.decode(z, tile=64, overlap=8), vae.decode(z))
    x = video(5)
    assert torch.equal(vae.encode(x, tile=(32, 48)), vae.encode(x))


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_half_precision_weights(vae, dtype, tol):
    half = randomize_(WanVAE(TINY)).to(dtype)
    half.load_state_dict(vae.state_dict())
    x, z = video(5, 16, 24), latent(2, 2, 3)
    zh, yh = half.encode(x), half.decode(z)
    assert zh.dtype == yh.dtype == torch.float32  # outputs follow the input dtype
    assert rel_l2(zh, vae.encode(x)) <= tol and rel_l2(yh, vae.decode(z)) <= tol
    assert half.decode(z.to(dtype)).dtype == dtype


def test_outputs_are_ordinary_clamped_tensors(vae):
    y = vae.decode(latent(2))
    assert not y.is_inference() and not y.requires_grad
    assert y.abs().max() <= 1
    y.mul_(0.5)  # usable in place outside inference mode


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda v: v.encode(torch.zeros(3, 9, 32, 48)), r"`video` must be 5-D \[B, 3, F, H, W\], found 4-D"),
    (lambda v: v.encode(torch.zeros(1, 4, 9, 32, 48)), r"3 channels .* found 4"),
    (lambda v: v.encode(torch.zeros(1, 3, 8, 32, 48)), r"1 \+ 4·k frames .* found 8"),
    (lambda v: v.encode(torch.zeros(1, 3, 9, 30, 48)), r"multiples of 8, found 30×48"),
    (lambda v: v.encode(torch.zeros(1, 3, 9, 32, 48, dtype=torch.uint8)), r"floating-point .* torch.uint8"),
    (lambda v: v.encode([1, 2]), r"torch.Tensor .* found list"),
    (lambda v: v.decode(torch.zeros(1, 4, 2, 4, 6)), r"16 latent channels .* found 4"),
    (lambda v: v.decode(torch.zeros(1, 16, 4, 6)), r"`z` must be 5-D"),
    (lambda v: v.decode(torch.zeros(1, 16, 0, 4, 6)), r"empty"),
    (lambda v: v.decode(torch.zeros(1, 16, 2, 4, 6), tile=20), r"`tile` .* multiples of 8 .* found 20"),
    (lambda v: v.decode(torch.zeros(1, 16, 2, 4, 6), tile=(16, 0)), r"`tile` .* >= 8; found \(16, 0\)"),
    (lambda v: v.decode(torch.zeros(1, 16, 2, 4, 6), tile=16, overlap=16), r"overlap 16 px >= tile 16 px"),
    (lambda v: v.decode(torch.zeros(1, 16, 2, 4, 6), tile=16, overlap=-8), r"`overlap` .* >= 0; found -8"),
    (lambda v: v.encode(torch.zeros(1, 3, 1, 32, 48), overlap=8), r"`overlap` needs `tile`"),
])
def test_bad_input_gets_a_clear_error(vae, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(vae)


# ----------------------------------------------------------------------------- progress callback
def test_callback_counts_up_per_chunk_and_tile(vae):
    calls = []
    vae.decode(latent(3), callback=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()
    vae.encode(video(9), tile=(16, 24), overlap=0, callback=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 3 * 4) for i in range(1, 13)]  # 2×2 tiles × 3 chunks


def test_an_exception_in_the_callback_stops_decoding(vae):
    calls = []

    def cancel(done, total):
        calls.append(done)
        if done == 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError, match="cancelled"):
        vae.decode(latent(5), callback=cancel)
    assert calls == [1, 2]


# ----------------------------------------------------------------------------- training forward
def test_reconstruct_is_encode_then_decode_with_gradients():
    torch.manual_seed(0)
    model = WanVAE(VAEConfig(base_dim=4))
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    recon, mu = model.reconstruct(x)
    with torch.no_grad():
        z = model.encode(x)
        assert torch.equal(mu, z) and torch.equal(recon.clamp(-1, 1), model.decode(z))   # training: unclamped
    (recon - x).abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):   # a few steps on one clip lower the reconstruction error
        optimiser.zero_grad()
        loss = (model.reconstruct(x)[0] - x).abs().mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
