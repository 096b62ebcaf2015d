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
    quick = bench_cases(True)
    assert [(c.r, c.h, c.batch, c.dtype) for c in quick] == [(64, 16, 1, "fp32"), (64, 16, 1, "bf16")]
    full = bench_cases(False, models=("waveflow", "waveglow"))
    assert len(full) == 2 * 2 * 2 * 2 + 2 * 2
    with pytest.raises(ValueError, match="dtype"):
        bench_cases(True, dtypes=["int8"])
    with pytest.raises(ValueError, match="models"):
        bench_cases(True, models=["wavenet"])


def test_tiny_run_table_and_results_file(tmp_path) -> None:
    case = BenchCase("waveflow", 64, 16, 1, "fp32")
    cpu = torch.device("cpu")
    frame = 256 / 22050  # one mel frame
    results = [run_case(case, m, device=cpu, seconds=frame, plain_seconds=frame, repeats=1)
               for m in ("plain", "cached", "fused")]
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
        ["bench", "--quick", "--threads", "1", "--methods", "cached", "--models", "waveflow", "waveglow",
         "--precision", "--results", "out.md", "--append"]
    )
    assert args.quick and args.threads == 1 and args.methods == ["cached"] and args.append
    assert args.models == ["waveflow", "waveglow"] and args.precision and args.results == "out.md"
