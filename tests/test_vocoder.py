"""Vocoder: shapes, the model's own features, mel validation, resynthesis, and the quick start snippet."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow_py.audio import AudioError, MelSpectrogram
from waveflow_py.audio.conventions import from_model_mel
from waveflow_py.config import SourceFilterConfig, mel_preset
from waveflow_py.pretrained import ReleaseNotFoundError, build_random_release, lookup
from waveflow_py.pretrained.integrity import write_manifest
from waveflow_py.sampling import SamplingConfig
from waveflow_py.vocoder import DEFAULT_TEMPERATURE, Vocoder

SR = 22050
HOP = 256
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_release(tmp_path_factory.mktemp("rel") / "tiny")


@pytest.fixture
def vocoder(release: Path) -> Vocoder:
    return Vocoder.from_pretrained(release, dtype="fp32")  # exact comparisons: no device-dependent bf16


def speechlike(seconds: float = 0.5, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.3 * torch.sin(2 * math.pi * 220 * t) * (1 + torch.sin(2 * math.pi * 3 * t)) / 2 + 0.01


def test_properties_and_features_match_the_release(vocoder: Vocoder) -> None:
    assert vocoder.sample_rate == SR and vocoder.hop_length == HOP and vocoder.mel_config.n_mels == 80
    assert vocoder.info is not None and vocoder.info.verified
    audio = speechlike()
    want = MelSpectrogram(vocoder.mel_config)(audio[None])[0]
    torch.testing.assert_close(vocoder.mel(audio), want)
    assert vocoder.mel(torch.stack([audio, audio])).shape == (2, 80, want.shape[-1])


def test_vocode_shapes_lengths_and_numpy(vocoder: Vocoder) -> None:
    mel = vocoder.mel(speechlike())
    frames = mel.shape[-1]
    audio = vocoder.vocode(mel)
    assert audio.shape == (frames * HOP,) and audio.dtype == torch.float32 and torch.isfinite(audio).all()
    assert vocoder.vocode(mel.numpy()).shape == (frames * HOP,)
    batch = torch.stack([mel, mel])
    out = vocoder.vocode(batch, lengths=[frames, 5], temperature=0.5)
    assert out.shape == (2, frames * HOP)
    assert (out[1, 5 * HOP :] == 0).all() and out[1, : 5 * HOP].abs().sum() > 0
    assert vocoder.audio_lengths([frames, 5]).tolist() == [frames * HOP, 5 * HOP]
    with pytest.raises(ValueError, match="lengths"):
        vocoder.vocode(batch, lengths=[frames + 1, 1])


def test_vocode_runs_the_model_inverse(vocoder: Vocoder) -> None:
    mel = vocoder.mel(speechlike())
    with torch.no_grad():
        want = vocoder.model.inverse(torch.zeros(1, mel.shape[-1] * HOP), mel[None])[0][0]
    got = vocoder.vocode(mel, temperature=0.0)
    assert want.abs().max() > 1e-4  # the tiny release's output depends on the mel
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    quieter = vocoder.vocode(mel - 2.0, temperature=0.0)
    assert not torch.allclose(quieter, got)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(vocoder.vocode(mel, generator=g1), vocoder.vocode(mel, generator=g2))


def test_a_padded_batch_item_equals_the_item_alone(vocoder: Vocoder) -> None:
    long, short = vocoder.mel(speechlike(0.5)), vocoder.mel(speechlike(0.2))
    batch, lens = vocoder.pad_mels([long, short])
    assert lens.tolist() == [long.shape[-1], short.shape[-1]]
    out = vocoder.vocode(batch, lens, temperature=0.0, mel_format="model")
    alone = vocoder.vocode(short, temperature=0.0)
    torch.testing.assert_close(out[1, : alone.numel()], alone, rtol=1e-4, atol=1e-5)
    assert (out[1, alone.numel() :] == 0).all()


def test_vocode_many_keeps_each_length(vocoder: Vocoder) -> None:
    mels = [vocoder.mel(speechlike(s)) for s in (0.2, 0.5, 0.3)]
    outs = vocoder.vocode_many(mels, batch_size=2)
    assert [o.shape[0] for o in outs] == [m.shape[-1] * HOP for m in mels]


def test_other_mel_conventions_are_converted(vocoder: Vocoder) -> None:
    mel = vocoder.mel(speechlike())
    natural = vocoder.vocode(mel, temperature=0.0)
    as_log10 = vocoder.vocode(mel / math.log(10), temperature=0.0, mel_format="log10")
    torch.testing.assert_close(as_log10, natural, rtol=1e-3, atol=1e-4)


def test_bad_mels_say_what_was_expected(vocoder: Vocoder) -> None:
    mel = vocoder.mel(speechlike())
    with pytest.raises(ValueError, match="80"):
        vocoder.vocode(mel[:64])  # wrong bin count
    with pytest.raises(ValueError, match="transpose"):
        vocoder.vocode(mel.T)
    bad = mel.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="(?i)nan|finite"):
        vocoder.vocode(bad)
    with pytest.raises(ValueError, match=r"mel values span .* lies in \[-11.5, "):
        vocoder.vocode(mel + 30.0)  # beyond full scale
    with pytest.raises(ValueError, match="linear-magnitude or power mel"):
        vocoder.vocode(torch.exp(mel) * 1000.0)  # linear magnitudes, not log-mel
    coqui = from_model_mel(mel, "db", vocoder.mel_config)  # a Coqui-style dB mel given as natural log
    with pytest.raises(ValueError, match="mel-format db"):
        vocoder.vocode(coqui)
    back = vocoder.prepare_mel(coqui, "db")[0]
    above_floor = mel > -9.0  # Coqui's dB range (min_level_db -100, ref 20) floors at ln(1e-4)
    assert above_floor.float().mean() > 0.2
    torch.testing.assert_close(back[above_floor], mel[above_floor], rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="shape"):
        vocoder.vocode(mel[0])
    with pytest.raises(ValueError, match="temperature"):
        vocoder.vocode(mel, temperature=-1.0)


def test_features_of_another_frame_rate_are_refused(vocoder: Vocoder) -> None:
    mel = vocoder.mel(speechlike())
    with pytest.raises(ValueError, match="sample_rate: 16000 vs model 22050"):
        vocoder.vocode(mel, source_cfg=mel_preset("16k"))
    with pytest.raises(ValueError, match="different frame rate"):
        vocoder.vocode(mel, source_cfg=mel_preset("16k"), approximate=True)


def test_normalised_log10_mels_with_stats(vocoder: Vocoder, tmp_path: Path) -> None:
    mel = vocoder.mel(speechlike())
    mean, std = np.linspace(-3, -1, 80), np.linspace(0.5, 2, 80)
    np.save(tmp_path / "stats.npy", np.stack([mean, std]))
    espnet = (mel.double().numpy() / math.log(10) - mean[:, None]) / std[:, None]
    got = vocoder.prepare_mel(espnet, "log10", stats=tmp_path / "stats.npy")[0]
    torch.testing.assert_close(got, mel, rtol=1e-4, atol=1e-4)


def test_resynthesize_files_and_rates(vocoder: Vocoder, tmp_path: Path) -> None:
    audio = speechlike(0.4)
    sf.write(tmp_path / "a.wav", audio.numpy(), SR)
    out = vocoder.resynthesize(tmp_path / "a.wav")
    assert out.shape == audio.shape
    sf.write(tmp_path / "b.wav", speechlike(0.4, 16000).numpy(), 16000)
    with pytest.raises(AudioError, match="16000 Hz"):
        vocoder.resynthesize(tmp_path / "b.wav")
    assert vocoder.resynthesize(tmp_path / "b.wav", resample=True).shape[0] == pytest.approx(0.4 * SR, abs=2)
    with pytest.raises(AudioError, match="resample"):
        vocoder.resynthesize(speechlike(0.4, 16000), sample_rate=16000)
    assert vocoder.resynthesize(speechlike(0.4, 16000), sample_rate=16000, resample=True).numel() > 0


def test_denoise_option_is_applied_with_its_strength(release: Path) -> None:
    vocoder = Vocoder.from_pretrained(release, denoise=0.05, dtype="fp32")
    mel = vocoder.mel(speechlike(0.3))
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731 -- the same noise for every call
    out = vocoder.vocode(mel, temperature=0.3, generator=seeded())
    plain = vocoder.vocode(mel, temperature=0.3, denoise=0, generator=seeded())
    stronger = vocoder.vocode(mel, temperature=0.3, denoise=0.5, generator=seeded())
    assert out.shape == plain.shape == (mel.shape[-1] * HOP,) and torch.isfinite(out).all()
    # the default strength is applied to the synthesised audio, and a per-call strength overrides it
    torch.testing.assert_close(out, vocoder.denoise(plain, 0.05))
    torch.testing.assert_close(stronger, vocoder.denoise(plain, 0.5))
    # and it removes something: the bias spectrum is subtracted, more of it at a higher strength
    energy = [x.square().sum().item() for x in (plain, out, stronger)]
    assert energy[0] > energy[1] > energy[2], energy
    with pytest.raises(ValueError, match="denoise"):
        Vocoder(vocoder.model, denoise=-1)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), 1e9, float("inf")])
def test_a_bad_denoise_strength_is_refused_on_every_path(vocoder: Vocoder, bad: float) -> None:
    """``1e9`` used to give an all-zero wav with exit 0; -1 and NaN slipped through some paths."""
    mel = vocoder.mel(speechlike(0.1))
    audio = torch.zeros(2048)
    paths = {
        "Vocoder(denoise=)": lambda: Vocoder(vocoder.model, denoise=bad),
        "vocode": lambda: vocoder.vocode(mel, denoise=bad),
        "vocode_many": lambda: vocoder.vocode_many([mel], denoise=bad),
        "resynthesize": lambda: vocoder.resynthesize(speechlike(0.1), denoise=bad),
        "Vocoder.denoise": lambda: vocoder.denoise(audio, bad),
    }
    for name, call in paths.items():
        with pytest.raises(ValueError, match=r"denoise: expected a strength in \[0, 1\]") as e:
            call()
        assert repr(bad) in str(e.value), name


def test_save_pretrained_round_trip(vocoder: Vocoder, tmp_path: Path) -> None:
    path = vocoder.save_pretrained(tmp_path / "copy")
    again = Vocoder.from_pretrained(path)
    assert again.info.sha256 == vocoder.info.sha256 and again.info.provenance == vocoder.info.provenance
    assert again.sampling == vocoder.sampling == SamplingConfig()  # every setting, stored in one block
    assert json.loads((path / "config.json").read_text())["sampling"] == SamplingConfig().to_dict()


def test_release_temperature_is_the_default_and_can_be_overridden(vocoder: Vocoder, tmp_path: Path) -> None:
    vocoder.temperature = 0.3
    path = vocoder.save_pretrained(tmp_path / "t03")
    assert json.loads((path / "config.json").read_text())["sampling"]["temperature"] == 0.3
    again = Vocoder.from_pretrained(path, dtype="fp32")
    assert again.temperature == 0.3
    mel = again.mel(speechlike(0.2))
    seeded = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    z = 0.3 * torch.randn(mel.shape[-1] * HOP, generator=seeded())
    with torch.no_grad():
        want = again.model.inverse(z[None], mel[None])[0][0]
    torch.testing.assert_close(again.vocode(mel, generator=seeded()), want, rtol=1e-4, atol=1e-5)
    assert Vocoder.from_pretrained(path, temperature=0.5).temperature == 0.5
    data = json.loads((path / "config.json").read_text())
    data["sampling"]["temperature"] = -1
    (path / "config.json").write_text(json.dumps(data))
    write_manifest(path)  # a deliberate edit, re-hashed
    with pytest.raises(ValueError, match="temperature"):
        Vocoder.from_pretrained(path)


def test_dtype_auto_is_the_measured_choice(release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` takes :func:`choose_dtype`'s measured answer, whatever the CPU flags say."""
    from waveflow_py.inference import precision
    from waveflow_py.inference.precision import DtypeChoice

    def measured(dtype: torch.dtype):
        return lambda model, device: DtypeChoice(
            dtype, "test CPU", 1.0, 0.5 if dtype != torch.float32 else 2.0, 1e-3
        )

    monkeypatch.setattr(precision, "choose_dtype", measured(torch.float32))
    plain = Vocoder.from_pretrained(release)  # dtype="auto" is the default
    assert plain.compute_dtype == torch.float32 and "measured on test CPU" in plain.dtype_reason
    monkeypatch.setattr(precision, "choose_dtype", measured(torch.bfloat16))
    fast = Vocoder.from_pretrained(release)
    assert fast.compute_dtype == torch.bfloat16 and fast.dtype_choice is not None
    assert (
        "fp32 1 s, bf16 0.5 s (best of 1; bf16 speed-up median 2.00x, best-time ratio 2.00x)"
        in fast.dtype_reason
    )
    assert next(fast.model.parameters()).dtype == torch.float32  # the weights stay float32
    mel = fast.mel(speechlike(0.2))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    low, ref = fast.vocode(mel, generator=g()), plain.vocode(mel, generator=g())
    rel = float((low - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    assert 1e-4 < rel and -20 * math.log10(rel) >= 30.0  # bf16 really ran, 30 dB or better
    forced = Vocoder.from_pretrained(release, dtype="fp32")
    assert forced.compute_dtype == torch.float32 and forced.dtype_reason == "requested"


def test_no_default_model_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", tmp_path)
    monkeypatch.delenv("WAVEFLOW_PRETRAINED_DIR", raising=False)
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    with pytest.raises(ReleaseNotFoundError, match="no release is bundled.*save_release"):
        Vocoder.from_pretrained()


@pytest.mark.parametrize("doc", ["docs/quickstart.md", "README.md"])
def test_quickstart_snippet_runs(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The doc's first python code block, exactly as written, in the source tree as it ships (the bundled
    default model, no environment variable)."""
    text = (ROOT / doc).read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    for var in ("WAVEFLOW_DEFAULT_MODEL", "WAVEFLOW_PRETRAINED_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    name = re.search(r"from_pretrained\((?:\"([^\"]+)\")?\)", snippet).group(1)  # None: the default
    vocoder = Vocoder.from_pretrained(name)
    np.save(tmp_path / "mel.npy", vocoder.mel(speechlike(0.3)).numpy())  # what a TTS front end gives
    exec(compile(snippet, doc, "exec"), {})
    data, sr = sf.read(tmp_path / "out.wav")
    assert sr == vocoder.sample_rate and data.shape[0] == np.load(tmp_path / "mel.npy").shape[-1] * HOP


def test_envelope_release_without_a_tuned_temperature_warns(tmp_path: Path, caplog) -> None:
    """An envelope-prior release with no stored temperature samples at the package default, which shrinks
    its output: loading it says so (one warning, naming the release and the fix)."""
    import dataclasses

    from waveflow_py.models import build_model
    from waveflow_py.pretrained import load_release, save_release

    _, info = load_release(build_random_release(tmp_path / "plain"))
    cfg = dataclasses.replace(info.config, source_filter=SourceFilterConfig(envelope="lpc"))
    path = save_release(tmp_path / "env", build_model(info.model_type, cfg), provenance={"weights": "random"})
    with caplog.at_level("WARNING", logger="waveflow_py.vocoder"):
        voc = Vocoder.from_pretrained(path)
    assert voc.temperature == DEFAULT_TEMPERATURE
    assert any("no tuned temperature" in r.getMessage() and "env" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="waveflow_py.vocoder"):
        Vocoder.from_pretrained(path, temperature=1.0)  # an explicit temperature: nothing to say
        Vocoder.from_pretrained(tmp_path / "plain")  # no envelope prior: the default is its own
    assert not any("no tuned temperature" in r.getMessage() for r in caplog.records)


def test_speed_flags_shows_the_machines_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from waveflow_py import dtypes

    flags = frozenset({"sse4_2", "avx512f", "amx_bf16", "avx2", "fpu"})
    monkeypatch.setattr(dtypes, "cpu_flags", lambda: flags)
    assert dtypes.speed_flags() == "amx_bf16 avx2 avx512f"
    monkeypatch.setattr(dtypes, "cpu_flags", lambda: frozenset())
    assert dtypes.speed_flags() == "none"


def test_release_truncation_round_trip_override_and_noise(vocoder: Vocoder, tmp_path: Path) -> None:
    """A release's noise truncation is applied on load, recorded on save, overridable, and is exactly the
    prior's truncated draw through the model's inverse."""
    from waveflow_py.flows import StandardNormal
    from waveflow_py.flows.distributions import truncated_std

    vocoder.truncation = 2.0
    path = vocoder.save_pretrained(tmp_path / "c2")
    assert json.loads((path / "config.json").read_text())["sampling"]["truncation"] == 2.0
    again = Vocoder.from_pretrained(path, dtype="fp32")
    assert again.truncation == 2.0 and again.info.truncation == 2.0 and "truncation=2.0" in repr(again)
    mel = again.mel(speechlike(0.2))
    seeded = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    z = StandardNormal((1,), truncation=2.0).sample(1, shape=(mel.shape[-1] * HOP,), generator=seeded())
    z = z * again.temperature
    assert z.abs().max() <= 2.0 / truncated_std(2.0) * again.temperature + 1e-5
    with torch.no_grad():
        want = again.model.inverse(z, mel[None])[0][0]
    torch.testing.assert_close(again.vocode(mel, generator=seeded()), want, rtol=1e-4, atol=1e-5)
    assert Vocoder.from_pretrained(path, truncation=None).truncation is None
    assert Vocoder.from_pretrained(path, truncation="none").truncation is None
    assert Vocoder.from_pretrained(path, truncation=3).truncation == 3.0
    with pytest.raises(ValueError, match="truncation"):
        Vocoder.from_pretrained(path, truncation=0)
    data = json.loads((path / "config.json").read_text())
    data["sampling"]["truncation"] = "wide"
    (path / "config.json").write_text(json.dumps(data))
    write_manifest(path)  # a deliberate edit, re-hashed
    with pytest.raises(ValueError, match="truncation"):
        Vocoder.from_pretrained(path)


def test_release_excitation_rms_round_trip_override_and_checks(vocoder: Vocoder, tmp_path: Path) -> None:
    """An envelope-prior release's excitation level is applied on load, recorded on save and overridable;
    a model without an envelope prior refuses one, in code and in config.json."""
    from tests.inference.conftest import tiny_waveflow
    from waveflow_py.inference.synthesis import synthesize
    from waveflow_py.pretrained import save_release

    model = tiny_waveflow(source_filter=SourceFilterConfig(envelope="lpc", lpc_order=4))
    levels = SamplingConfig(excitation_rms=1.25)
    path = save_release(tmp_path / "lev", model, provenance={"weights": "test"}, sampling=levels)
    assert json.loads((path / "config.json").read_text())["sampling"]["excitation_rms"] == 1.25
    again = Vocoder.from_pretrained(path, dtype="fp32")
    assert again.excitation_rms == 1.25 and again.model.sampling.excitation_rms == 1.25
    assert again.info.excitation_rms == 1.25 and "excitation_rms=1.25" in repr(again)
    mel = torch.randn(1, 6, 5)
    seeded = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    levelled, _ = synthesize(again.model, mel, generator=seeded())
    plain, _ = synthesize(again.model, mel, generator=seeded(), sampling=SamplingConfig())
    assert (levelled - plain).abs().max() > 1e-3
    assert Vocoder.from_pretrained(path, excitation_rms="none").excitation_rms is None
    assert Vocoder.from_pretrained(path, excitation_rms=0.8).excitation_rms == 0.8
    copy = Vocoder.from_pretrained(path, excitation_rms=0.8).save_pretrained(tmp_path / "copy")
    assert json.loads((copy / "config.json").read_text())["sampling"]["excitation_rms"] == 0.8
    with pytest.raises(ValueError, match="envelope prior"):
        vocoder.excitation_rms = 1.0  # the tiny release has no envelope prior
    with pytest.raises(ValueError, match="envelope prior"):
        save_release(tmp_path / "bad", vocoder.model, provenance={"weights": "test"}, sampling=levels)
    data = json.loads((vocoder.info.path / "config.json").read_text())
    bad = tmp_path / "bad2"
    vocoder.save_pretrained(bad)
    (bad / "config.json").write_text(json.dumps({**data, "sampling": {"excitation_rms": 1.0}}))
    write_manifest(bad)  # a deliberate edit, re-hashed
    with pytest.raises(ValueError, match="excitation_rms"):
        Vocoder.from_pretrained(bad)
    (bad / "config.json").write_text(json.dumps({**data, "sampling": {"excitation_rms": -2}}))
    write_manifest(bad)  # a deliberate edit, re-hashed
    with pytest.raises(ValueError, match="excitation_rms"):
        Vocoder.from_pretrained(bad)
