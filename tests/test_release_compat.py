"""Releases written before a change load and sample as they did: the audio of two committed releases (the
WaveGlow preview bundled until 2026-12-04, with its excitation levelling, now the wg64 resume point, and
the WaveFlow resume point) from a fixed mel and noise seed, against fixtures made with the code of
b351f6d.

The fixtures were written on the development machine; the tolerance (1e-4 of the peak) only allows for
float32 GEMM kernels that differ between CPUs; on the machine that wrote them the audio is identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from waveflow_py.inference import synthesize
from waveflow_py.pretrained import load_release

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "release_samples.npz"
# release -> its key in the fixtures: the WaveGlow preview bundled until 2026-12-04 is kept verbatim as
# the wg64 lineage's resume point
RELEASES = {
    "recipes/librispeech-mini/bakeoff/resume/wg64-pitch-latest": "universal-16k-preview",
    "recipes/librispeech-mini/bakeoff/resume/universal-16k-pitch-latest": "universal-16k-pitch-latest",
}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_old_release_samples_as_before(release: str) -> None:
    data = np.load(FIXTURES)
    key = RELEASES[release]
    model, info = load_release(ROOT / release)
    mel = torch.from_numpy(data[f"{key}/mel"])[None]
    temperature = float(data[f"{key}/temperature"])
    assert (info.temperature if info.temperature is not None else 0.6) == temperature
    audio, _ = synthesize(model, mel, temperature=temperature, generator=torch.Generator().manual_seed(7))
    expected = data[f"{key}/audio"]
    peak = float(np.abs(expected).max())
    assert peak > 0
    np.testing.assert_allclose(audio[0].numpy(), expected, rtol=0, atol=1e-4 * peak)


def test_the_bundled_preview_samples_with_its_projection_as_before() -> None:
    """``universal-16k-preview`` as bundled (its sampling block: the mel projection with 16 phase-locked
    iterations and no ``projection_fit`` key) gives the audio it gave before the fitted magnitude existed:
    fixture written with the code of 4cca403, the fixture mel above, noise seed 7."""
    mel = torch.from_numpy(np.load(FIXTURES)["universal-16k-preview/mel"])[None]
    expected = np.load(ROOT / "tests" / "fixtures" / "preview_projected.npz")["audio"]
    model, info = load_release(ROOT / "pretrained" / "universal-16k-preview")
    assert info.sampling.projection_iters == 16 and info.sampling.projection_fit == 0
    audio, _ = synthesize(model, mel, generator=torch.Generator().manual_seed(7))
    peak = float(np.abs(expected).max())
    np.testing.assert_allclose(audio[0].numpy(), expected, rtol=0, atol=1e-4 * peak)
