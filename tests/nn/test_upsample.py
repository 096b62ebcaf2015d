"""Mel upsampler: hop factorisation and output length."""

from __future__ import annotations

import math

import pytest
import torch

from waveflow_py.nn.upsample import MelUpsampler, factor_hop


@pytest.mark.parametrize("hop", [256, 200, 275, 300, 251, 16, 1])
def test_factor_hop_multiplies_to_hop(hop: int) -> None:
    scales = factor_hop(hop)
    assert math.prod(scales) == hop
    assert len(scales) <= 2


def test_factor_hop_paper_setting() -> None:
    assert factor_hop(256) == [16, 16]


@pytest.mark.parametrize("scales", [[16, 16], [10, 20], [11, 25], [4]])
def test_output_covers_frames_times_hop(scales: list[int]) -> None:
    up = MelUpsampler(scales)
    mel = torch.randn(2, 6, 7)
    out = up(mel)
    assert out.shape == (2, 6, 7 * math.prod(scales))
    assert torch.isfinite(out).all()
    # frames far apart do not interact: changing the last frame leaves the first samples alone
    mel2 = mel.clone()
    mel2[..., -1] += 5.0
    n = 4 * math.prod(scales)
    torch.testing.assert_close(up(mel2)[..., :n], out[..., :n])


def test_bad_scales() -> None:
    with pytest.raises(ValueError):
        MelUpsampler([])
    with pytest.raises(ValueError):
        factor_hop(0)
