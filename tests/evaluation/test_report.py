"""End to end: clips -> evaluate -> report.md / metrics.json / PNGs, with a callable model and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.evaluation.signals import speech_like
from waveflow_py.config import mel_preset
from waveflow_py.evaluation import METRIC_KEYS, SYSTEMS, EvalModel, evaluate, find_clips, griffin_lim
from waveflow_py.evaluation.spectral import log_mel

SR = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """metadata.csv with 2 dev clips, 1 train clip and a corrupt dev file."""
    root = tmp_path / "corpus"
    (root / "dev").mkdir(parents=True)
    (root / "train").mkdir()
    for i in range(2):
        sf.write(root / "dev" / f"clip{i}.wav", speech_like(SR, 1.0 + 0.25 * i, seed=i), SR)
    sf.write(root / "train" / "t0.wav", speech_like(SR, 1.0, seed=5), SR)
    (root / "dev" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    rows = [
        "path,split,speaker,sample_rate,seconds",
        "dev/clip0.wav,dev,1,16000,1.0",
        "dev/broken.wav,dev,1,16000,1.0",
        "dev/clip1.wav,dev,2,16000,1.25",
        "train/t0.wav,train,3,16000,1.0",
    ]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_find_clips_from_metadata_and_folders(corpus: Path) -> None:
    dev = find_clips(corpus, split="dev")
    assert [c.clip_id for c in dev] == ["dev/clip0.wav", "dev/broken.wav", "dev/clip1.wav"]
    assert [c.clip_id for c in find_clips(corpus / "metadata.csv", split="dev", max_clips=1)] == [
        "dev/clip0.wav"
    ]
    assert len(find_clips(corpus)) == 4
    (corpus / "metadata.csv").unlink()
    assert [c.clip_id for c in find_clips(corpus, split="train")] == ["train/t0.wav"]
    with pytest.raises(ValueError, match="no 'test' subfolder"):
        find_clips(corpus, split="test")
    with pytest.raises(FileNotFoundError):
        find_clips(corpus / "missing")


def test_read_clip_crops_resamples_and_names_bad_files(corpus: Path) -> None:
    from waveflow_py.audio import AudioError
    from waveflow_py.evaluation.clips import read_clip

    clip0, broken, clip1 = find_clips(corpus, split="dev")
    whole = read_clip(clip1, SR)
    want = sf.read(clip1.path, dtype="float64")[0]
    assert whole.dtype == np.float64 and whole.shape == want.shape
    np.testing.assert_allclose(whole, want, atol=1e-4)  # the file's 16-bit samples
    part = read_clip(clip1, SR, seconds=0.5, multiple_of=256)
    assert part.size == 8000 // 256 * 256 and np.array_equal(part, whole[: part.size])
    assert read_clip(clip0, SR // 2).size == pytest.approx(SR // 2, abs=2)  # resampled, 1 s
    with pytest.raises(AudioError, match="broken.wav"):
        read_clip(broken, SR)


def test_find_clips_unknown_split_lists_the_splits(corpus: Path) -> None:
    with pytest.raises(ValueError, match=r"splits present: \['dev', 'train'\]"):
        find_clips(corpus, split="test")


def _callable_model() -> EvalModel:
    cfg = mel_preset("16k")

    def log_prob(audio: np.ndarray, mel: np.ndarray) -> float:  # N(0, 0.1^2) per sample, in nats
        return float(np.mean(-0.5 * (audio / 0.1) ** 2 - np.log(0.1 * np.sqrt(2 * np.pi))))

    return EvalModel(
        name="gl8",
        sample_rate=SR,
        mel_config=cfg,
        mel=lambda audio: log_mel(audio, cfg),
        vocode=lambda mel, temperature, seed: griffin_lim(mel, cfg, n_iter=8, seed=seed),
        log_prob=log_prob,
        provenance={"weights": "none: an 8-iteration Griffin-Lim stands in for a model"},
    )


def _check_report(out: Path, n_clips: int, n_failed: int) -> dict:
    data = json.loads((out / "metrics.json").read_text())
    assert len(data["clips"]) == n_clips and len(data["failed"]) == n_failed
    for system in SYSTEMS:
        assert set(METRIC_KEYS) <= set(data["summary"][system])
    text = (out / "report.md").read_text()
    assert "| metric | better |" in text and "## Per clip" in text and "## Failed clips" in text
    assert "## Per speaker" in text and "## Warnings" in text and "| GPE |" in text
    assert set(data["per_speaker"]) == {c["speaker"] for c in data["clips"]}
    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {"distributions.png", "speakers.png", "spectrogram_0.png"}
    import matplotlib.image

    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert f"]({'figures/' + p.name})" in text
    return data


def test_evaluate_with_a_callable_model_writes_the_report(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = evaluate(_callable_model(), corpus, out, split="dev", gl_iters=8, n_figures=1)
    assert [c.clip_id for c in result.clips] == ["dev/clip0.wav", "dev/clip1.wav"]
    assert [c.speaker for c in result.clips] == ["1", "2"]  # the speaker column, carried through
    assert result.failed[0]["clip"] == "dev/broken.wav" and result.failed[0]["reason"]
    data = _check_report(out, n_clips=2, n_failed=1)
    ref = data["summary"]["reference"]
    assert ref["stoi"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert ref["mcd"]["mean"] == 0.0 and ref["mrstft"]["mean"] == 0.0 and ref["vuv_f1"]["mean"] == 1.0
    voc = data["summary"]["vocoder"]
    assert voc["mcd"]["mean"] > 0 and voc["stoi"]["mean"] < 1.0
    # the same stand-in with the same seed: identical NLL to recomputing it by hand
    audio, _ = sf.read(corpus / "dev" / "clip0.wav")
    nats = -np.mean(-0.5 * (audio / 0.1) ** 2 - np.log(0.1 * np.sqrt(2 * np.pi)))
    assert data["clips"][0]["nll_nats"] == pytest.approx(nats, rel=1e-4)
    assert data["clips"][0]["nll_bits"] == pytest.approx(nats / math.log(2), rel=1e-4)
    text = (out / "report.md").read_text()
    assert "`dev/broken.wav`" in text and "Untrained" not in text
    assert "None: no clip's NLL is above 0 nats/sample" in text and data["warnings"] == []
    assert all(c.warnings == [] for c in result.clips)
    assert (out / "audio" / "0_vocoder.wav").is_file()


def test_an_exploding_nll_is_logged_once_and_listed_under_warnings(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """NLL = -log-likelihood per sample: -4.9 is a sane clip, +18,613 (log-likelihood below 0) explodes."""
    model = _callable_model()
    model.log_prob = lambda audio, mel: -18613.25 if audio.size == SR else 4.9  # clip0 is 1 s, clip1 1.25 s
    out = tmp_path / "report"
    with caplog.at_level("WARNING", logger="waveflow_py.evaluation.runner"):
        result = evaluate(model, corpus, out, split="dev", gl_iters=4, n_figures=0)
    assert [c.nll_nats for c in result.clips] == [18613.25, -4.9]
    assert len(result.clips[0].warnings) == 1 and result.clips[1].warnings == []
    logged = [r.getMessage() for r in caplog.records if "exploding likelihood" in r.getMessage()]
    assert len(logged) == 1 and "dev/clip0.wav" in logged[0] and "+18,613.250 nats/sample" in logged[0]
    text = (out / "report.md").read_text()
    warnings = text.split("## Warnings")[1].split("## Failed clips")[0]
    assert "| `dev/clip0.wav` | 1 | 18613.250 |" in warnings and "dev/clip1.wav" not in warnings
    assert "log-likelihood is below 0" in warnings
    data = json.loads((out / "metrics.json").read_text())
    assert [(w["clip"], w["speaker"]) for w in data["warnings"]] == [("dev/clip0.wav", "1")]


def test_nll_warning_rule() -> None:
    from waveflow_py.evaluation.system import nll_warning

    assert nll_warning(-4.9) is None and nll_warning(0.0) is None
    assert "+0.001 nats/sample > 0" in str(nll_warning(0.001))
    assert "not finite" in str(nll_warning(math.nan)) and "not finite" in str(nll_warning(math.inf))


def test_cli_eval_on_a_tiny_random_release(corpus: Path, tmp_path: Path) -> None:
    import torch

    from waveflow_py.cli import main
    from waveflow_py.config import WaveFlowConfig
    from waveflow_py.models import WaveFlow
    from waveflow_py.pretrained import save_release

    model = WaveFlow(
        WaveFlowConfig(n_group=8, n_flows=2, n_layers=2, residual_channels=8, mel=mel_preset("16k"))
    )
    release = save_release(tmp_path / "tiny", model, provenance={"weights": "untrained (random)"})
    out = tmp_path / "cli-report"
    argv = [
        "eval",
        "--model",
        str(release),
        "--data",
        str(corpus / "metadata.csv"),
        "--split",
        "dev",
        "--max-clips",  # evenly spaced over clip0, broken, clip1: all three
        "3",
        "--gl-iters",
        "4",
        "--temperature",
        "0.5",
        "--figures",
        "1",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    data = _check_report(out, n_clips=2, n_failed=1)
    assert data["settings"]["temperature"] == 0.5 and data["settings"]["griffin_lim_iters"] == 4
    assert data["model"]["untrained"] is True and data["model"]["weights_sha256"]
    assert math.isfinite(data["clips"][0]["nll_nats"])
    assert "Untrained (random) weights" in (out / "report.md").read_text()
    # the model's own NLL: recomputed with its log_prob on the same audio and mel
    audio, _ = sf.read(corpus / "dev" / "clip0.wav", dtype="float32")
    x = torch.from_numpy(audio)[None]
    from waveflow_py.audio import MelSpectrogram

    with torch.no_grad():
        lp = model.log_prob(x, MelSpectrogram(model.config.mel)(x))
    assert data["clips"][0]["nll_nats"] == pytest.approx(-float(lp[0]), rel=1e-4)


def test_cli_eval_bad_input_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from waveflow_py.cli import main

    assert (
        main(["eval", "--model", str(tmp_path / "nope"), "--data", str(tmp_path), "-o", str(tmp_path)]) == 2
    )
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_real_speech_with_a_tiny_random_release(shared_data: Path, tmp_path: Path) -> None:
    from waveflow_py.config import WaveFlowConfig
    from waveflow_py.models import WaveFlow
    from waveflow_py.pretrained import save_release

    model = WaveFlow(
        WaveFlowConfig(n_group=8, n_flows=2, n_layers=2, residual_channels=8, mel=mel_preset("16k"))
    )
    release = save_release(tmp_path / "tiny", model, provenance={"weights": "untrained (random)"})
    out = tmp_path / "report"
    result = evaluate(
        str(release), shared_data / "librispeech-mini", out, split="dev", max_clips=2, gl_iters=32
    )
    data = _check_report(out, n_clips=2, n_failed=0)
    assert not result.failed
    summary = data["summary"]
    assert summary["reference"]["pesq_wb"]["mean"] == pytest.approx(4.64, abs=0.01)
    # Griffin-Lim from the true mel beats a random (identity-initialised) flow's white noise on every metric
    for key in ("pesq_wb", "stoi", "vuv_f1"):
        assert summary["griffin_lim"][key]["mean"] > summary["vocoder"][key]["mean"]
    for key in ("mrstft", "log_mel_l1", "mcd", "periodicity_rmse"):
        assert summary["griffin_lim"][key]["mean"] < summary["vocoder"][key]["mean"]


def test_cli_eval_without_the_eval_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from waveflow_py.cli import main

    monkeypatch.setitem(sys.modules, "pystoi", None)
    assert main(["eval", "--model", "x", "--data", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    assert "pip install waveflow-py[eval]" in capsys.readouterr().err
