"""The compiled bf16 softmax of the CPU attention (wan21_core/cpu_softmax.py) against torch.softmax."""
import platform
import shutil

import pytest
import torch

from wan21_core import cpu_softmax
from wan21_core.attention import attention

needs_compiler = pytest.mark.skipif(platform.system() != "Linux" or cpu_softmax._compiler() is None,
                                    reason="the kernel is built on Linux with a C compiler")


def within_one_rounding(out: torch.Tensor, exact: torch.Tensor) -> bool:
    """Every bf16 output within one bf16 rounding (2^-8 relative, with margin 2×) of the exact fp32 value."""
    return bool(((out.float() - exact).abs() <= exact * 2**-7 + 1e-7).all())


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel, reason = cpu_softmax.load_kernel(cache_dir=tmp_path_factory.mktemp("kernels"))
    assert kernel is not None, reason
    return kernel


@needs_compiler
def test_default_kernel_builds_here_and_is_used(monkeypatch):
    assert cpu_softmax.default_kernel() is not None, cpu_softmax._state.get("reason")
    calls = []
    monkeypatch.setattr(cpu_softmax.SoftmaxKernel, "run", lambda self, s, b: calls.append(s.shape))
    cpu_softmax.softmax_(torch.zeros(3, 4, dtype=torch.bfloat16))
    assert calls == [(3, 4)]


@needs_compiler
@pytest.mark.parametrize("shape,spread", [((5, 1), 1.0), ((7, 17), 1.0), ((3, 40, 2100), 4.0), ((4, 300), 60.0)])
def test_kernel_matches_the_exact_softmax(kernel, shape, spread):
    g = torch.Generator().manual_seed(shape[-1])
    scores = (torch.randn(shape, generator=g) * spread).to(torch.bfloat16)
    exact = torch.softmax(scores.float(), dim=-1)
    kernel.run(scores, None)
    assert within_one_rounding(scores, exact)
    assert torch.allclose(scores.float().sum(-1), torch.ones(shape[:-1]), atol=shape[-1] * 2**-8)


@needs_compiler
def test_kernel_adds_the_bias_in_fp32(kernel):
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(6, 98, generator=g).to(torch.bfloat16)
    bias = torch.zeros(98)
    bias[-1] = 5.9914645                                   # log(400): one key standing for 400 equal ones
    exact = torch.softmax(scores.float() + bias, dim=-1)
    kernel.run(scores, bias)
    assert within_one_rounding(scores, exact)
    assert float(scores[:, -1].float().min()) > 0.3        # without the bias it would be about 1/98


@needs_compiler
def test_equal_logits_and_huge_gaps_stay_exact(kernel):
    scores = torch.zeros(2, 64, dtype=torch.bfloat16)
    scores[1, 0] = 1000.0                                  # every other term is below 2^-100: zero after rounding
    kernel.run(scores, None)
    assert torch.equal(scores[0], torch.full((64,), 1 / 64, dtype=torch.bfloat16))
    assert scores[1, 0] == 1.0 and float(scores[1, 1:].float().max()) < 1e-29


def test_other_inputs_go_through_torch_softmax():
    g = torch.Generator().manual_seed(4)
    for scores in (torch.randn(5, 33, generator=g),                                  # fp32
                   torch.randn(33, 5, generator=g).to(torch.bfloat16).t()):          # not contiguous
        bias = torch.randn(33, generator=g)
        expected = torch.softmax(scores + bias.to(scores.dtype), dim=-1)
        assert torch.equal(cpu_softmax.softmax_(scores, bias), expected)


def test_disabled_kernel_falls_back_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("WAN21_CPU_KERNELS", "0")
    assert cpu_softmax.load_kernel(cache_dir=tmp_path) == (None, "WAN21_CPU_KERNELS=0")


@needs_compiler
def test_a_failing_compiler_is_reported_not_raised(tmp_path):
    kernel, reason = cpu_softmax.load_kernel(compiler=shutil.which("false"), cache_dir=tmp_path)
    assert kernel is None and "failed (exit 1)" in reason
    assert list(tmp_path.iterdir()) == []                  # nothing half-written left behind


@needs_compiler
def test_build_is_reused(tmp_path):
    compiler = cpu_softmax._compiler()
    first = cpu_softmax.build(compiler, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert cpu_softmax.build(compiler, tmp_path) == first and first.stat().st_mtime_ns == stamp


def test_bf16_attention_with_the_kernel_matches_sdpa():
    """The whole blocked bf16 attention (text bias included) stays as close to fp32 as SDPA in bf16."""
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
