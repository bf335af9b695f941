"""How well does the random forest predict energy measured on this host?

Measures a fresh scrambled-Sobol sample of the default search space plus the MobileNet
baselines, holds out 20%, fits the energy model on the rest, with the linear operator base
(the default) and without it (the forest alone), and prints their held-out accuracy beside
the harness's own repeat-to-repeat noise (a subset measured a second time), then measures the
reference networks (MobileNetV1/V2 x1.0, the smallest and the largest genome of the space) in
float32 and int8. Writes CSVs and a markdown report under ``benchmarks/out/``.

    python benchmarks/energy_model.py            # n=200 (+8 baselines)
    python benchmarks/energy_model.py --quick    # n=24, a smoke run
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from moo_audio.costs import network_cost
from moo_audio.energy.bundle import design
from moo_audio.energy.forest import BASES, accuracy, fit_measurements
from moo_audio.energy.measure import TimingSettings, measure_genomes
from moo_audio.energy.profiles import load_profile
from moo_audio.energy.records import MeasurementWriter, write_measurements
from moo_audio.nets import baseline
from moo_audio.space import Block, FrontEnd, Genome, SearchSpace

OUT = Path(__file__).parent / "out"


def extreme_genomes(space: SearchSpace) -> dict[str, Genome]:
    """Smallest (1 block, fewest channels, coarsest front end) and largest (most blocks,
    widest channels, finest front end) genomes of the space: plain 3x3-kernel convolutions,
    stride 1, 2-D representation."""
    def genome(n_blocks: int, channels: int, n_mels: int, win: int, hop: int, clip: int) -> Genome:
        frontend = FrontEnd(space.sample_rate, clip, n_mels, win, hop, "2d")
        return Genome(frontend, (Block("conv", channels, min(space.kernels), min(space.strides)),) * n_blocks,
                      space.n_classes)

    return {"smallest": genome(space.min_blocks, min(space.channels), min(space.n_mels), max(space.win_ms),
                               max(space.hop_ms), min(space.clip_ms)),
            "largest": genome(space.max_blocks, max(space.channels), max(space.n_mels), min(space.win_ms),
                              min(space.hop_ms), max(space.clip_ms))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="networks sampled from the space")
    parser.add_argument("--quick", action="store_true", help="n=24, 5 re-measured, short timing")
    parser.add_argument("--dtype", choices=("int8", "float32"), default="int8")
    parser.add_argument("--profile", default="host-cpu-core")
    parser.add_argument("--seed", type=int, default=1, help="Sobol seed (the CLI default is 0)")
    parser.add_argument("--statistic", choices=("min", "median"), default="min",
                        help="latency summary of the repeats (TimingSettings.statistic)")
    parser.add_argument("--remeasure", type=int, default=30, help="networks measured twice (noise)")
    args = parser.parse_args()
    n, remeasure = (24, 5) if args.quick else (args.n, args.remeasure)
    settings = TimingSettings(statistic=args.statistic)
    if args.quick:
        settings = replace(settings, max_s=0.1, passes=2, max_passes=2, min_round_s=0.0)
    profile = load_profile(args.profile)
    OUT.mkdir(exist_ok=True)
    load_before = os.getloadavg()

    genomes = design(n, seed=args.seed)
    start = time.perf_counter()
    with MeasurementWriter(OUT / "energy_model_measurements.csv", overwrite=True) as writer:
        def report(i, r):
            writer.write(r)
            print(f"[{i + 1:>3}/{len(genomes)}] {r.model_id:<18} {r.latency_ms:9.4f} ms "
                  f"{r.energy_mj:9.4f} mJ", flush=True)
        records = measure_genomes(genomes, profile, dtype=args.dtype, settings=settings, on_record=report)
    measure_s = time.perf_counter() - start

    train, test = train_test_split(records, test_size=0.2, random_state=args.seed)
    accuracies = {}
    for base in BASES:
        model = fit_measurements(train, folds=5, base=base)
        predicted = model.predict_mj([r.genome for r in test])
        accuracies[model.name.split("(")[0]] = (model.cv_report, accuracy([r.energy_mj for r in test], predicted),
                                                model.forest_weight)
        if base == "operators":  # the default model
            write_measurements([replace(r, predicted_mj=float(p)) for r, p in zip(test, predicted)],
                               OUT / "energy_model_heldout.csv", overwrite=True)

    rng = np.random.default_rng(args.seed)
    again_ids = rng.choice(len(records), size=min(remeasure, len(records)), replace=False)
    first = [records[i] for i in sorted(again_ids)]
    second = measure_genomes({r.model_id: r.genome for r in first}, profile, dtype=args.dtype,
                             settings=settings)
    noise = np.array([abs(b.energy_mj - a.energy_mj) / a.energy_mj for a, b in zip(first, second)])

    reference = {"mobilenet_v1_x1.00": baseline("mobilenet_v1"),
                 "mobilenet_v2_x1.00": baseline("mobilenet_v2"), **extreme_genomes(SearchSpace())}
    ref_records = [r for dtype in ("float32", "int8")
                   for r in measure_genomes(reference, profile, dtype=dtype, settings=settings)]
    write_measurements(ref_records, OUT / "energy_model_reference.csv", overwrite=True, allow_mixed=True)
    load_after = os.getloadavg()

    command = f"python benchmarks/energy_model.py{' --quick' if args.quick else f' --n {n}'}"
    text = _report(command, args, settings, profile, records, measure_s, (load_before[0], load_after[0]),
                   accuracies, noise, ref_records)
    (OUT / "energy_model.md").write_text(text)
    print("\n" + text)


def _report(command, args, settings, profile, records, measure_s, loads, accuracies, noise, ref_records) -> str:
    """The markdown report."""
    setup = records[0]
    lines = [
        "# Energy model benchmark", "",
        f"`{command}` (dtype {args.dtype}, seed {args.seed})", "",
        f"- hardware: {setup.hardware}; runtime: {setup.runtime}; {setup.threads} thread",
        (f"- latency: {setup.latency_statistic} of all repeats of at least {settings.passes} interleaved "
         f"passes, more (up to {settings.max_passes}) until a model's two lowest agree within "
         f"{settings.confirm_rel:.0%} (TimingSettings)"),
        f"- energy method: {setup.method}, device profile {profile.name} ({profile.active_power_w:g} W)",
        f"- 1-minute load average: {loads[0]:.2f} before, {loads[1]:.2f} after",
        (f"- measured {len(records)} networks in {measure_s:.0f} s "
         f"({measure_s / len(records):.2f} s each)"), "",
        "| | n | MAPE | R^2 (log) | within +/-10% | within +/-20% |", "|---|---|---|---|---|---|",
    ]
    for kind, (cv, held_out, _) in accuracies.items():
        for label, r in ((f"{kind}, 5-fold CV on the training set", cv), (f"{kind}, held-out 20%", held_out)):
            lines.append(f"| {label} | {r.n} | {100 * r.mape:.1f}% | {r.r2_log:.3f} | "
                         f"{100 * r.within_10:.0f}% | {100 * r.within_20:.0f}% |")
    lines += ["", "Forest weight (out-of-bag) fitted on the training set: " + ", ".join(
        f"{kind} {weight:.3f}" for kind, (_, _, weight) in accuracies.items()) + "."]
    lines += ["", (f"Harness noise: {len(noise)} networks measured twice; relative difference median "
                   f"{100 * np.median(noise):.1f}%, 90th percentile {100 * np.percentile(noise, 90):.1f}%, "
                   f"within +/-10%: {100 * np.mean(noise <= 0.1):.0f}%."), "",
              "| network | MACs | dtype | latency ms (IQR) | energy mJ |", "|---|---|---|---|---|"]
    for r in ref_records:
        lines.append(f"| {r.model_id} | {network_cost(r.genome).macs:,} | {r.dtype} | "
                     f"{r.latency_ms:.4f} ({r.latency_iqr_ms:.4f}) | {r.energy_mj:.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
