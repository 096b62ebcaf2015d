"""Tune a release's sampling settings on dev clips, side by side, and optionally store them in the release.

Tunes the sampling settings together: temperature, noise truncation, excitation RMS, pitch strength and
the mel projection's strength, iterations and magnitude (it was ``benchmarks/tune_temperature.py``, named
for the first only). What it measured and chose for the bundled releases is written up in
docs/quality-per-compute.md: section 3 (the temperature grid of the bake-off weights), 9 (truncation and
the temperature cliff), 10 (excitation RMS) and 11 (pitch strength, the settings stored in
``universal-16k-preview``), 15 (the mel projection) and 16 (its fitted magnitude, the settings of
``universal-16k``).

The grid: temperature x noise truncation x excitation level (``excitation_rms``, envelope priors) and,
for a release with the pitch prior, its strength (``pitch_strength``: the pitch stage has no weights, so
it is a sampling setting, ``SamplingConfig.pitch_strength``: one model for every value; the likelihood
``waveflow eval`` reports stays the one of the strength the model was built with), and the strength of the
mel projection (``mel_projection``, a post-filter on the sample: ``--mel-projections 1.0 none``), its
Griffin-Lim iterations (``projection_iters``: ``--projection-iters 0 16``) and its magnitude
(``projection_fit``: ``--projection-fits 0 1``; 0 the mel's smooth one, n the fitted one).
For each setting every clip is vocoded through the one sampler (``inference.synthesize``, noise seed
``seed + clip index``, the same for every setting) and scored against its reference: MR-STFT, log-mel
L1, peak |sample| and (unless ``--fast``) V/UV F1 and F0 RMSE.

The setting with the lowest mean MR-STFT is chosen (ties: log-mel L1; ``--select log_mel_l1`` the other
way round), among those that keep their loudest sample within ``--max-peak`` (e.g. 1.0: nothing clips in
a 16-bit file), their V/UV F1 at ``--min-vuv-f1`` or above (e.g. Griffin-Lim's on the same clips) and
their gross pitch error at ``--max-gpe`` or below, when given. ``--write`` stores it in
the release (config.json and weights rewritten atomically by ``save_release``; the weights are
unchanged). Truncation (``StandardNormal.truncation``) squeezes the same noise draws into the normal
truncated to +-C standard deviations, at unit variance; the excitation RMS
(``inference.core.level_frames``) sets every frame of the generated excitation to that level; ``none``
turns either off.

    python experiments/tune_sampling.py RELEASE --data ../shared/data/librispeech-mini/metadata.csv \\
        --split dev --max-clips 12 --temperatures 0.98 1.0 1.02 --excitation-rms none 1.0 \\
        --pitch-strengths 1.0 1.25 1.5 [--mel-projections none 1.0] [--projection-iters 0 16] \\
        [--projection-fits 0 1] \\
        [--max-peak 1.0] [--min-vuv-f1 0.84] [--max-gpe 0.011] [--select mrstft|log_mel_l1] [--write]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np
import torch

from waveflow_py.sampling import KEEP, SamplingConfig, check_for_model, resolve_sampling


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", help="release name or directory")
    ap.add_argument("--data", required=True, help="metadata.csv or a directory of audio files")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-clips", type=int, default=12, help="clips, evenly spaced over the list")
    ap.add_argument("--max-seconds", type=float, default=4.0, help="crop each clip to this length")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    ap.add_argument(
        "--truncations",
        nargs="+",
        default=["none"],
        metavar="C",
        help="noise truncations to try, in standard deviations, or 'none' (default: none)",
    )
    ap.add_argument(
        "--excitation-rms",
        nargs="+",
        default=["none"],
        metavar="R",
        help="per-frame excitation levels to try (envelope priors), or 'none' (default: none)",
    )
    ap.add_argument(
        "--pitch-strengths",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="pitch-prior strengths to try (default: the release's)",
    )
    ap.add_argument(
        "--max-peak",
        type=float,
        default=None,
        metavar="P",
        help="choose only among settings whose loudest output sample is <= P (e.g. 1.0)",
    )
    ap.add_argument(
        "--min-vuv-f1",
        type=float,
        default=None,
        metavar="F",
        help="choose only among settings whose mean V/UV F1 is >= F (not with --fast)",
    )
    ap.add_argument(
        "--mel-projections",
        nargs="+",
        default=[KEEP],
        metavar="S",
        help="mel projection strengths to try, in [0, 1], or 'none' (default: the release's)",
    )
    ap.add_argument(
        "--projection-iters",
        nargs="+",
        default=[KEEP],
        metavar="N",
        help="Griffin-Lim iterations after the mel projection to try (default: the release's)",
    )
    ap.add_argument(
        "--projection-fits",
        nargs="+",
        default=[KEEP],
        metavar="N",
        help="fitted-magnitude updates per iteration to try (0: the mel's smooth magnitude; default: the "
        "release's)",
    )
    ap.add_argument("--max-gpe", type=float, default=None, help="keep settings with a GPE at most this")
    ap.add_argument("--select", choices=("mrstft", "log_mel_l1"), default="mrstft", help="what to minimise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fast", action="store_true", help="spectral metrics only (no pitch tracking)")
    ap.add_argument("--write", action="store_true", help="store the chosen settings in the release")
    args = ap.parse_args(argv)
    if args.fast and (args.min_vuv_f1 is not None or args.max_gpe is not None):
        ap.error("--min-vuv-f1 and --max-gpe need the pitch metrics: drop --fast")

    from waveflow_py.evaluation.clips import find_clips, read_clip
    from waveflow_py.flows.distributions import check_truncation
    from waveflow_py.inference.core import check_excitation_rms
    from waveflow_py.pretrained import load_release, save_release
    from waveflow_py.sampling import check_mel_projection, check_projection_fit, check_projection_iters

    def values(texts: list[str], check: Callable[[str], float | None], flag: str) -> list[float | None]:
        try:
            return [None if c.lower() in ("none", "off") else check(c) for c in texts]
        except ValueError as e:
            ap.error(f"{flag}: {e}")

    truncations = values(args.truncations, check_truncation, "--truncations")
    levels = values(args.excitation_rms, check_excitation_rms, "--excitation-rms")
    projections: list[float | str | None] = [
        KEEP if text == KEEP else value
        for text, value in zip(
            args.mel_projections,
            values(
                [t if t != KEEP else "none" for t in args.mel_projections],
                check_mel_projection,
                "--mel-projections",
            ),
            strict=True,
        )
    ]
    base, info = load_release(args.release)
    strengths: list[float | None] = [None] if args.pitch_strengths is None else list(args.pitch_strengths)
    try:
        for s in strengths:  # the pitch strength is a sampling setting: one model for every value
            check_for_model(SamplingConfig(pitch_strength=s), base.config)
        if any(r is not None for r in levels):
            check_excitation_rms(1.0, base)
    except ValueError as e:
        ap.error(str(e))
    cfg = info.config.mel
    clips = find_clips(args.data, split=args.split, max_clips=args.max_clips)
    refs = [read_clip(clip, cfg.sample_rate, args.max_seconds).astype(np.float32) for clip in clips]

    rows = []
    try:
        iterations = [KEEP if t == KEEP else check_projection_iters(t) for t in args.projection_iters]
        fits = [KEEP if t == KEEP else check_projection_fit(t) for t in args.projection_fits]
    except ValueError as e:
        ap.error(str(e))
    grid = [
        (s, t, c, r, p, g, f)
        for s in strengths
        for t in args.temperatures
        for c in truncations
        for r in levels
        for p in projections
        for g in iterations
        for f in fits
    ]
    for point in grid:
        means = _score(base, refs, _settings(base, *point), args.seed, fast=args.fast)
        rows.append((point, means))
        print(
            f"{_describe(point)}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()),
            flush=True,
        )
    allowed = [
        r
        for r in rows
        if (args.max_peak is None or r[1]["peak"] <= args.max_peak)
        and (args.min_vuv_f1 is None or r[1]["vuv_f1"] >= args.min_vuv_f1)
        and (args.max_gpe is None or r[1]["gpe"] <= args.max_gpe)
    ]
    if not allowed:
        print("no setting meets --max-peak / --min-vuv-f1 / --max-gpe: widen the grid")
        return 1
    other = "log_mel_l1" if args.select == "mrstft" else "mrstft"
    best = min(allowed, key=lambda r: (r[1][args.select], r[1][other]))
    print(
        "\n| pitch strength | temperature | truncation | excitation RMS | mel projection | iterations "
        "| fit | MR-STFT | log-mel L1 | peak | V/UV F1 | GPE | F0 RMSE (cents) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for point, m in rows:
        strength, temp, trunc, level, proj, iters, fit = point
        mark = " (chosen)" if point == best[0] else ""
        name = "release's" if strength is None else f"{strength:g}"
        print(
            f"| {name}{mark} | {temp:.2f} | {_name(trunc)} | {_name(level)} | {_name(proj)} | "
            f"{_name(iters)} | {_name(fit)} | "
            f"{m['mrstft']:.4f} | {m['log_mel_l1']:.4f} | {m['peak']:.3f} | {m['vuv_f1']:.3f} | "
            f"{m['gpe']:.3f} | {m['f0_rmse_cents']:.1f} |"
        )
    limits = [f"peak <= {args.max_peak:g}"] if args.max_peak is not None else []
    limits += [f"V/UV F1 >= {args.min_vuv_f1:g}"] if args.min_vuv_f1 is not None else []
    limits += [f"GPE <= {args.max_gpe:g}"] if args.max_gpe is not None else []
    limits += [f"lowest {args.select}"]
    print(
        f"\nchosen: {_describe(best[0])} ({len(refs)} {args.split} clips of <= {args.max_seconds} s"
        + "".join(f", {lim}" for lim in limits)
        + ")"
    )
    if args.write:
        save_release(info.path, base, provenance=info.provenance, sampling=_settings(base, *best[0]))
        print(f"stored {_describe(best[0])} in {info.path}")
    return 0


def _settings(
    model: torch.nn.Module,
    strength: float | None,
    temp: float,
    trunc: float | None,
    level: float | None,
    projection: float | str | None = KEEP,
    iters: int | str = KEEP,
    fit: int | str = KEEP,
) -> SamplingConfig:
    """One grid point over the release's settings (a strength of ``None`` or a projection of ``KEEP``:
    the release's)."""
    return resolve_sampling(
        model.sampling,
        temperature=temp,
        truncation=trunc,
        excitation_rms=level,
        pitch_strength=KEEP if strength is None else strength,
        mel_projection=projection,
        projection_iters=iters,
        projection_fit=fit,
    )


def _score(
    model: torch.nn.Module, refs: list[np.ndarray], settings: SamplingConfig, seed: int, fast: bool
) -> dict:
    """Mean MR-STFT, log-mel L1, V/UV F1 and F0 RMSE of ``model``'s audio for the clips, and the peak."""
    from waveflow_py.audio import MelSpectrogram
    from waveflow_py.evaluation.pitch import pitch_metrics
    from waveflow_py.evaluation.spectral import log_mel_l1, multi_resolution_stft
    from waveflow_py.inference.synthesis import synthesize

    cfg = model.config.mel
    front = MelSpectrogram(cfg)
    keys = ("mrstft", "log_mel_l1", "peak", "vuv_f1", "gpe", "f0_rmse_cents")
    scores: dict[str, list[float]] = {k: [] for k in keys}
    for i, ref in enumerate(refs):
        with torch.no_grad():
            mel = front(torch.from_numpy(ref)[None])
            gen = torch.Generator().manual_seed(seed + i)
            out, _ = synthesize(model, mel, sampling=settings, generator=gen)
        deg = out[0, : ref.size].numpy()
        scores["mrstft"].append(multi_resolution_stft(ref, deg)["total"])
        scores["log_mel_l1"].append(log_mel_l1(ref, deg, cfg.sample_rate, cfg))
        scores["peak"].append(float(np.abs(deg).max()))
        if not fast:
            p = pitch_metrics(ref, deg, cfg.sample_rate)
            scores["vuv_f1"].append(p["vuv_f1"])
            scores["gpe"].append(p["gpe"])
            scores["f0_rmse_cents"].append(p["f0_rmse_cents"])
    means = {k: float(np.nanmean(v)) if v else math.nan for k, v in scores.items()}
    means["peak"] = max(scores["peak"])  # the loudest sample of any clip
    return means


def _describe(setting: tuple) -> str:
    strength, temp, trunc, level, projection, iters, fit = setting
    out = f"temperature {temp:.2f}, truncation {_name(trunc)}, excitation RMS {_name(level)}"
    out = out if projection == KEEP else f"{out}, mel projection {_name(projection)}"
    out = out if iters == KEEP else f"{out}, {iters} Griffin-Lim iterations"
    out = out if fit == KEEP else f"{out}, fit {fit}"
    return out if strength is None else f"pitch strength {strength:g}, {out}"


def _name(value: float | str | None) -> str:
    return "none" if value is None else value if isinstance(value, str) else f"{value:g}"


if __name__ == "__main__":
    sys.exit(main())
