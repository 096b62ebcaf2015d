"""Batched synthesis: each item equals itself synthesised alone with the same noise; the receptive-field
bound holds; low-precision error is measured."""

from __future__ import annotations

import pytest
import torch

from waveflow_py.inference.precision import precision_error
from waveflow_py.inference.receptive import context_frames, receptive_field
from waveflow_py.inference.synthesis import batch_mels, run_inverse, synthesize


def test_receptive_field_bounds_the_influence_of_one_noise_sample(tiny_model) -> None:
    hop, r = tiny_model.hop_length, receptive_field(tiny_model)
    frames = 2 * context_frames(tiny_model) + 6
    mel, z = torch.randn(1, 6, frames), torch.randn(1, frames * hop)
    t = frames * hop // 2
    z2 = z.clone()
    z2[0, t] += 1.0
    diff = (run_inverse(tiny_model, z2, mel) - run_inverse(tiny_model, z, mel))[0].abs()
    changed = torch.nonzero(diff > 0).flatten()
    assert changed.numel() > 0 and changed.min() >= t - r and changed.max() <= t + r
    # the bound is not vacuous: the influence reaches a good part of it
    assert (changed.max() - changed.min()) > r // 4


@pytest.mark.parametrize("cached", [True, False])
def test_batch_items_equal_items_synthesised_alone(tiny_model, cached: bool) -> None:
    c = context_frames(tiny_model)
    lengths = [3 * c + 5, c // 2 + 1, 2 * c + 3, 3 * c + 5, 1]  # long, short, equal, 1 frame
    mels = [torch.randn(6, f) for f in lengths]
    audio, out_len = synthesize(
        tiny_model, mels, temperature=0.8, generator=torch.Generator().manual_seed(3), cached=cached
    )
    hop = tiny_model.hop_length
    assert out_len.tolist() == [f * hop for f in lengths] and audio.shape == (5, max(lengths) * hop)
    gen = torch.Generator().manual_seed(3)  # same generator, items one by one: the same noise slices
    for i, m in enumerate(mels):
        alone, n = synthesize(tiny_model, [m], temperature=0.8, generator=gen, cached=cached)
        assert n.item() == lengths[i] * hop
        torch.testing.assert_close(audio[i, : n.item()], alone[0], atol=2e-5, rtol=1e-5)
        assert torch.all(audio[i, n.item() :] == 0)


def test_without_tail_fix_padding_reaches_the_tail_only(tiny_model) -> None:
    hop, r = tiny_model.hop_length, receptive_field(tiny_model)
    c = context_frames(tiny_model)
    mel = torch.randn(2, 6, 4 * c)
    lengths = torch.tensor([4 * c, 2 * c])
    z = torch.randn(2, 4 * c * hop)
    loose, _ = synthesize(tiny_model, mel, lengths, z=z, exact=False)
    alone, _ = synthesize(tiny_model, mel[1:, :, : 2 * c], z=z[1:, : 2 * c * hop])
    end = 2 * c * hop
    torch.testing.assert_close(loose[1, : end - r], alone[0, : end - r], atol=2e-5, rtol=1e-5)
    assert (loose[1, end - r : end] - alone[0, end - r :]).abs().max() > 1e-4  # the padding leaked here


def test_batch_mels_validation(factories) -> None:
    with pytest.raises(ValueError, match="lengths"):
        batch_mels(torch.randn(2, 6, 5), [5, 6])
    with pytest.raises(ValueError, match="mels"):
        batch_mels([torch.randn(6)], None)
    mel, lengths = batch_mels([torch.randn(6, 2), torch.randn(1, 6, 4)], None)
    assert mel.shape == (2, 6, 4) and lengths.tolist() == [2, 4]
    with pytest.raises(ValueError, match="z"):
        synthesize(factories[1](), mel, z=torch.randn(2, 10))


def test_bf16_error_against_fp32_is_small_on_cpu(factories) -> None:
    for model in (factories[0](), factories[1]()):
        err = precision_error(
            model,
            torch.randn(2, 6, 12),
            torch.bfloat16,
            temperature=0.8,
            generator=torch.Generator().manual_seed(0),
        )
        assert err["rms_ref"] > 0.1
        assert err["rel_rms"] > 1e-4, err  # bf16 really ran (float32 would give the identical audio)
        assert err["snr_db"] >= 30.0, err


def test_exact_when_hop_is_not_a_multiple_of_n_group(factories) -> None:
    from waveflow_py.config import MelConfig

    mel_cfg = MelConfig(sample_rate=8000, n_fft=64, win_length=64, hop_length=12, n_mels=6, fmax=4000.0)
    model = factories[1](mel=mel_cfg)  # WaveGlow, groups of 4, hop 12 = 3 groups: aligned
    model8 = factories[1](mel=mel_cfg, n_group=8, n_early_size=2)  # hop 12 is not a multiple of 8
    for m in (model, model8):
        mels = [torch.randn(6, 9), torch.randn(6, 4)]
        audio, n = synthesize(m, mels, generator=torch.Generator().manual_seed(0))
        gen = torch.Generator().manual_seed(0)
        for i, mm in enumerate(mels):
            alone, k = synthesize(m, [mm], generator=gen)
            torch.testing.assert_close(audio[i, : k.item()], alone[0], atol=2e-5, rtol=1e-5)
