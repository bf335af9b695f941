"""How repeatable is the energy harness's latency? Two sets of sessions of the same networks.

Exports ``--n`` networks of the default search space (scrambled Sobol, int8), then, for each timing
variant, builds two independent sets of onnxruntime sessions and times every network in each set
with ``TimingSettings`` (interleaved passes), and reports how far the two sets' latencies are apart
(median and 90th percentile of the relative difference, share within +/-10%). Variants: onnxruntime's
memory arena and memory pattern on or off (``make_session(memory_arena=...)``), latency the median or
the minimum of the repeats (``TimingSettings.statistic``). The harness's default is arena off, min::

    python benchmarks/timing_noise.py            # 30 networks
    python benchmarks/timing_noise.py --quick    # 4 networks, short timing
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from moo_audio.energy.bundle import design
from moo_audio.energy.measure import (
    INPUT_NAME,
    TimingSettings,
    export_onnx,
    make_session,
    random_input,
    summarise,
    time_pass,
)

VARIANTS = {  # label: (memory arena, statistic)
    "arena on, median": (True, "median"),
    "arena on, min": (True, "min"),
    "arena off, median": (False, "median"),
    "arena off, min (default)": (False, "min"),
}


def latencies(paths, feeds, memory_arena: bool, settings: TimingSettings) -> np.ndarray:
    """One set of sessions, timed in interleaved passes: latency (ms) per network."""
    sessions = [make_session(p, memory_arena=memory_arena) for p in paths]
    times: list[list[np.ndarray]] = [[] for _ in paths]
    for _ in range(settings.passes):
        for i, (session, feed) in enumerate(zip(sessions, feeds)):
            times[i].append(time_pass(session, feed, settings)[0])
    return np.array([summarise(t, [None] * len(t), settings.statistic).latency_ms for t in times])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="networks")
    parser.add_argument("--seed", type=int, default=5, help="Sobol seed")
    parser.add_argument("--quick", action="store_true", help="4 networks, short timing")
    args = parser.parse_args()
    n = 4 if args.quick else args.n
    base = TimingSettings(max_s=0.05, passes=2) if args.quick else TimingSettings()
    genomes = list(design(max(n, 8), seed=args.seed).values())[:n]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_onnx(g, Path(tmp) / f"{i}.onnx", "int8") for i, g in enumerate(genomes)]
        feeds = [{INPUT_NAME: random_input(g)} for g in genomes]
        lines = [f"{n} networks (int8, 1 thread), {base.passes} interleaved passes per set; relative "
                 "difference between two sets of sessions:", "",
                 "| variant | median | 90th percentile | within +/-10% |", "| --- | ---: | ---: | ---: |"]
        for label, (arena, statistic) in VARIANTS.items():
            settings = replace(base, statistic=statistic)
            first, second = (latencies(paths, feeds, arena, settings) for _ in range(2))
            diff = np.abs(second - first) / first
            lines.append(f"| {label} | {np.median(diff):.1%} | {np.percentile(diff, 90):.1%} | "
                         f"{np.mean(diff <= 0.1):.0%} |")
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
