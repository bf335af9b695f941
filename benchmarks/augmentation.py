"""Ablation of the training recipe's augmentation: accuracy on unseen speakers and training cost.

Each variant adds a part of :class:`moo_audio.augment.Augmentation` (none; time shift; shift and
background noise, the default; shift, noise and two time and two frequency SpecAugment masks of up
to 10% each; shift, noise and a random gain of -20 to +10 dB; the same and a frequency warp of up
to 10%) and trains the same models
(DS-CNN-S, the field's small keyword spotter, and a small 1-D network of the search space) with
``--seeds`` seeds each, every epoch of the problem's budget (best validation epoch kept). The test
split — speakers never trained on — is read once, after every training. The table gives validation
and test accuracy (mean and 95% t-interval over seeds); which variant to use by default is read off
the *validation* column. ``--cost`` times the training cost instead, in this process, one thread: two
epochs of each model and variant, interleaved, three times, the fastest kept (seconds per epoch and
the ratio to no augmentation; run it on a quiet machine).

    python benchmarks/augmentation.py                          # Speech Commands 12-class, 3 seeds
    python benchmarks/augmentation.py --problem fsdd
    python benchmarks/augmentation.py --quick                  # built-in data, 2 epochs, a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name: Augmentation options (parts switched off are 0; the default is shift + noise)
    "none": None,
    "time shift": {"noise_prob": 0.0},
    "time shift + noise (default)": {},
    "time shift + noise + masks": {"time_masks": 2, "freq_masks": 2},
    "time shift + noise + gain": {"gain_db": (-20.0, 10.0)},
    "time shift + noise + gain + warp": {"gain_db": (-20.0, 10.0), "freq_warp": 0.1},
}


def models(spec, dataset) -> dict:
    """The ablation's networks: DS-CNN-S and a small 1-D network of the space."""
    from moo_audio.nets import baseline
    from moo_audio.space import Block, FrontEnd, Genome

    space = spec.space(dataset.sample_rate, dataset.n_classes, dataset.clip_ms)
    fe = FrontEnd(dataset.sample_rate, dataset.clip_ms, max(space.n_mels), min(space.win_ms),
                  min(h for h in space.hop_ms if h <= min(space.win_ms)), "1d")
    small = Genome(fe, (Block("conv", 32, 3, 1), Block("dsconv", 48, 3, 2), Block("dsconv", 48, 3, 2),
                        Block("dsconv", 64, 3, 1)), dataset.n_classes)
    return {"ds_cnn_s": baseline("ds_cnn_s", n_classes=dataset.n_classes,
                                 frontend=_ds_frontend(dataset)), "small 1-D": small}


def _ds_frontend(dataset):
    from moo_audio.nets import ds_cnn_frontend

    return ds_cnn_frontend(dataset.sample_rate, dataset.clip_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="speech_commands_12")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="default: the problem's")
    parser.add_argument("--quick", action="store_true", help="built-in data, 2 epochs, 2 seeds")
    parser.add_argument("--cost", action="store_true", help="time the training cost of each variant instead")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: benchmarks/results, benchmarks/out with --quick)")
    args = parser.parse_args()
    args.out = args.out or HERE / ("out" if args.quick else "results")

    from moo_audio.augment import Augmentation
    from moo_audio.data import load_dataset
    from moo_audio.evaluation import mean_interval, test_accuracy
    from moo_audio.jobs import TrainJob, evaluation_row, training_seed
    from moo_audio.parallel import make_runner
    from moo_audio.problem_files import load_problem

    spec = load_problem("builtin" if args.quick else args.problem)
    dataset = load_dataset("builtin", **{**spec.dataset_options, "n_per_class": 10}) if args.quick \
        else spec.load_dataset()
    epochs = 2 if args.quick else (args.epochs or spec.budget.max_epochs)
    seeds = 2 if args.quick else args.seeds
    nets = models(spec, dataset)
    if args.cost:
        return cost(spec, dataset, nets, args, Augmentation)
    runner = make_runner(args.workers)
    problem = spec.make_problem(dataset, runner=runner)
    cells = [(v, name, s) for v in VARIANTS for name in nets for s in range(seeds)]
    jobs = []
    for variant, name, seed in cells:
        options = VARIANTS[variant]
        budget = dataclasses.replace(spec.budget, max_epochs=epochs,
                                     augment=None if options is None else Augmentation(**options))
        jobs.append(TrainJob(nets[name], training_seed(nets[name], seed), budget, (), (), problem.threads,
                             problem.device, keep_weights=True))
    results = [None] * len(jobs)
    started = time.perf_counter()
    try:
        for i, result, _ in problem.train(jobs):
            results[i] = result
            print(json.dumps({"variant": cells[i][0], "model": cells[i][1], "seed": cells[i][2],
                              "val_accuracy": result.val_accuracy, "seconds": result.seconds}), flush=True)
    finally:
        runner.close()
    wall = time.perf_counter() - started

    # the test split, once, after every training
    full = {name: problem.feature_cache.get(dataset, g.frontend) for name, g in nets.items()}
    rows = []
    for variant in VARIANTS:
        for name in nets:
            picked = [r for (v, n, _), r in zip(cells, results) if v == variant and n == name]
            tests = [test_accuracy(nets[name], r.weights, full[name]) for r in picked]
            rows.append({"variant": variant, "model": name,
                         "val": mean_interval([r.val_accuracy for r in picked]), "test": mean_interval(tests),
                         "seconds_per_epoch": sum(r.seconds for r in picked) / sum(r.epochs for r in picked),
                         "runs": [evaluation_row(r) | {"test_accuracy": t} for r, t in zip(picked, tests)]})
    lines = [f"`python benchmarks/augmentation.py{' --quick' if args.quick else f' --problem {spec.name}'}`: "
             f"{seeds} seeds, {epochs} epochs, dataset {dataset.name} "
             f"({ {s: len(i) for s, i in dataset.splits.items()} })", "",
             "| model | augmentation | val accuracy [95% CI] | test accuracy, unseen speakers [95% CI] |",
             "|---|---|---|---|"]
    for r in rows:
        val, test = r["val"], r["test"]
        lines.append(f"| {r['model']} | {r['variant']} | {val[0]:.3f} [{val[1]:.3f}, {val[2]:.3f}] | "
                     f"{test[0]:.3f} [{test[1]:.3f}, {test[2]:.3f}] |")
    levels = split_levels(dataset)
    if levels:
        lines += ["", "Recording level of each split (no labels read): median over its clips of the clip's peak, "
                  "dB below full scale.", "", "| split | groups | median peak dBFS |", "|---|---|---|"]
        lines += [f"| {split} | {groups} | {level:.1f} |" for split, (groups, level) in levels.items()]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"augmentation-{spec.name}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"wall_s": wall, "epochs": epochs, "seeds": seeds,
                                                     "levels": levels, "rows": rows}, indent=1))
    stem.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {stem}.json, .md")


def split_levels(dataset) -> dict[str, tuple[int, float]]:
    """Per split, its number of groups (speakers) and the median peak level of its clips (dBFS):
    what a random gain is for, read off the audio alone ({} for a dataset without groups)."""
    import numpy as np

    if dataset.groups is None:
        return {}
    peaks = 20 * np.log10(dataset.waveforms.abs().amax(dim=1).clamp_min(1e-6).numpy())
    return {split: (len(set(dataset.groups[idx])), float(np.median(peaks[idx])))
            for split, idx in dataset.splits.items()}


def cost(spec, dataset, nets, args, augmentation) -> None:
    """Seconds per training epoch of every model and variant, in this process (fastest of 3)."""
    from moo_audio.jobs import train_job, training_seed
    from moo_audio.parallel import InProcessRunner

    problem = spec.make_problem(dataset, runner=InProcessRunner())
    best: dict[tuple[str, str], float] = {}
    for _ in range(3):
        for variant, options in VARIANTS.items():
            for name, genome in nets.items():
                budget = dataclasses.replace(spec.budget, max_epochs=2,
                                             augment=None if options is None else augmentation(**options))
                job = dataclasses.replace(problem.job(genome, stopping=()), budget=budget,
                                          seed=training_seed(genome, 0))
                result = train_job(job, problem.features(genome.frontend))
                key = (name, variant)
                best[key] = min(best.get(key, float("inf")), result.seconds / result.epochs)
    lines = [f"`python benchmarks/augmentation.py --problem {spec.name} --cost`: seconds per training epoch, "
             f"one thread, fastest of 3", "", "| model | augmentation | s per epoch | vs none |", "|---|---|---|---|"]
    for (name, variant), seconds in best.items():
        lines.append(f"| {name} | {variant} | {seconds:.2f} | {seconds / best[(name, 'none')]:.2f}x |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"augmentation_cost-{spec.name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
