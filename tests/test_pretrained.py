"""Releases: save/load round trip, lookup by name, and a clear ReleaseError for every bad release."""

from __future__ import annotations

import hashlib
import json
import resource
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from waveflow_py.pretrained import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ReleaseChecksumError,
    ReleaseError,
    ReleaseFileMissingError,
    ReleaseFormatError,
    ReleaseNotFoundError,
    ReleaseWeightsMismatchError,
    build_random_release,
    default_release,
    list_releases,
    load_release,
    load_release_config,
    lookup,
    save_release,
)
from waveflow_py.pretrained.integrity import write_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing bundled: the source tree's pretrained/ replaced by an empty folder, env vars unset."""
    empty = tmp_path / "no-releases"
    empty.mkdir()
    monkeypatch.setattr(lookup, "_SOURCE_PRETRAINED", empty)
    monkeypatch.delenv("WAVEFLOW_PRETRAINED_DIR", raising=False)
    monkeypatch.delenv("WAVEFLOW_DEFAULT_MODEL", raising=False)
    return empty


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return build_random_release(tmp_path / "tiny")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite_config(path: Path, **changes: object) -> None:
    """Edit config.json and re-hash the release (as a deliberate edit would), so the checks after the
    hashes are reached."""
    data = json.loads((path / CONFIG_FILE).read_text())
    data.update(changes)
    (path / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(path)


def _rehash(path: Path) -> None:
    data = json.loads((path / CONFIG_FILE).read_text())
    data["files"][WEIGHTS_FILE]["sha256"] = _sha256(path / WEIGHTS_FILE)
    (path / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(path)


def test_round_trip_restores_weights_config_and_provenance(release: Path) -> None:
    data = json.loads((release / CONFIG_FILE).read_text())
    assert data["format_version"] == FORMAT_VERSION and data["model_type"] == "waveflow"
    assert data["sample_rate"] == data["model"]["mel"]["sample_rate"] == 22050
    assert "untrained" in data["provenance"]["weights"]
    assert data["files"][WEIGHTS_FILE]["sha256"] == _sha256(release / WEIGHTS_FILE)
    assert sorted(p.name for p in release.iterdir()) == [MANIFEST_FILE, CONFIG_FILE, WEIGHTS_FILE]  # no temp
    manifest = (release / MANIFEST_FILE).read_text()  # as `sha256sum config.json model.safetensors` writes
    assert manifest == "".join(f"{_sha256(release / n)}  {n}\n" for n in (CONFIG_FILE, WEIGHTS_FILE))

    model, info = load_release(release)
    assert info.verified and info.is_untrained and not model.training
    assert info.config_sha256 == _sha256(release / CONFIG_FILE)
    assert info.config == model.config and info.mel.n_mels == 80
    saved = load_file(str(release / WEIGHTS_FILE))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    assert info.num_parameters == sum(p.numel() for p in model.parameters()) == data["num_parameters"]

    again = save_release(release.parent / "copy", model, provenance=info.provenance)
    assert load_release_config(again).sha256 == info.sha256  # deterministic bytes
    trained = {"training_data": "LJSpeech 1.1", "steps": 1000, "augmentation": "random gain"}
    assert not load_release_config(save_release(release.parent / "t", model, provenance=trained)).is_untrained


def test_load_moves_to_dtype_and_config_only_is_cheap(release: Path) -> None:
    model, _ = load_release(release, device="cpu", dtype="float64")
    assert all(p.dtype == torch.float64 for p in model.parameters())
    with pytest.raises(ValueError, match="dtype"):
        load_release(release, dtype="int3")
    with pytest.raises(ValueError, match="cannot move the model to device='nonsense'"):
        load_release(release, device="nonsense")
    (release / WEIGHTS_FILE).unlink()
    info = load_release_config(release)  # reads config.json only
    assert info.mel.hop_length == 256 and not info.verified


def test_bundled_names_list_and_default(
    tmp_path: Path, no_bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ReleaseNotFoundError, match="no release is bundled"):
        default_release()
    bundle = tmp_path / "bundle"
    build_random_release(bundle / "alpha")
    build_random_release(bundle / "beta", model_type="waveglow")
    (bundle / "not-a-release").mkdir()
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(bundle))
    assert list_releases() == ["alpha", "beta"]
    _, info = load_release("beta")
    assert info.model_type == "waveglow" and info.name == "beta"
    with pytest.raises(ReleaseNotFoundError, match="2 releases are bundled"):
        default_release()
    (bundle / "DEFAULT").write_text("beta\n")
    assert default_release() == "beta"
    monkeypatch.setenv("WAVEFLOW_DEFAULT_MODEL", "alpha")
    assert load_release()[1].name == "alpha"


def test_a_preview_release_is_never_the_default_unless_named(
    tmp_path: Path, no_bundled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    build_random_release(bundle / "universal-16k-preview")
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(bundle))
    from waveflow_py.pretrained import preview_release

    with pytest.raises(ReleaseNotFoundError, match=r"only preview releases are bundled \(universal-16k-pre"):
        default_release()
    assert preview_release() == "universal-16k-preview"
    _, info = load_release("universal-16k-preview")  # by name it loads, and says what it is
    assert info.is_preview
    build_random_release(bundle / "universal-16k")  # a real release next to it becomes the default
    assert default_release() == "universal-16k"
    assert not load_release()[1].is_preview


def test_unknown_name_lists_the_available_ones(tmp_path: Path, no_bundled: Path, monkeypatch) -> None:
    build_random_release(tmp_path / "bundle" / "alpha")
    monkeypatch.setenv("WAVEFLOW_PRETRAINED_DIR", str(tmp_path / "bundle"))
    with pytest.raises(ReleaseNotFoundError, match=r"unknown release 'nope'; available: alpha"):
        load_release("nope")
    with pytest.raises(ReleaseNotFoundError, match="directory not found"):
        load_release(tmp_path / "missing-dir")
    assert issubclass(ReleaseNotFoundError, ReleaseError) and issubclass(ReleaseError, ValueError)


def test_missing_files(release: Path, tmp_path: Path) -> None:
    (release / WEIGHTS_FILE).unlink()
    with pytest.raises(ReleaseFileMissingError, match="missing model.safetensors"):
        load_release(release)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseFileMissingError, match="expected config.json"):
        load_release(tmp_path / "empty")


def test_hash_mismatch(release: Path) -> None:
    raw = bytearray((release / WEIGHTS_FILE).read_bytes())
    raw[-1] ^= 0xFF  # flip the bits of one byte of tensor data
    (release / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(ReleaseChecksumError, match="sha256 mismatch"):
        load_release(release)


def test_unknown_format_version_and_bad_configs(release: Path) -> None:
    _rewrite_config(release, format_version=99)
    with pytest.raises(ReleaseFormatError, match="unknown format_version 99; .* reads format_version 1"):
        load_release(release)
    _rewrite_config(release, format_version=1, model_type="wavenet")
    with pytest.raises(ReleaseFormatError, match="unknown model_type 'wavenet'"):
        load_release(release)
    data = json.loads((release / CONFIG_FILE).read_text())
    data["model_type"] = "waveflow"
    data["model"]["n_flowz"] = 3
    (release / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(release)
    with pytest.raises(ReleaseFormatError, match="n_flowz"):
        load_release(release)
    (release / CONFIG_FILE).write_text("{not json")
    write_manifest(release)
    with pytest.raises(ReleaseFormatError, match="not valid JSON"):
        load_release(release)


def test_weights_that_do_not_fit_name_the_tensor_and_shapes(release: Path) -> None:
    data = json.loads((release / CONFIG_FILE).read_text())
    data["model"]["residual_channels"] = 16  # the weights were made with 8
    (release / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(release)
    with pytest.raises(
        ReleaseWeightsMismatchError, match=r"shape mismatch: \S+: weights \(\d.*\) vs model \("
    ) as e:
        load_release(release)
    assert "8" in str(e.value) and "16" in str(e.value)


def test_missing_and_unexpected_keys(release: Path) -> None:
    state = load_file(str(release / WEIGHTS_FILE))
    dropped = sorted(state)[0]
    del state[dropped]
    state["extra.weight"] = torch.zeros(3)
    save_file(state, str(release / WEIGHTS_FILE))
    _rehash(release)
    with pytest.raises(ReleaseWeightsMismatchError) as e:
        load_release(release)
    assert f"missing keys ['{dropped}']" in str(e.value) and "unexpected keys ['extra.weight']" in str(
        e.value
    )


def test_corrupt_safetensors_with_matching_hash(release: Path) -> None:
    (release / WEIGHTS_FILE).write_bytes(b"this is not a safetensors file")
    _rehash(release)
    with pytest.raises(ReleaseFormatError, match="cannot read safetensors"):
        load_release(release)


def test_save_needs_provenance_and_a_known_model(tmp_path: Path, release: Path) -> None:
    model, _ = load_release(release)
    with pytest.raises(ValueError, match="provenance"):
        save_release(tmp_path / "x", model, provenance={})
    with pytest.raises(ReleaseError, match="cannot save a Linear"):
        save_release(tmp_path / "y", torch.nn.Linear(2, 2), provenance={"weights": "random"})


def test_an_edited_config_is_refused_by_its_hash(release: Path) -> None:
    data = json.loads((release / CONFIG_FILE).read_text())
    data["temperature"] = 0.9
    (release / CONFIG_FILE).write_text(json.dumps(data))
    for load in (load_release, load_release_config):
        with pytest.raises(ReleaseChecksumError, match=r"config\.json: sha256 mismatch: SHA256SUMS records"):
            load(release)


def test_a_malformed_or_inconsistent_manifest_is_refused(release: Path) -> None:
    (release / MANIFEST_FILE).write_text("not a checksum line\n")
    with pytest.raises(ReleaseFormatError, match=r"SHA256SUMS: line 1: expected '<sha256>  <file name>'"):
        load_release(release)
    (release / MANIFEST_FILE).write_text(f"{'0' * 64}  config.json\n")
    with pytest.raises(
        ReleaseFormatError, match=r"expected the sha256 of \['config.json', 'model.safetensors'\]"
    ):
        load_release(release)
    data = json.loads((release / CONFIG_FILE).read_text())
    data["files"][WEIGHTS_FILE]["sha256"] = "0" * 64  # config and manifest disagree about the weights
    (release / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(release)
    with pytest.raises(ReleaseFormatError, match="record different sha256 for model.safetensors"):
        load_release(release)


def test_a_huge_config_is_refused_before_it_allocates(release: Path) -> None:
    """``residual_channels: 200000`` would need about 1 TB; the header check refuses it within the
    weights' own size."""
    data = json.loads((release / CONFIG_FILE).read_text())
    data["model"]["residual_channels"] = 200_000
    (release / CONFIG_FILE).write_text(json.dumps(data))
    write_manifest(release)  # even a consistently re-hashed release is checked against its weights
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    with pytest.raises(ReleaseWeightsMismatchError, match=r"weights \(8, .*\) vs model \(200000, "):
        load_release(release)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 1_000_000  # < 1 GB more


def test_releases_without_a_manifest_still_load(release: Path) -> None:
    (release / MANIFEST_FILE).unlink()
    model, info = load_release(release)
    assert info.verified and info.config_sha256 is None
    (release / WEIGHTS_FILE).write_bytes((release / WEIGHTS_FILE).read_bytes()[:-1] + b"\x00")
    with pytest.raises(ReleaseChecksumError, match="sha256 mismatch: config.json records"):
        load_release(release)  # the weights are still checked against config.json's record


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO / "pretrained").iterdir() if p.is_dir())
    + sorted(
        p for p in (REPO / "recipes" / "librispeech-mini" / "bakeoff" / "resume").glob("*") if p.is_dir()
    ),
    ids=lambda p: p.name,
)
def test_the_bundled_and_recipe_releases_load(path: Path) -> None:
    if not (path / CONFIG_FILE).is_file():
        pytest.skip(f"{path} holds no release")
    _, info = load_release(path)
    assert info.verified
    assert (info.config_sha256 is not None) == (path / MANIFEST_FILE).is_file()


def test_the_source_tree_ships_universal_16k_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """As it ships: ``pretrained/DEFAULT`` names ``universal-16k`` (not a preview), whose sampling block
    holds the fitted-magnitude projection; the preview beside it keeps the smooth one."""
    from waveflow_py.pretrained import default_release

    for var in ("WAVEFLOW_DEFAULT_MODEL", "WAVEFLOW_PRETRAINED_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert default_release() == "universal-16k"
    _, info = load_release()
    assert info.verified and not info.is_preview and info.name == "universal-16k"
    assert (info.sampling.mel_projection, info.sampling.projection_iters, info.sampling.projection_fit) == (
        1.0,
        16,
        2,
    )
    _, preview = load_release("universal-16k-preview")
    assert preview.is_preview and preview.sampling.projection_fit == 0
