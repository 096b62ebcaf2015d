"""The mel projection post-filter (``SamplingConfig.mel_projection``, :func:`project_to_mel`): its step equals
a direct computation, strength 0 is the identity, chunks and streams equal one pass, synthesis applies it
per item as if alone, releases store it, and bad settings are errors."""

from __future__ import annotations

import math

import pytest
import torch

from tests.inference.conftest import close_to_peak, mel_and_noise, tiny_waveglow
from waveflow_py.audio import MelSpectrogram
from waveflow_py.audio.mel import mel_filter_bank
from waveflow_py.config import MelConfig, SourceFilterConfig, mel_preset
from waveflow_py.inference.projection import FIT_LOCK_HZ, ProjectionStream, mel_magnitude, project_to_mel
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.inference.synthesis import synthesize
from waveflow_py.sampling import SamplingConfig, check_for_model, inert_settings, resolve_sampling
from waveflow_py.vocoder import Vocoder

CFG = mel_preset("16k", n_fft=256, win_length=256, hop_length=64, n_mels=20)


def _signals(seconds: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * CFG.sample_rate) // CFG.hop_length * CFG.hop_length
    t = torch.arange(n) / CFG.sample_rate
    tone = sum(torch.sin(2 * torch.pi * k * 140.0 * t) / k for k in range(1, 20))
    target = (tone + 0.05 * torch.randn(n, generator=gen))[None].float()
    return 0.1 * torch.randn(2, n, generator=gen), MelSpectrogram(CFG)(target).expand(2, -1, -1)


def _streamed(stream: ProjectionStream, audio: torch.Tensor, mel: torch.Tensor, step: int) -> torch.Tensor:
    """``audio`` and its mel pushed ``step`` frames at a time (the mel's extra last frame with the last
    piece), then flushed: everything the stream returned."""
    hop, out = CFG.hop_length, []
    frames = audio.shape[1] // hop
    for a in range(0, frames, step):
        b = min(a + step, frames)
        out.append(stream.push(audio[:, a * hop : b * hop], mel[..., a:b] if b < frames else mel[..., a:]))
    out.append(stream.flush())
    return torch.cat(out, dim=1)


def test_one_pass_equals_a_direct_computation() -> None:
    audio, mel = _signals()
    window = torch.hann_window(CFG.n_fft, dtype=torch.float64)
    y = torch.stft(audio.double(), CFG.n_fft, CFG.hop_length, window=window, return_complex=True)
    target = mel_magnitude(mel, CFG)
    frames = target.shape[-1]
    seen = torch.from_numpy(mel_filter_bank(CFG).sum(axis=0) > 0)
    for s in (1.0, 0.6):
        mag = y.abs()
        new = mag.clone()
        new[..., :frames] = mag[..., :frames] ** (1 - s) * target**s
        new[:, ~seen] = mag[:, ~seen]  # bins no filter covers keep the sample's magnitude
        direct = torch.istft(new * y / mag, CFG.n_fft, CFG.hop_length, window=window, length=audio.shape[1])
        close_to_peak(project_to_mel(audio, mel, CFG, s), direct.float(), rel=1e-5)  # float32 work
        close_to_peak(project_to_mel(audio.double(), mel, CFG, s).float(), direct.float())  # float64 work


def test_the_magnitude_is_the_mels_pseudo_inverse() -> None:
    _, mel = _signals()
    target = mel_magnitude(mel[:1], CFG)  # (1, bins, F) >= 0, and the filter bank maps it back to the mel
    assert target.shape == (1, CFG.n_fft // 2 + 1, mel.shape[-1]) and bool((target >= 0).all())
    basis = torch.from_numpy(mel_filter_bank(CFG)).double()
    back = torch.log((basis @ target[0]).clamp_min(CFG.clamp))
    assert float((back - mel[0].double()).abs().mean()) < 0.1  # NNLS: close, not exact (ln units)


def test_projection_moves_the_mel_towards_the_target_and_off_is_the_identity() -> None:
    audio, mel = _signals()
    fn = MelSpectrogram(CFG)
    before = (fn(audio) - mel).abs().mean()
    after = (fn(project_to_mel(audio, mel, CFG, 1.0)) - mel).abs().mean()
    assert float(after) < 0.5 * float(before)
    assert project_to_mel(audio, mel, CFG, 0.0) is audio and project_to_mel(audio, mel, CFG, None) is audio
    tiny = project_to_mel(audio, mel, CFG, 1e-12)  # the STFT round trip: perfect reconstruction
    close_to_peak(tiny, audio)


def test_chunks_equal_one_pass() -> None:
    audio, mel = _signals(seconds=1.3)
    one = project_to_mel(audio, mel, CFG, 0.8)
    close_to_peak(project_to_mel(audio, mel, CFG, 0.8, chunk_frames=7), one)
    cut = audio[:, :-37]  # a length that is not a whole number of chunks (nor of frames)
    close_to_peak(project_to_mel(cut, mel, CFG, 0.8, chunk_frames=5), project_to_mel(cut, mel, CFG, 0.8))


def test_a_stream_of_pieces_equals_one_pass() -> None:
    audio, mel = _signals(seconds=0.8)
    hop = CFG.hop_length
    one = project_to_mel(audio, mel, CFG, 0.9)
    stream = ProjectionStream(CFG, 0.9)
    cuts = [0, 3, 4, 40, 41, 90, audio.shape[1] // hop]  # frames per push: 3, 1, 36, 1, 49, the rest
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        mel_part = mel[..., a:b] if b < cuts[-1] else mel[..., a:]  # the mel has one frame more: at the end
        out.append(stream.push(audio[:, a * hop : b * hop], mel_part))
    assert sum(p.shape[1] for p in out) < audio.shape[1]  # it lags: the last margin waits for the end
    out.append(stream.flush())
    close_to_peak(torch.cat(out, dim=1), one)
    assert stream.push(audio[:, :hop], None).shape == (2, 0)  # no mel yet: nothing is final
    stream.reset()


def test_streaming_synthesis_equals_offline() -> None:
    model = tiny_waveglow(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4))
    mel, z = mel_and_noise(model, 50)
    hop = model.hop_length
    settings = SamplingConfig(temperature=0.9, mel_projection=1.0)
    offline, _ = synthesize(model, mel, z=z, sampling=settings, max_frames=None)
    stream = StreamingSynthesizer(model, chunk_frames=4, sampling=settings)
    pieces = [
        stream.push(mel[:, :, a:b], z[:, a * hop : b * hop]) for a, b in [(0, 7), (7, 8), (8, 30), (30, 50)]
    ]
    pieces.append(stream.flush())
    close_to_peak(torch.cat(pieces, dim=1), offline, rel=1e-5)


def test_griffin_lim_iterations_chunk_stream_and_converge() -> None:
    audio, mel = _signals(seconds=1.0)
    fn = MelSpectrogram(CFG)
    one = project_to_mel(audio, mel, CFG, 1.0, iters=3)
    close_to_peak(project_to_mel(audio, mel, CFG, 1.0, iters=3, chunk_frames=9), one, rel=1e-5)
    close_to_peak(_streamed(ProjectionStream(CFG, 1.0, iters=3), audio, mel, 23), one, rel=1e-5)
    # the iterations keep the sample's phase below lock_hz: locked everywhere, they change nothing
    close_to_peak(
        project_to_mel(audio, mel, CFG, 1.0, iters=3, lock_hz=CFG.sample_rate),
        project_to_mel(audio, mel, CFG, 1.0),
    )
    unlocked = project_to_mel(audio, mel, CFG, 1.0, iters=3, lock_hz=0.0)
    assert float((unlocked - one).abs().max()) > 1e-3 * float(one.abs().max())  # the default lock acts
    # each iteration makes the signal's own magnitude closer to the one it is given
    err = [float((fn(project_to_mel(audio, mel, CFG, 1.0, iters=k)) - mel).abs().mean()) for k in (0, 2, 8)]
    assert err[2] < err[1] < err[0]


def test_synthesis_projects_each_item_as_if_alone() -> None:
    model = tiny_waveglow(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4))
    mel, z = mel_and_noise(model, 40)
    settings = SamplingConfig(temperature=0.9, mel_projection=1.0)
    plain, _ = synthesize(model, mel, z=z, sampling=SamplingConfig(temperature=0.9))
    batch, _ = synthesize(model, mel, lengths=[40, 25], z=z, sampling=settings)
    alone, _ = synthesize(model, mel[1:, :, :25], z=z[1:, : 25 * model.hop_length], sampling=settings)
    close_to_peak(batch[1, : alone.shape[1]], alone[0], rel=1e-5)  # float32 STFTs
    assert bool((batch[1, 25 * model.hop_length :] == 0).all())
    direct = project_to_mel(plain[:1], mel[:1], model.config.mel, 1.0)
    close_to_peak(batch[0], direct[0], rel=1e-5)
    chunked, _ = synthesize(model, mel, z=z, sampling=settings, max_frames=16)
    close_to_peak(chunked, synthesize(model, mel, z=z, sampling=settings, max_frames=None)[0], rel=1e-5)


def test_settings_are_checked_and_stored() -> None:
    assert SamplingConfig(mel_projection=0).mel_projection is None  # 0 is off
    assert SamplingConfig(projection_iters=16.0).projection_iters == 16
    for bad_iters in (-1, 2.5, 10_000, True, "x"):
        with pytest.raises(ValueError, match="projection_iters"):
            SamplingConfig(projection_iters=bad_iters)  # type: ignore[arg-type]
    assert inert_settings(SamplingConfig(projection_iters=4)) == [
        "projection_iters 4 has no effect without mel_projection"
    ]
    assert resolve_sampling(SamplingConfig(mel_projection=0.5), mel_projection="off").mel_projection is None
    assert SamplingConfig.from_dict({"mel_projection": 1}).to_dict()["mel_projection"] == 1.0
    for bad in (1.5, -0.1, float("nan"), True, "x"):
        with pytest.raises(ValueError, match="mel_projection"):
            SamplingConfig(mel_projection=bad)  # type: ignore[arg-type]
    hifigan = tiny_waveglow(mel=MelConfig(**{**tiny_waveglow().config.mel.__dict__, "padding": "hifigan"}))
    with pytest.raises(ValueError, match="centred mel frames"):
        check_for_model(SamplingConfig(mel_projection=1.0), hifigan.config)
    audio, mel = _signals()
    with pytest.raises(ValueError, match="audio \\(B, T\\)"):
        project_to_mel(audio[0], mel, CFG)


def _release_vocoder(tmp_path, settings: SamplingConfig) -> tuple[Vocoder, torch.Tensor]:
    """A tiny envelope-prior model saved as a release with ``settings``, loaded as a Vocoder, and a mel."""
    from waveflow_py.pretrained import load_release, save_release

    model = tiny_waveglow(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4))
    save_release(tmp_path / "rel", model, provenance={"note": "test release"}, sampling=settings)
    voc = Vocoder(*load_release(tmp_path / "rel"))
    mel = voc.mel(0.1 * torch.randn(1, 30 * model.hop_length, generator=torch.Generator().manual_seed(2)))
    return voc, mel


def test_a_release_stores_and_applies_it(tmp_path) -> None:
    voc, mel = _release_vocoder(tmp_path, SamplingConfig(temperature=0.9, mel_projection=0.7))
    assert voc.info is not None and voc.info.sampling.mel_projection == 0.7
    model = voc.model
    out = voc.vocode(mel, generator=torch.Generator().manual_seed(3))
    voc.projection_iters = 2
    assert voc.projection_iters == 2 and voc.sampling.mel_projection == 0.7
    voc.projection_iters = 0
    voc.mel_projection = "off"
    assert voc.mel_projection is None
    raw = voc.vocode(mel, generator=torch.Generator().manual_seed(3))
    close_to_peak(out, project_to_mel(raw, mel, model.config.mel, 0.7), rel=1e-5)


# ---------------------------------------------------------------- the fitted magnitude (projection_fit)
def _fitted_direct(
    audio: torch.Tensor, mel: torch.Tensor, s: float, iters: int, fit: int, locked: int
) -> torch.Tensor:
    """Mel-constrained Griffin-Lim written out in float64 (module docstring of projection.py)."""
    from waveflow_py.inference.projection import FIRST_FIT_UPDATES

    window = torch.hann_window(CFG.n_fft, dtype=torch.float64)
    kw = {"n_fft": CFG.n_fft, "hop_length": CFG.hop_length, "window": window, "return_complex": True}
    basis = torch.from_numpy(mel_filter_bank(CFG)).double()
    seen = basis.sum(0) > 0
    linear_mel = mel.double().exp()  # the 16k preset: natural log of a magnitude mel
    y = torch.stft(audio.double(), pad_mode="reflect", **kw)
    frames = mel.shape[-1]

    def target(mag: torch.Tensor, updates: int) -> torch.Tensor:
        tiny = torch.finfo(torch.float64).tiny  # bins no filter covers: 0 / tiny, not 0 / 0
        x = mag[..., :frames].clamp_min(tiny)
        for _ in range(updates):  # W x -> the mel, per frame, from the given magnitude
            x = x * (basis.T @ linear_mel) / (basis.T @ (basis @ x) + tiny)
        x = mag[..., :frames] ** (1 - s) * x**s
        out = mag.clone()  # bins no filter covers, frames past the mel: not constrained
        out[:, seen, :frames] = x[:, seen]
        return out

    spec, prev = y / y.abs() * target(y.abs(), FIRST_FIT_UPDATES), None
    for _ in range(iters):
        z = torch.stft(
            torch.istft(spec, CFG.n_fft, CFG.hop_length, window=window, length=audio.shape[1]),
            **{**kw, "pad_mode": "reflect"},
        )
        step = z if prev is None else z - 0.99 / 1.99 * prev
        goal = target(z.abs(), fit)
        prev, spec = z, step / step.abs() * goal
        spec[:, :locked] = goal[:, :locked] * y[:, :locked] / y[:, :locked].abs()  # the sample's phase
    return torch.istft(spec, CFG.n_fft, CFG.hop_length, window=window, length=audio.shape[1])


def test_the_fitted_magnitude_equals_a_direct_computation() -> None:
    audio, mel = _signals(seconds=0.4)
    bin_hz = CFG.sample_rate / CFG.n_fft
    for s, iters, fit, lock in (
        (1.0, 0, 1, 0.0),
        (1.0, 3, 2, 0.0),
        (0.6, 2, 1, 3 * bin_hz),
        (1.0, 2, 1, None),
    ):
        locked = 3 if lock else math.ceil(FIT_LOCK_HZ / bin_hz) if lock is None else 0  # None: the default
        direct = _fitted_direct(audio, mel, s, iters, fit, locked)
        got = project_to_mel(audio.double(), mel, CFG, s, iters=iters, fit=fit, lock_hz=lock)
        close_to_peak(got, direct, rel=1e-6)
        single = project_to_mel(audio, mel, CFG, s, iters=iters, fit=fit, lock_hz=lock)
        close_to_peak(single, direct.float(), rel=1e-3)


def test_a_signal_with_the_target_mel_is_a_fixed_point_of_the_fit() -> None:
    # the fit starts from the signal's own magnitude: if its mel already is the target, nothing moves (the
    # smooth magnitude would replace its harmonics by the filter bank's pseudo-inverse)
    n = 8000 // CFG.hop_length * CFG.hop_length
    t = torch.arange(n) / CFG.sample_rate
    tone = sum(torch.sin(2 * torch.pi * k * 140.0 * t + k) / k for k in range(1, 20)) * 0.1
    tone = (tone + 0.01 * torch.randn(n, generator=torch.Generator().manual_seed(0)))[None].double()
    mel = MelSpectrogram(CFG)(tone.float())  # every band above the mel's floor (clamp)
    fitted = project_to_mel(tone, mel, CFG, 1.0, iters=4, fit=1)
    smooth = project_to_mel(tone, mel, CFG, 1.0, iters=4)
    inner = slice(CFG.n_fft, -CFG.n_fft)  # away from the edges' float32 mel rounding
    err_fit = float((fitted - tone)[:, inner].abs().max())
    assert err_fit < 1e-5 * float(tone.abs().max())  # float32 mel: 5e-8 measured
    assert float((smooth - tone)[:, inner].abs().max()) > 0.05 * float(tone.abs().max())  # 0.2 measured


def test_fitted_iterations_chunk_stream_and_reach_the_mel() -> None:
    audio, mel = _signals(seconds=1.0)
    fn = MelSpectrogram(CFG)
    one = project_to_mel(audio, mel, CFG, 1.0, iters=3, fit=1)
    close_to_peak(project_to_mel(audio, mel, CFG, 1.0, iters=3, fit=1, chunk_frames=9), one, rel=1e-5)
    close_to_peak(_streamed(ProjectionStream(CFG, 1.0, iters=3, fit=1), audio, mel, 17), one, rel=1e-5)
    # its iterations bring the output's own mel closer to the target than the smooth magnitude's do
    err = {
        (k, fit): float((fn(project_to_mel(audio, mel, CFG, 1.0, iters=k, fit=fit)) - mel).abs().mean())
        for k in (0, 8)
        for fit in (0, 1)
    }
    assert err[(8, 1)] < err[(0, 1)] and err[(8, 1)] < err[(8, 0)]


def test_the_fit_setting_is_checked_stored_and_applied(tmp_path) -> None:
    assert SamplingConfig().projection_fit == 0 and SamplingConfig(projection_fit=2.0).projection_fit == 2
    for bad in (-1, 1.5, 1000, True, "x"):
        with pytest.raises(ValueError, match="projection_fit"):
            SamplingConfig(projection_fit=bad)  # type: ignore[arg-type]
    assert inert_settings(SamplingConfig(projection_fit=1)) == [
        "projection_fit 1 has no effect without mel_projection"
    ]
    assert SamplingConfig.from_dict({"mel_projection": 1}).projection_fit == 0  # releases before it: smooth
    settings = SamplingConfig(temperature=0.9, mel_projection=1.0, projection_iters=2, projection_fit=1)
    voc, mel = _release_vocoder(tmp_path, settings)
    assert voc.info is not None and voc.info.sampling.projection_fit == 1
    model = voc.model
    out = voc.vocode(mel, generator=torch.Generator().manual_seed(3))
    voc.mel_projection = "off"
    raw = voc.vocode(mel, generator=torch.Generator().manual_seed(3))
    close_to_peak(out, project_to_mel(raw, mel, model.config.mel, 1.0, iters=2, fit=1), rel=1e-5)
    voc.projection_fit = 0
    assert voc.projection_fit == 0
