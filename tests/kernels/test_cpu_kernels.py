"""The compiled bf16 CPU kernels (wan21_core/cpu_kernels.py): softmax and LayerNorm against torch."""
import os
import platform
import shutil

import pytest
import torch

from wan21_core.kernels import cpu as cpu_kernels
from wan21_core.models.dit.attention import attention
from wan21_core.models.dit.ops import head_major_empty
from wan21_core.models.dit.rope import rope_table

needs_compiler = pytest.mark.skipif(
    platform.system() != "Linux" or cpu_kernels._compiler() is None or os.environ.get("WAN21_CPU_KERNELS") == "0",
    reason="the kernels are built on Linux with a C compiler, unless WAN21_CPU_KERNELS=0")


def within_one_rounding(out: torch.Tensor, exact: torch.Tensor) -> bool:
    """Every bf16 output within one bf16 rounding (2^-8 relative, with margin 2×) of the exact fp32 value."""
    return bool(((out.float() - exact).abs() <= exact * 2**-7 + 1e-7).all())


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    kernels, reason = cpu_kernels.load_kernels(cache_dir=tmp_path_factory.mktemp("kernels"))
    assert kernels is not None, reason
    return kernels


@needs_compiler
def test_default_kernels_build_here_and_are_used(monkeypatch):
    assert cpu_kernels.default_kernels() is not None, cpu_kernels._state.get("reason")
    calls = []
    monkeypatch.setattr(cpu_kernels.CpuKernels, "softmax_", lambda self, s, b: calls.append(s.shape))
    monkeypatch.setattr(cpu_kernels.CpuKernels, "layer_norm", lambda self, x, *args: calls.append(x.shape))
    cpu_kernels.softmax_(torch.zeros(3, 4, dtype=torch.bfloat16))
    cpu_kernels.layer_norm_bf16(torch.zeros(5, 6), 1e-6)
    assert calls == [(3, 4), (5, 6)]


@needs_compiler
@pytest.mark.parametrize("shape,spread", [((5, 1), 1.0), ((7, 17), 1.0), ((3, 40, 2100), 4.0), ((4, 300), 60.0),
                                          ((2, 40000), 3.0)])
def test_kernel_matches_the_exact_softmax(kernels, shape, spread):
    g = torch.Generator().manual_seed(shape[-1])
    scores = (torch.randn(shape, generator=g) * spread).to(torch.bfloat16)
    exact = torch.softmax(scores.float(), dim=-1)
    kernels.softmax_(scores, None)
    assert within_one_rounding(scores, exact)
    assert torch.allclose(scores.float().sum(-1), torch.ones(shape[:-1]), atol=2**-7)   # each term within 2^-8 of itself


@needs_compiler
def test_kernel_adds_the_bias_in_fp32(kernels):
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(6, 98, generator=g).to(torch.bfloat16)
    bias = torch.zeros(98)
    bias[-1] = 5.9914645                                   # log(400): one key standing for 400 equal ones
    exact = torch.softmax(scores.float() + bias, dim=-1)
    kernels.softmax_(scores, bias)
    assert within_one_rounding(scores, exact)
    assert float(scores[:, -1].float().min()) > 0.3        # without the bias it would be about 1/98


@needs_compiler
def test_equal_logits_and_huge_gaps_stay_exact(kernels):
    scores = torch.zeros(2, 64, dtype=torch.bfloat16)
    scores[1, 0] = 1000.0                                  # every other term is below 2^-100: zero after rounding
    kernels.softmax_(scores, None)
    assert torch.equal(scores[0], torch.full((64,), 1 / 64, dtype=torch.bfloat16))
    assert scores[1, 0] == 1.0 and float(scores[1, 1:].float().max()) < 1e-29


@needs_compiler
@pytest.mark.parametrize("rows,cols,affine", [(1, 1, False), (7, 96, True), (2100, 512, True), (33, 1280, False)])
def test_layer_norm_kernel_matches_torch(kernels, rows, cols, affine):
    g = torch.Generator().manual_seed(cols)
    x = torch.randn(rows, cols, generator=g) * 4 + 3
    weight, bias = (torch.randn(cols, generator=g), torch.randn(cols, generator=g)) if affine else (None, None)
    exact = torch.nn.functional.layer_norm(x.double(), (cols,), *(None if t is None else t.double()
                                                                  for t in (weight, bias)), 1e-6)
    got = kernels.layer_norm(x, 1e-6, weight, bias)
    assert got.dtype == torch.bfloat16 and got.shape == x.shape
    assert bool(((got.double() - exact).abs() <= exact.abs() * 2**-8 + 1e-5).all())
    rounded = torch.nn.functional.layer_norm(x, (cols,), weight, bias, 1e-6).to(torch.bfloat16)
    assert (got != rounded).float().mean() < 1e-3          # the same bf16 value, but for rare rounding ties


@needs_compiler
@pytest.mark.parametrize("rotate", [True, False])
def test_rms_rope_kernel_writes_the_torch_result_into_a_head_major_buffer(kernels, rotate):
    rows, heads, head_dim, length = 50, 3, 128, 80
    g = torch.Generator().manual_seed(7)
    y = (torch.randn(rows, heads * head_dim, generator=g) * 5).to(torch.bfloat16)
    weight = torch.rand(heads * head_dim, generator=g) + 0.5
    turns = rope_table((5, 4, 4), head_dim, torch.device("cpu"))[10:10 + rows] if rotate else None
    buffer = head_major_empty(1, length, heads, head_dim, torch.bfloat16, torch.device("cpu"))[0]   # [L, N, d]
    buffer.fill_(7.0)
    kernels.rms_rope_(buffer[20:20 + rows], y, weight, 1e-6, turns)
    exact = y.double() * torch.rsqrt(y.double().square().mean(-1, keepdim=True) + 1e-6) * weight.double()
    exact = exact.unflatten(-1, (heads, head_dim))
    if rotate:
        exact = torch.view_as_real(torch.view_as_complex(exact.unflatten(-1, (-1, 2))) * turns.to(torch.complex128))
        exact = exact.flatten(-2)
    got = buffer[20:20 + rows].double()
    assert bool(((got - exact).abs() <= exact.abs() * 2**-8 + 1e-6).all())
    assert bool((buffer[:20] == 7.0).all() and (buffer[20 + rows:] == 7.0).all())       # nothing else touched


def test_layer_norm_fallback_is_torch_for_other_inputs():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(8, 12, 2, generator=g)[:, :, 0]                                   # not contiguous
    weight, bias = torch.randn(12, generator=g), torch.randn(12, generator=g)
    expected = torch.nn.functional.layer_norm(x, (12,), weight, bias, 1e-6).to(torch.bfloat16)
    assert torch.equal(cpu_kernels.layer_norm_bf16(x, 1e-6, weight, bias), expected)


def test_other_inputs_go_through_torch_softmax():
    g = torch.Generator().manual_seed(4)
    for scores in (torch.randn(5, 33, generator=g),                                  # fp32
                   torch.randn(33, 5, generator=g).to(torch.bfloat16).t()):          # not contiguous
        bias = torch.randn(33, generator=g)
        expected = torch.softmax(scores + bias.to(scores.dtype), dim=-1)
        assert torch.equal(cpu_kernels.softmax_(scores, bias), expected)


def test_disabled_kernel_falls_back_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("WAN21_CPU_KERNELS", "0")
    assert cpu_kernels.load_kernels(cache_dir=tmp_path) == (None, "WAN21_CPU_KERNELS=0")


def test_kernels_are_not_built_where_they_could_not_share_torchs_thread_pool(monkeypatch, tmp_path):
    monkeypatch.delenv("WAN21_CPU_KERNELS", raising=False)
    monkeypatch.setattr(cpu_kernels.platform, "system", lambda: "Windows")
    assert cpu_kernels.load_kernels(cache_dir=tmp_path)[1].startswith("the compiled kernel is built on Linux only")
    monkeypatch.setattr(cpu_kernels.platform, "system", lambda: "Linux")
    monkeypatch.setattr(torch.__config__, "parallel_info", lambda: "ATen parallel backend: native thread pool")
    assert cpu_kernels.load_kernels(cache_dir=tmp_path) == (None, "torch's parallel backend is not OpenMP")
    assert list(tmp_path.iterdir()) == []


@needs_compiler
def test_a_failing_compiler_is_reported_not_raised(tmp_path):
    kernel, reason = cpu_kernels.load_kernels(compiler=shutil.which("false"), cache_dir=tmp_path)
    assert kernel is None and "failed (exit 1)" in reason
    assert list(tmp_path.iterdir()) == []                  # nothing half-written left behind


@needs_compiler
def test_build_is_reused(tmp_path):
    compiler = cpu_kernels._compiler()
    first = cpu_kernels.build(compiler, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cpu_kernels.build(compiler, tmp_path) == first and first.stat().st_mtime_ns == stamp


@needs_compiler
def test_bf16_attention_with_the_kernel_matches_sdpa():
    """The whole blocked bf16 attention (text bias included) stays as close to fp32 as SDPA in bf16.

    (Without the kernel the bias is added to the bf16 scores, which rounds a biased key's logit;
    that path lands at about 1.5× SDPA's error on this input.)"""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, n, 2, 128, generator=g) for n in (300, 200, 200))
    bias = torch.zeros(2, 200)
    bias[:, 150] = 3.9
    bias[:, 151:] = -torch.inf
    exact = attention(q, k, v, backend="sdpa", key_bias=bias)
    q16, k16, v16 = (t.to(torch.bfloat16) for t in (q, k, v))
    errors = [float((attention(q16, k16, v16, backend=b, key_bias=bias).float() - exact).norm() / exact.norm())
              for b in ("blocked", "sdpa")]
    assert errors[0] <= 1.25 * errors[1], errors
