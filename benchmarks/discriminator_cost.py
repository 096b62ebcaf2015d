"""What the adversarial stage costs: the discriminators' parameters and CPU milliseconds per training step.

On one thread, for ``--items`` crops of ``--crop`` samples (the objective's defaults: 2 x 8192), the median
CPU time (``time.process_time``) over ``--repeats`` runs of:

* ``generator terms``: the least-squares generator loss and feature matching of the generated crops
  (the discriminators on the generated crops with autograd, on the reference crops without) and their
  backward pass to the audio: what the generator step adds, before the gradient enters the vocoder;
* ``discriminator step``: forward on the reference and generated crops, backward, Adam;
* for scale, ``generator step``: one fine-tuning step of ``--release`` with the spectral objective
  (NLL + MR-STFT + log-mel on the same crops, backward through the synthesis path, Adam), the step the
  adversarial terms are added to (``--release none``: skipped).

    python benchmarks/discriminator_cost.py --crop 8192 --items 2 --repeats 7

The discriminators are the ``train.objective`` defaults unless ``--periods``, ``--period-channels``,
``--resolutions`` (``n_fft:hop`` each) or ``--resolution-channels`` say otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, oneDNN primitives)
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return 1000 * statistics.median(times)


def _speech_like(items: int, n: int, sr: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n) / sr
    f0 = 100 + 80 * torch.rand(items, 1, generator=g)
    phase = 2 * torch.pi * f0 * t
    x = sum(torch.sin(k * phase) / k for k in range(1, 8))
    return 0.2 * x + 0.005 * torch.randn(items, n, generator=g)


def _objective_config(args: argparse.Namespace):  # -> ObjectiveConfig
    from waveflow_py.config import ObjectiveConfig, from_dict

    over: dict[str, object] = {"stft": 1.0, "mel": 1.0, "adversarial": 1.0, "feature_matching": 2.0}
    over |= {"crop": args.crop, "items": args.items}
    if args.periods is not None:
        over["disc_periods"] = args.periods
    if args.period_channels is not None:
        over["disc_period_channels"] = args.period_channels
    if args.resolutions is not None:
        over["disc_resolutions"] = [[int(v) for v in r.split(":")] for r in args.resolutions]
    if args.resolution_channels is not None:
        over["disc_resolution_channels"] = args.resolution_channels
    return from_dict(ObjectiveConfig, over)


def _generator_step_ms(release: str, cfg, audio: torch.Tensor, repeats: int) -> float:
    from waveflow_py.audio import MelSpectrogram
    from waveflow_py.pretrained import load_release
    from waveflow_py.train.objective import TrainingObjective

    model, info = load_release(release)
    model.train()
    mel_fn = MelSpectrogram(info.config.mel)
    spectral = type(cfg)(**{**cfg.__dict__, "adversarial": 0.0, "feature_matching": 0.0})
    objective = TrainingObjective(model, spectral, mel_fn, temperature=info.temperature or 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    with torch.no_grad():
        mel = mel_fn(audio)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        objective(audio, mel, 0).loss(spectral).backward()
        opt.step()

    return _median_ms(step, repeats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=8192)
    ap.add_argument("--items", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sample-rate", type=int, default=16000, help="of the test signal (not of the timing)")
    ap.add_argument("--release", default="universal-16k-preview", help="'none': no generator step")
    ap.add_argument("--periods", type=int, nargs="*")
    ap.add_argument("--period-channels", type=int, nargs="+")
    ap.add_argument("--resolutions", nargs="*", help="n_fft:hop each")
    ap.add_argument("--resolution-channels", type=int, nargs="+")
    args = ap.parse_args()

    from waveflow_py.dtypes import speed_flags
    from waveflow_py.inference.bench import hardware_info
    from waveflow_py.train.adversarial import Adversary, Discriminators
    from waveflow_py.train.distributed import DistInfo

    torch.set_num_threads(1)
    cfg = _objective_config(args)
    print(f"CPU: {hardware_info(torch.device('cpu'))['cpu']}; flags: {speed_flags()}; {os.cpu_count()} cores")
    print(f"torch {torch.__version__}, 1 thread; {args.items} crops x {args.crop} samples")
    torch.manual_seed(0)
    critic = Discriminators.from_config(cfg)
    print("\n| discriminator | parameters |\n|---|---:|")
    for judge in critic.judges:
        name = f"period {judge.period}" if hasattr(judge, "period") else f"STFT {judge.n_fft}/{judge.hop}"
        print(f"| {name} | {sum(p.numel() for p in judge.parameters()):,} |")
    print(f"| **all** | **{sum(p.numel() for p in critic.parameters()):,}** |")

    reference = _speech_like(args.items, args.crop, args.sample_rate)
    generated = reference + 0.05 * torch.randn_like(reference)
    adversary = Adversary(critic, cfg, DistInfo(), torch.device("cpu"))

    def generator_terms() -> None:
        audio = generated.clone().requires_grad_()
        adv, fm = critic.generator_terms(reference, audio)
        (adv + fm).backward()

    rows = [
        ("generator terms (forward + backward to the audio)", _median_ms(generator_terms, args.repeats)),
        (
            "discriminator step (forward, backward, Adam)",
            _median_ms(lambda: adversary.step(reference, generated), args.repeats),
        ),
    ]
    if args.release != "none":
        ms = _generator_step_ms(args.release, cfg, reference, args.repeats)
        rows.append((f"generator step of {args.release}, NLL + MR-STFT + log-mel", ms))
    print("\n| CPU time per training step | ms |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
