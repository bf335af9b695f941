"""How repeatable is the energy harness's latency? Two sets of sessions of the same networks.

Exports ``--n`` networks of the default search space (scrambled Sobol, int8), then, for each timing
variant, times every network twice with :func:`~moo_audio.energy.measure.time_models` (interleaved
passes, independent sessions) and reports how far the two timings are apart (median and 90th
percentile of the relative difference, worst, share within +/-10%) in
``benchmarks/out/timing_noise.md``. Variants: onnxruntime's memory arena and memory pattern on or
off (``make_session(memory_arena=...)``), latency the median or the minimum of the repeats
(``TimingSettings.statistic``), one session per model for all passes or a new session per pass
(``TimingSettings.session_per_pass``), 3 passes or more until two agree
(``TimingSettings.max_passes``, ``confirm_rel``). The harness's default is arena off, min, one
session per model, confirmed passes::

    python benchmarks/timing_noise.py            # 40 networks
    python benchmarks/timing_noise.py --quick    # 4 networks, short timing
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from moo_audio.energy.bundle import design
from moo_audio.energy.measure import TimingSettings, export_onnx, random_input, time_models
from moo_audio.onnx_io import INPUT_NAME

OUT = Path(__file__).parent / "out"
VARIANTS = {  # label: (memory arena, statistic, session per pass, passes confirmed)
    "arena on, median, one session, fixed passes": (True, "median", False, False),
    "arena off, min, one session, fixed passes": (False, "min", False, False),
    "arena off, min, session per pass, fixed passes": (False, "min", True, False),
    "arena off, min, session per pass, confirmed": (False, "min", True, True),
    "arena off, min, one session, confirmed (default)": (False, "min", False, True),
}


def latencies(paths, feeds, memory_arena: bool, settings: TimingSettings) -> np.ndarray:
    """Latency (ms) per network from one call of ``time_models``."""
    out = np.empty(len(paths))
    for i, timing in time_models(paths, feeds, settings, memory_arena=memory_arena):
        out[i] = timing.latency_ms
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="networks")
    parser.add_argument("--seed", type=int, default=5, help="Sobol seed")
    parser.add_argument("--quick", action="store_true", help="4 networks, short timing")
    args = parser.parse_args()
    n = 4 if args.quick else args.n
    base = TimingSettings()
    if args.quick:
        base = replace(base, max_s=0.05, passes=2, max_passes=3, min_round_s=0.0)
    genomes = list(design(max(n, 8), seed=args.seed).values())[:n]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_onnx(g, Path(tmp) / f"{i}.onnx", "int8") for i, g in enumerate(genomes)]
        feeds = [{INPUT_NAME: random_input(g)} for g in genomes]
        lines = [f"{n} networks (int8, 1 thread), {base.passes} interleaved passes (fixed) or {base.passes} "
                 f"to {base.max_passes} (confirmed); relative difference between two timings:", "",
                 "| variant | median | 90th percentile | worst | within +/-10% |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for label, (arena, statistic, per_pass, confirmed) in VARIANTS.items():
            settings = replace(base, statistic=statistic, session_per_pass=per_pass,
                               max_passes=base.max_passes if confirmed else base.passes)
            first, second = (latencies(paths, feeds, arena, settings) for _ in range(2))
            diff = np.abs(second - first) / first
            lines.append(f"| {label} | {np.median(diff):.1%} | {np.percentile(diff, 90):.1%} | "
                         f"{diff.max():.1%} | {np.mean(diff <= 0.1):.0%} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    OUT.mkdir(exist_ok=True)
    (OUT / "timing_noise.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
