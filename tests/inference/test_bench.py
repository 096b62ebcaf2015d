"""The benchmark library: a tiny run gives consistent rates, a side-by-side table and a results file."""

from __future__ import annotations

import math

import pytest
import torch

from waveflow_py.inference.bench import (
    BenchCase,
    bench_cases,
    format_table,
    hardware_info,
    run_case,
    write_results,
)


def test_grid_and_validation() -> None:
    quick = bench_cases(True)  # auto stays symbolic: measured per model when its case runs
    assert [(c.r, c.h, c.batch, c.dtype) for c in quick] == [(64, 16, 1, d) for d in ("fp32", "auto")]
    assert [c.dtype for c in bench_cases(True, dtypes=["fp32", "bf16"])] == ["fp32", "bf16"]
    full = bench_cases(False, models=("waveflow", "waveglow"), dtypes=["fp32", "bf16"])
    assert len(full) == 2 * 2 * 2 * 2 + 2 * 2
    with pytest.raises(ValueError, match="dtype"):
        bench_cases(True, dtypes=["int8"])
    with pytest.raises(ValueError, match="models"):
        bench_cases(True, models=["wavenet"])


def test_tiny_run_table_and_results_file(tmp_path) -> None:
    case = BenchCase("waveflow", 64, 16, 1, "fp32")
    cpu = torch.device("cpu")
    frame = 256 / 22050  # one mel frame
    results = [
        run_case(case, m, device=cpu, seconds=frame, plain_seconds=frame, repeats=1)
        for m in ("plain", "cached", "fused")
    ]
    plain, cached, fused = results
    for r in (plain, cached):
        assert r.params == 5950164 and r.wall_s > 0 and r.audio_s == pytest.approx(frame)
        assert r.rtf == pytest.approx(1 / r.xrt) and r.khz == pytest.approx(r.xrt * 22.05)
    assert fused.note == "needs CUDA" and math.isnan(fused.xrt)
    table = format_table(results)
    assert table.count("\n") == 2 and "n/a (needs CUDA)" in table and "cached / plain" in table
    out = tmp_path / "RESULTS.md"
    info = hardware_info(cpu)
    write_results(str(out), table, info, "waveflow bench --quick", ["a note"])
    write_results(str(out), table, info, "waveflow bench --quick --threads 1", append=True)
    text = out.read_text()
    assert text.count("## Run of") == 2 and "waveflow bench --quick --threads 1" in text
    assert info["cpu"] in text and "a note" in text


def test_cli_parses_bench_options() -> None:
    from waveflow_py.cli import build_parser

    args = build_parser().parse_args(
        [
            "bench",
            "--quick",
            "--threads",
            "1",
            "--methods",
            "cached",
            "--models",
            "waveflow",
            "waveglow",
            "--precision",
            "--results",
            "out.md",
            "--append",
        ]
    )
    assert args.quick and args.threads == 1 and args.methods == ["cached"] and args.append
    assert args.models == ["waveflow", "waveglow"] and args.precision and args.results == "out.md"


def test_cli_quick_bench_of_one_frame_prints_the_table(tmp_path, capsys) -> None:
    """``waveflow bench --quick`` end to end at its smallest: one mel frame of audio, fp32, one repeat;
    the printed table has one row whose rates agree with each other, and the results file is written."""
    from waveflow_py.cli import main

    frame = f"{256 / 22050:.6f}"
    results = tmp_path / "RESULTS.md"
    rc = main(
        [
            "bench",
            "--quick",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--dtype",
            "fp32",
            "--methods",
            "plain",
            "cached",
            "fused",
            "--seconds",
            frame,
            "--plain-seconds",
            frame,
            "--repeats",
            "1",
            "--results",
            str(results),
            "--note",
            "one frame",
        ]
    )
    assert rc == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("|")]
    assert len(lines) == 3  # header, rule, one case
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    row = dict(zip(head, (c.strip() for c in lines[2].strip("|").split("|")), strict=True))
    case = (row["model"], row["r"], row["h"], row["batch"], row["dtype"])
    assert case == ("waveflow", "64", "16", "1", "fp32")
    assert row["params"] == "5.95 M" and row["fused"] == "n/a (needs CUDA)"
    rates = {}
    for method in ("plain", "cached"):
        khz, xrt, rtf = (
            float(part.split()[-1 if i == 2 else 0].rstrip("x"))
            for i, part in enumerate(row[method].split(", "))
        )
        # the cells are rounded (kHz to 2 decimals, x RT and RTF to 3 significant digits)
        assert khz == pytest.approx(xrt * 22.05, rel=0.01, abs=0.006)
        assert rtf == pytest.approx(1 / xrt, rel=0.01)
        rates[method] = xrt
    ratio = float(row["cached / plain"].rstrip("x"))
    assert ratio == pytest.approx(rates["cached"] / rates["plain"], rel=0.1)
    text = results.read_text()
    assert lines[2] in text and "one frame" in text
