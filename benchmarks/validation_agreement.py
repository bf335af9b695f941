"""Does validation predict unseen speakers? One validation speaker against speaker-grouped folds.

A seeded sample of ``--n`` architectures of a problem's space (those meeting its cheap constraints) is
trained twice, every epoch of the budget:

* **one speaker**: on the problem's split (train speakers, one validation speaker);
* **folds**: on ``--folds`` speaker-grouped folds of the train and validation speakers pooled
  (``AudioNASProblem(folds=k)``), scored by the mean validation accuracy.

Each trained model is then evaluated once on the test speakers (never trained or validated on); for
folds an architecture's test accuracy is the mean over its fold models. The agreement between an
architecture's validation score and its test accuracy is Spearman's rank correlation (with a 95%
bootstrap interval over architectures), overall and among the best quarter by validation.

    python benchmarks/validation_agreement.py --problem fsdd --n 40
    python benchmarks/validation_agreement.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

OUT = Path(__file__).resolve().parent / "out"


def agreement(val: np.ndarray, test: np.ndarray, n_boot: int = 2000) -> dict[str, float]:
    """Spearman of validation and test, its 95% bootstrap interval, and Spearman in the best quarter."""
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(len(val), size=len(val))
        if len(set(val[i])) > 1 and len(set(test[i])) > 1:
            boots.append(spearmanr(val[i], test[i]).statistic)
    top = np.argsort(-val)[: max(3, len(val) // 4)]
    return {"spearman": float(spearmanr(val, test).statistic),
            "spearman_ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "spearman_best_quarter": float(spearmanr(val[top], test[top]).statistic),
            "mean_val": float(val.mean()), "mean_test": float(test.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="fsdd")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="6 architectures, 2 epochs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from moo_audio.evaluation import test_accuracy
    from moo_audio.jobs import evaluation_row
    from moo_audio.parallel import make_runner
    from moo_audio.problem_files import load_problem

    spec = dataclasses.replace(load_problem(args.problem), stopping=())
    if args.quick:
        args.n = 6
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
    dataset = spec.load_dataset()
    runner = make_runner(args.workers)
    problem = spec.make_problem(dataset, runner=runner)
    genomes = problem.space.sample(30 * args.n, seed=1)
    costs = problem.cheap_values(genomes)
    genomes = [g for g, c in zip(genomes, costs) if not any(
        v > 0 for v in problem.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs).values())][:args.n]
    jobs, cells = [], []
    for a, genome in enumerate(genomes):
        base = dataclasses.replace(problem.job(genome), keep_weights=True)
        jobs.append(base)
        cells.append((a, None))
        for f in range(args.folds):
            jobs.append(dataclasses.replace(base, fold=(f, args.folds)))
            cells.append((a, f))
    results = [None] * len(jobs)
    started = time.perf_counter()
    try:
        for i, result, _ in problem.train(jobs):
            results[i] = result
            print(json.dumps({"architecture": cells[i][0], "fold": cells[i][1], "val": result.val_accuracy,
                              "seconds": round(result.seconds, 1)}), flush=True)
    finally:
        runner.close()
    wall = time.perf_counter() - started

    full = {}  # the test split, read once, after every training
    rows = []
    for a, genome in enumerate(genomes):
        key = genome.frontend.feature_key()
        full.setdefault(key, problem.feature_cache.get(dataset, genome.frontend))
        mine = [(f, r) for (arch, f), r in zip(cells, results) if arch == a]
        tests = {f: (np.nan if r.failed else test_accuracy(genome, r.weights, full[key])) for f, r in mine}
        vals = {f: (0.0 if r.failed else r.val_accuracy) for f, r in mine}
        rows.append({"genome": genome.key, "one_speaker_val": vals[None], "one_speaker_test": tests[None],
                     "folds_val": float(np.mean([vals[f] for f in range(args.folds)])),
                     "folds_test": float(np.nanmean([tests[f] for f in range(args.folds)])),
                     "runs": [evaluation_row(r) for _, r in mine]})
    ok = [r for r in rows if np.isfinite(r["one_speaker_test"]) and np.isfinite(r["folds_test"])]
    report = {name: agreement(np.array([r[f"{name}_val"] for r in ok]), np.array([r[f"{name}_test"] for r in ok]))
              for name in ("one_speaker", "folds")}
    split = {s: sorted(set(dataset.groups[dataset.splits[s]])) for s in ("train", "val", "test")}
    lines = [f"`python benchmarks/validation_agreement.py --problem {spec.name} --n {args.n} --folds {args.folds}"
             f"{' --quick' if args.quick else ''}`: {len(ok)} architectures, {spec.budget.max_epochs} epochs; "
             f"speakers {split}; {wall / 60:.0f} min", "",
             "| validation | Spearman(val, test) [95% CI] | Spearman, best quarter by val | mean val | mean test |",
             "|---|---|---|---|---|"]
    for name, label in (("one_speaker", "one speaker"), ("folds", f"{args.folds} speaker folds")):
        r = report[name]
        lines.append(f"| {label} | {r['spearman']:.3f} [{r['spearman_ci'][0]:.3f}, {r['spearman_ci'][1]:.3f}] | "
                     f"{r['spearman_best_quarter']:.3f} | {r['mean_val']:.3f} | {r['mean_test']:.3f} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"validation_agreement-{spec.name}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"report": report, "rows": rows, "wall_s": wall}, indent=1))
    stem.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {stem}.json, .md")


if __name__ == "__main__":
    main()
