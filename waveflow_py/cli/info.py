"""``waveflow info [MODEL]``: what a release holds (or, without MODEL, the bundled releases).

Prints the model type, the model config, parameter count, mel settings, provenance and whether the
files' sha256 matched the ones recorded in SHA256SUMS (older releases: the weights' in config.json;
the weights are loaded to check they fit).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "show what a release holds: model, mel settings, provenance, verified sha256"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", nargs="?", default=None, help="release name or directory (omit to list the bundled releases)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{len(value)} values]"
    return str(value)


def _sources(info: Any) -> dict[str, str]:
    """Where each resolved sampling setting comes from: the release, the model (a pitch strength left as
    built) or the library default."""
    out = {}
    for key, value in info.sampling.to_dict().items():
        if key == "pitch_strength" and value is None:
            out[key] = (
                "model: source_filter.pitch_strength" if info.config.source_filter.pitch != "none" else "-"
            )
        else:
            out[key] = "release" if key in info.stored_sampling else "library default"
    return out


def _summary(info: Any) -> dict[str, Any]:
    from waveflow_py.config import to_dict
    from waveflow_py.sampling import describe_sampling, inert_settings

    model = to_dict(info.config)
    sampling = describe_sampling(info.sampling, info.config)
    mel = model.pop("mel")
    return {
        "name": info.name,
        "path": str(info.path),
        "model_type": info.model_type,
        "parameters": info.num_parameters,
        "sample_rate": info.sample_rate,
        "model": model,
        "mel": mel,
        "provenance": info.provenance,
        "sha256": info.sha256,
        "config_sha256": info.config_sha256,  # None: a release without SHA256SUMS (config not hash-checked)
        "verified": info.verified,
        "format_version": info.format_version,
        "untrained": info.is_untrained,
        # the resolved sampling settings (release > library default), where each comes from, and the
        # settings another one makes inert
        "sampling": sampling,
        "sampling_source": _sources(info),
        "sampling_inert": inert_settings(info.sampling),
        "temperature": sampling["temperature"],
        "truncation": sampling["truncation"],  # noise truncation in standard deviations (None: untruncated)
        "excitation_rms": sampling["excitation_rms"],  # per-frame excitation level (None: off)
    }


def _print_sampling(data: dict[str, Any]) -> None:
    """The resolved sampling settings, one line each, with where each comes from."""
    src = data["sampling_source"]
    print(f"temperature: {data['temperature']:g} ({src['temperature']})")
    c = data["truncation"]
    trunc = "none (untruncated noise)" if c is None else f"+-{c:g} standard deviations (unit variance)"
    print(f"truncation:  {trunc} ({src['truncation']})")
    rms = data["excitation_rms"]
    level = "as the flows give it" if rms is None else f"every frame set to RMS {rms:g}"
    print(f"excitation:  {level} ({src['excitation_rms']})")
    strength = data["sampling"]["pitch_strength"]
    print(
        "pitch:       "
        + ("no pitch prior" if strength is None else f"strength {strength:g} ({src['pitch_strength']})")
    )
    projection, iters = data["sampling"].get("mel_projection"), data["sampling"].get("projection_iters")
    fit = data["sampling"].get("projection_fit") or 0
    print(
        "projection:  "
        + ("off (the flow's sample)" if projection is None else f"mel projection, strength {projection:g}")
        + (f", fitted magnitude ({fit} updates per iteration)" if projection is not None and fit else "")
        + (f", then {iters} Griffin-Lim iterations" if iters else "")
        + f" ({src.get('mel_projection', 'library default')})"
    )
    for line in data["sampling_inert"]:
        print(f"note:        {line}")


def run(args: argparse.Namespace) -> int:
    from waveflow_py.pretrained import (
        ReleaseNotFoundError,
        default_release,
        list_releases,
        load_release,
        release_dirs,
    )

    if args.model is None:
        names = list_releases()
        try:
            default: str | None = default_release()
            why = "used when no model is named"
        except ReleaseNotFoundError as e:
            default, why = None, str(e)
        dirs = [str(d) for d in release_dirs()]
        if args.json:
            print(json.dumps({"releases": names, "default": default, "searched": dirs}))
            return 0
        print("bundled releases: " + (", ".join(names) if names else "none"))
        print(f"default:  {default or 'none'} ({why})")
        print("searched: " + ", ".join(dirs))
        return 0
    from waveflow_py.dtypes import short_name
    from waveflow_py.inference.precision import choose_dtype

    model, info = load_release(args.model)
    data = _summary(info)
    choice = choose_dtype(model, "cpu")  # measured once per machine and model, then cached
    del model
    data["dtype_auto"] = {"device": "cpu", "dtype": short_name(choice.dtype), "reason": choice.reason}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"release:     {data['name']}  ({data['path']})")
    print(f"model:       {data['model_type']}, {data['parameters']:,} parameters, {data['sample_rate']} Hz")
    if data["untrained"]:
        print("WARNING:     untrained (random) weights: this release shows the pipeline, not quality")
    shown = {k: v for k, v in data["model"].items() if k != "source_filter"} | data["model"]["source_filter"]
    print("config:      " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
    mel = data["mel"]
    print(
        f"mel:         preset={mel['preset']} n_mels={mel['n_mels']} n_fft={mel['n_fft']} "
        f"hop={mel['hop_length']} win={mel['win_length']} fmin={_fmt(mel['fmin'])} fmax={_fmt(mel['fmax'])} "
        f"log={mel['log']} clamp={_fmt(mel['clamp'])} padding={mel['padding']} "
        f"stats={'yes' if mel['mean'] is not None else 'no'}"
    )
    print("provenance:  " + (", ".join(f"{k}={_fmt(v)}" for k, v in info.provenance.items()) or "(none)"))
    state = "verified" if info.verified else "NOT verified"
    print(f"weights:     model.safetensors sha256 {info.sha256} ({state})")
    if info.config_sha256 is None:
        print("config file: config.json not hash-checked (a release written before SHA256SUMS)")
    else:
        print(f"config file: config.json sha256 {info.config_sha256} (verified, SHA256SUMS)")
    print(f"format:      {data['format_version']}")
    _print_sampling(data)
    print(f"dtype auto:  {short_name(choice.dtype)} on cpu ({choice.reason})")
    return 0
