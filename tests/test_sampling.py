"""Sampling settings (issue 19 section 2): one typed object (``SamplingConfig``), one validator, one
resolution rule (explicit > release > library default), the same audio from ``model.inverse`` and
``synthesize`` for every setting, one ``sampling`` block in releases (old releases load as before), and a
setting made inert by another reported once."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.inference.conftest import close_to_peak as _close
from tests.inference.conftest import tiny_waveflow, tiny_waveglow
from waveflow_py.cli import main
from waveflow_py.config import ObjectiveConfig, SourceFilterConfig, TrainConfig, from_dict
from waveflow_py.inference import synthesize
from waveflow_py.inference.core import draw_noise
from waveflow_py.inference.streaming import StreamingSynthesizer
from waveflow_py.models import build_model
from waveflow_py.pretrained import build_random_release, load_release, save_release
from waveflow_py.pretrained.integrity import write_manifest
from waveflow_py.sampling import (
    DEFAULT_SAMPLING,
    SamplingConfig,
    check_for_model,
    describe_sampling,
    resolve_sampling,
)
from waveflow_py.vocoder import Vocoder

ROOT = Path(__file__).resolve().parents[1]
STAGES = SourceFilterConfig(envelope="lpc", lpc_order=4, pitch="ltp", pitch_strength=1.0, pitch_threshold=0.0)
# one setting away from the default each, and all of them together
SETTINGS = [
    SamplingConfig(),
    SamplingConfig(temperature=0.9),
    SamplingConfig(truncation=1.2),
    SamplingConfig(excitation_rms=1.3),
    SamplingConfig(pitch_strength=2.5),
    SamplingConfig(temperature=0.8, truncation=2.0, excitation_rms=0.7, pitch_strength=0.5),
]


def close_to_peak(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding (cached vs reference inverse, through an LPC filter's gain)."""
    _close(a, b, rel=1e-5)


def _staged(kind: str) -> torch.nn.Module:
    return (tiny_waveglow if kind == "waveglow" else tiny_waveflow)(source_filter=STAGES)


def _noise(model: torch.nn.Module, settings: SamplingConfig, frames: int, batch: int = 2) -> torch.Tensor:
    n = frames * model.hop_length
    return draw_noise(model, torch.full((batch,), n), n, settings, torch.Generator().manual_seed(4))


# ----------------------------------------------------------------------------- one sampler, every setting
@pytest.mark.parametrize("kind", ["waveglow", "waveflow"])
def test_inverse_and_synthesize_agree_for_every_setting(kind: str) -> None:
    model = _staged(kind)
    frames = 9
    mel = torch.randn(2, 6, frames, generator=torch.Generator().manual_seed(1))
    outputs = []
    for settings in SETTINGS:
        z = _noise(model, settings, frames)
        with torch.no_grad():
            want = model.inverse(z, mel, sampling=settings)[0]
        got, _ = synthesize(model, mel, sampling=settings, generator=torch.Generator().manual_seed(4))
        close_to_peak(got, want)  # the noise synthesize draws is the settings' noise, the stages the same
        close_to_peak(synthesize(model, mel, z=z, sampling=settings, max_frames=4)[0], want)  # chunked
        stream = StreamingSynthesizer(model, chunk_frames=4, sampling=settings)
        streamed = torch.cat(
            [stream.push(mel[:, :, :5], z[:, : 5 * 16]), stream.push(mel[:, :, 5:], z[:, 80:])], 1
        )
        close_to_peak(torch.cat([streamed, stream.flush()], 1), want)
        model.sampling = settings  # as the release level: the same audio without explicit settings
        with torch.no_grad():
            close_to_peak(model.inverse(z, mel)[0], want)
        close_to_peak(synthesize(model, mel, generator=torch.Generator().manual_seed(4))[0], want)
        model.sampling = DEFAULT_SAMPLING
        outputs.append(want)
    for settings, audio in zip(SETTINGS[1:], outputs[1:], strict=True):  # every setting changes the audio
        assert (audio - outputs[0]).abs().max() > 1e-3 * float(outputs[0].abs().max()), settings


def test_pitch_strength_is_a_sampling_setting_without_rebuilding() -> None:
    """A strength at sampling time gives the audio of the model built with that strength (same weights)."""
    model = _staged("waveglow")
    rebuilt = build_model(
        "waveglow",
        dataclasses.replace(model.config, source_filter=dataclasses.replace(STAGES, pitch_strength=2.5)),
    )
    rebuilt.load_state_dict(model.state_dict())
    mel = torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(2))
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    want, _ = synthesize(rebuilt.eval(), mel, generator=gen())
    got, _ = synthesize(model, mel, sampling=SamplingConfig(pitch_strength=2.5), generator=gen())
    close_to_peak(got, want)


# ----------------------------------------------------------------------------- one validator
@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("temperature", -0.1, "temperature: expected a finite number >= 0"),
        ("temperature", math.nan, "temperature: expected a finite number >= 0"),
        ("temperature", math.inf, "temperature: expected a finite number >= 0"),
        ("temperature", True, "temperature: expected a finite number >= 0"),
        ("truncation", 0, "truncation: expected a finite number > 0"),
        ("excitation_rms", "loud", "excitation_rms: expected a finite number > 0"),
        ("pitch_strength", -1, "pitch_strength: expected a finite number >= 0"),
    ],
)
def test_the_validator_names_the_problem(field: str, bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**{field: bad})
    with pytest.raises(ValueError, match=message):
        resolve_sampling(DEFAULT_SAMPLING, **{field: bad})


def test_one_rule_for_a_temperature_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """0 is a temperature and -1, inf and NaN are not, wherever one is given."""
    from waveflow_py.cli import build_parser

    for good in (0.0, 0.6):
        assert SamplingConfig(temperature=good).temperature == good
        assert ObjectiveConfig(temperature=good).temperature == good
        assert TrainConfig(val_temperature=good).val_temperature == good
    for bad in (-1.0, math.inf, math.nan):
        for build in (
            lambda t: SamplingConfig(temperature=t),
            lambda t: from_dict(ObjectiveConfig, {"temperature": t}),
            lambda t: TrainConfig(val_temperature=t),
        ):
            with pytest.raises(ValueError, match="temperature: expected a finite number >= 0"):
                build(bad)
        with pytest.raises(SystemExit):
            build_parser().parse_args(["vocode", "x.wav", "-o", "o", "--temperature", str(bad)])
        assert "expected a finite number >= 0" in capsys.readouterr().err


def test_settings_a_model_cannot_use_are_refused() -> None:
    plain = tiny_waveflow()
    with pytest.raises(ValueError, match="pitch_strength: needs a model with a pitch prior"):
        check_for_model(SamplingConfig(pitch_strength=1.0), plain.config)
    with pytest.raises(ValueError, match="excitation_rms: needs a model with an envelope prior"):
        synthesize(plain, torch.randn(1, 6, 4), sampling=SamplingConfig(excitation_rms=1.0))
    with pytest.raises(ValueError, match="sampling: expected a SamplingConfig"):
        plain.sampling = {"temperature": 0.5}


# ----------------------------------------------------------------------------- one resolution rule
def test_explicit_beats_release_beats_library_default() -> None:
    release = SamplingConfig(temperature=0.9, truncation=2.0, excitation_rms=1.1, pitch_strength=1.4)
    assert resolve_sampling() == DEFAULT_SAMPLING == SamplingConfig(0.6, None, None, None)
    assert resolve_sampling(release) == release  # nothing explicit: the release's
    assert resolve_sampling(release, temperature=None, truncation="release") == release  # "not given"
    assert resolve_sampling(release, temperature=0.3) == dataclasses.replace(release, temperature=0.3)
    assert resolve_sampling(release, truncation="none", excitation_rms="off").truncation is None
    assert resolve_sampling(release, pitch_strength="model").pitch_strength is None  # as the model was built
    with pytest.raises(ValueError, match="temperature: expected a finite number"):
        resolve_sampling(release, temperature="model")  # "model" names a strength only
    whole = SamplingConfig(temperature=0.5)
    assert resolve_sampling(release, whole) == whole  # an explicit whole object replaces the release's
    assert resolve_sampling(release, whole, pitch_strength=2.0).pitch_strength == 2.0  # single fields win
    with pytest.raises(TypeError, match="unknown setting"):
        resolve_sampling(release, temprature=0.3)


def test_the_rule_through_synthesize_and_the_vocoder(tmp_path: Path) -> None:
    model = _staged("waveglow")
    release = SamplingConfig(temperature=0.9, excitation_rms=1.3, pitch_strength=2.0)
    path = save_release(tmp_path / "r", model, provenance={"weights": "test"}, sampling=release)
    voc = Vocoder.from_pretrained(path, dtype="fp32")
    assert voc.sampling == release == voc.model.sampling == voc.info.sampling
    voc = Vocoder.from_pretrained(path, dtype="fp32", temperature=0.4, pitch_strength=None)
    assert voc.sampling == SamplingConfig(temperature=0.4, excitation_rms=1.3)  # explicit fields win
    mel = voc.mel(0.1 * torch.randn(7 * 16, generator=torch.Generator().manual_seed(5)))
    gen = lambda: torch.Generator().manual_seed(6)  # noqa: E731
    want = synthesize(voc.model, mel[None], sampling=voc.sampling, generator=gen())[0][0]
    close_to_peak(voc.vocode(mel, mel_format="model", generator=gen()), want)
    # synthesize: an explicit temperature over the model's (the release's) other settings
    over = synthesize(voc.model, mel[None], temperature=0.4, generator=gen())[0]
    close_to_peak(
        over,
        synthesize(
            voc.model, mel[None], sampling=dataclasses.replace(release, temperature=0.4), generator=gen()
        )[0],
    )


# ----------------------------------------------------------------------------- releases
def test_a_release_stores_one_sampling_block(tmp_path: Path) -> None:
    model = _staged("waveflow")
    settings = SamplingConfig(temperature=0.7, truncation=2.5, excitation_rms=0.9, pitch_strength=1.25)
    path = save_release(tmp_path / "r", model, provenance={"weights": "test"}, sampling=settings)
    data = json.loads((path / "config.json").read_text())
    assert data["sampling"] == settings.to_dict()
    assert not {"temperature", "truncation", "excitation_rms"} & set(data)  # one place
    assert load_release(path)[1].sampling == settings
    data["temperature"] = 0.5  # the old top-level key beside the block: two places, refused
    (path / "config.json").write_text(json.dumps(data))
    write_manifest(path)
    with pytest.raises(ValueError, match=r"\['temperature'\] at the top level beside a 'sampling' block"):
        load_release(path)
    del data["temperature"]
    data["sampling"]["temprature"] = 0.5
    (path / "config.json").write_text(json.dumps(data))
    write_manifest(path)
    with pytest.raises(ValueError, match=r"sampling: unknown key\(s\) \['temprature'\]"):
        load_release(path)


def test_an_old_release_loads_with_the_same_sampling(tmp_path: Path) -> None:
    """A release written before the block (top-level keys, pitch strength in the architecture) samples
    with exactly its settings; the preview bundled until 2026-12-04 (kept as a resume point) is one."""
    model, info = load_release(
        ROOT / "recipes" / "librispeech-mini" / "bakeoff" / "resume" / "wg64-pitch-latest"
    )
    assert info.sampling == SamplingConfig(temperature=0.98, excitation_rms=1.0) == model.sampling
    assert info.stored_sampling == {"temperature": 0.98, "excitation_rms": 1.0} and info.temperature == 0.98
    assert describe_sampling(info.sampling, info.config)["pitch_strength"] == 1.5  # the architecture key
    # a tiny old-format release: the same audio as the block format with the same settings
    new = save_release(
        tmp_path / "new",
        _staged("waveglow"),
        provenance={"weights": "test"},
        sampling=SamplingConfig(0.8, 2.0, 1.1),
    )
    old = tmp_path / "old"
    old.mkdir()
    for f in ("model.safetensors",):
        (old / f).write_bytes((new / f).read_bytes())
    data = json.loads((new / "config.json").read_text())
    del data["sampling"]
    data.update(temperature=0.8, truncation=2.0, excitation_rms=1.1)
    (old / "config.json").write_text(json.dumps(data))  # no SHA256SUMS: a release from before manifests
    a, b = load_release(new)[0], load_release(old)[0]
    assert a.sampling == b.sampling
    mel = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(8))
    gen = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    torch.testing.assert_close(
        synthesize(a, mel, generator=gen())[0], synthesize(b, mel, generator=gen())[0], rtol=0, atol=0
    )


# ----------------------------------------------------------------------------- reports
def test_an_inert_setting_is_reported_once(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    release = build_random_release(tmp_path / "tiny")
    with caplog.at_level(logging.WARNING, logger="waveflow_py.vocoder"):
        voc = Vocoder.from_pretrained(release, temperature=0, truncation=2.0, dtype="fp32")
        for _ in range(3):
            voc.vocode(voc.mel(torch.zeros(2048) + 0.01 * torch.randn(2048)), mel_format="model")
        voc.truncation = 2.0
    lines = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert lines == ["truncation 2 has no effect at temperature 0 (the noise is zero)"]


def test_cli_reports_an_inert_setting_once_and_usage_errors_exit_2_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    release = build_random_release(tmp_path / "tiny")
    voc = Vocoder.from_pretrained(release)
    for name in ("a", "b", "c"):
        np.save(tmp_path / f"{name}.npy", voc.mel(0.1 * torch.randn(4096)).numpy())
    inputs = [str(tmp_path / f"{n}.npy") for n in "abc"]
    argv = ["vocode", *inputs, "-o", str(tmp_path / "out"), "--model", str(release), "--quiet"]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--temperature", "0", "--truncation", "2"]) == 0  # three files
    inert = [r for r in caplog.records if "truncation 2 has no effect at temperature 0" in r.getMessage()]
    assert len(inert) == 1
    capsys.readouterr()
    for flag, bad, why in (
        ("--pitch-strength", "-1", "expected a finite number >= 0 or 'model'"),
        ("--temperature", "nan", "expected a finite number >= 0"),
        ("--mel-projection", "1.5", "expected a strength in [0, 1]"),
        ("--projection-iters", "2.5", "expected a whole number in [0, 256]"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*argv, "-o", str(tmp_path / "never"), flag, bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count(flag) == 2 and err.count(why) == 1  # usage line + the error
        assert not (tmp_path / "never").exists()


def test_info_shows_the_resolved_settings(capsys: pytest.CaptureFixture[str]) -> None:
    old = ROOT / "recipes" / "librispeech-mini" / "bakeoff" / "resume" / "wg64-pitch-latest"
    assert main(["info", str(old), "--json"]) == 0  # written before the block: strength from the model
    data = json.loads(capsys.readouterr().out)
    assert data["sampling"] == {
        "temperature": 0.98,
        "truncation": None,
        "excitation_rms": 1.0,
        "pitch_strength": 1.5,
        "mel_projection": None,
        "projection_iters": 0,
        "projection_fit": 0,
    }
    assert data["sampling_source"]["pitch_strength"] == "model: source_filter.pitch_strength"
    assert data["sampling_source"]["truncation"] == "library default"
    assert main(["info", str(ROOT / "pretrained" / "universal-16k-preview"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # the bundled preview stores the block, strength 1.0
    assert data["sampling"]["pitch_strength"] == 1.0
    assert data["sampling_source"]["pitch_strength"] == "release"
    assert main(["info", str(ROOT / "pretrained" / "universal-16k")]) == 0  # the default's fitted magnitude
    assert (
        "fitted magnitude (2 updates per iteration), then 16 Griffin-Lim iterations"
        in capsys.readouterr().out
    )


def test_the_objective_samples_by_the_same_rule() -> None:
    """``train.objective.temperature`` (explicit) over the run's settings over the model's (release)."""
    from waveflow_py.train.objective import TrainingObjective

    model = _staged("waveglow")
    model.sampling = SamplingConfig(temperature=0.9, excitation_rms=1.2)
    objective = TrainingObjective(model, ObjectiveConfig(stft=1.0, crop=64), torch.nn.Identity())
    assert objective.settings == model.sampling  # the release's
    objective.sampling = SamplingConfig(temperature=0.7, truncation=2.0)  # the run's (val_temperature)
    assert objective.settings == objective.sampling
    objective.cfg = ObjectiveConfig(stft=1.0, crop=64, temperature=0.3)  # explicit
    assert objective.settings == SamplingConfig(temperature=0.3, truncation=2.0)
