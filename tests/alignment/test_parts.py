"""The pieces of the alignment: colour transfers, the temporal smoother, shot cuts, deflicker gains."""
from __future__ import annotations

import torch

from alignment_clips import carphone, other_scene
from wan21_core.alignment import histogram, lab, mkl
from wan21_core.alignment.deflicker import deflicker_gains, mean_luma
from wan21_core.alignment.shots import shot_ids
from wan21_core.alignment.temporal import gaussian_weights, local_linear_kernel, smoothing_kernel


def frames_and_pixels(count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    frames = carphone(count)[:, ::2, ::2]
    return frames, frames.flatten(1, 2)


def test_transfers_to_their_own_statistics_are_identities():
    frames, pixels = frames_and_pixels()
    for method in (lab, mkl, histogram):
        stats = method.statistics(pixels)
        assert (method.transfer(frames, stats, stats) - frames).abs().max() < 2e-3, method.__name__


def test_mkl_and_histogram_undo_a_per_channel_gain_exactly():
    frames, pixels = frames_and_pixels()
    gained = frames * torch.tensor([0.9, 0.95, 0.8])
    for method in (mkl, histogram):
        restored = method.transfer(gained, method.statistics(gained.flatten(1, 2)), method.statistics(pixels))
        assert (restored - frames).abs().max() < 5e-3, method.__name__


def test_histogram_undoes_a_tone_curve():
    frames, pixels = frames_and_pixels()
    curved = frames ** 0.7
    restored = histogram.transfer(curved, histogram.statistics(curved.flatten(1, 2)), histogram.statistics(pixels))
    assert (restored - frames).abs().mean() < 2e-3


def test_mkl_matrix_maps_the_source_covariance_onto_the_target():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, 3, generator=g), torch.randn(4, 3, 3, generator=g)
    cov_src, cov_tgt = a @ a.transpose(1, 2) + 0.1 * torch.eye(3), b @ b.transpose(1, 2) + 0.1 * torch.eye(3)
    matrix = mkl.mkl_matrix(cov_src, cov_tgt)
    assert torch.allclose(matrix, matrix.transpose(1, 2), atol=1e-5)
    assert torch.allclose(matrix @ cov_src @ matrix.transpose(1, 2), cov_tgt, atol=1e-4)


def test_local_linear_kernel_keeps_linear_trends_up_to_the_ends_and_cuts():
    shots = torch.tensor([0] * 12 + [1] * 9)
    kernel = local_linear_kernel(gaussian_weights(21, 4, shots))
    trend = torch.arange(21, dtype=torch.float32) * 0.3 + 5 * shots          # a ramp with a jump at the cut
    assert torch.allclose(kernel.sum(1), torch.ones(21), atol=1e-5)
    assert torch.allclose(kernel @ trend, trend, atol=1e-4)
    assert kernel[:12, 12:].abs().max() == 0 and kernel[12:, :12].abs().max() == 0


def test_robust_kernel_ignores_a_flash_frame():
    signal = torch.zeros(21, 3)
    signal[10] = 1.0                                                          # one flash
    signal += 0.01 * torch.randn(21, 3, generator=torch.Generator().manual_seed(0))
    kernel = smoothing_kernel(signal, 6, torch.zeros(21, dtype=torch.long))
    smooth = kernel @ signal
    assert smooth[10].abs().max() < 0.05 and smooth[9].abs().max() < 0.05    # not pulled up by the flash


def test_shot_cuts_are_found_and_flicker_is_not_a_cut():
    clip = carphone(12)
    other = other_scene(clip)
    flickering = clip * torch.linspace(0.7, 1.0, 12)[:, None, None, None]
    assert shot_ids(torch.cat([clip[:6], other[6:]])).tolist() == [0] * 6 + [1] * 6
    assert shot_ids(flickering).tolist() == [0] * 12
    assert shot_ids(torch.zeros(4, 8, 8, 3)).tolist() == [0] * 4               # flat frames never cut


def test_deflicker_gains_equalise_mean_luma():
    clip = carphone(9)
    gains = torch.tensor([1.0, 1.1, 0.9] * 3)
    flickering = clip * gains[:, None, None, None]
    result = deflicker_gains(flickering, 1, torch.zeros(9, dtype=torch.long))
    assert result.shape == (9,)
    steady = mean_luma(flickering * result[:, None, None, None])
    assert (steady[1:-1] - mean_luma(clip)[1:-1]).abs().max() < 0.03 * mean_luma(clip).max()
