"""How well does ``SurrogateAudioNASProblem`` predict trained error, and how well could it?

For each table: the seed-noise ceiling (one training run predicting another of the same
architecture, from the architectures trained with several seeds) and, for each error model of
``moo_audio.surrogate.ERROR_MODELS``, the k-fold cross-validated agreement with the table at the full
budget (overall and in the best quartile: Spearman, Kendall tau, R^2, MAE) and the cross-validated
Spearman at a third and two thirds of the budget (the multi-fidelity answers). For a table with
architectures trained with several seeds, it also checks seed-noise mode on them (the first model's
cross-validated curves with :class:`~moo_audio.seed_noise.SeedNoise` added): two noisy draws should
agree about as well as two seeds do (the ceiling), and a draw should predict a real run about as well
as the mean prediction does::

    python benchmarks/surrogate_report.py                  # builtin and fsdd, 300 trees
    python benchmarks/surrogate_report.py --tables builtin --trees 30 --models forest

Writes ``benchmarks/results/surrogate_report.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from moo_audio.energy.profiles import hardware_fingerprint
from moo_audio.seed_noise import SeedNoise
from moo_audio.surrogate import (
    ERROR_MODELS,
    Agreement,
    SurrogateAudioNASProblem,
    SurrogateTable,
    load_table,
    run_error_curves,
    seed_noise_ceiling,
)

HERE = Path(__file__).resolve().parent
COLUMNS = ("spearman", "kendall", "r2", "mae", "top_spearman", "top_kendall", "top_mae")


def fidelity_spearman(problem: SurrogateAudioNASProblem) -> dict[int, float]:
    """The problem's cross-validated Spearman of the predicted and trained error after a third, two
    thirds and all of the budget's epochs."""
    epochs = sorted({max(1, problem.max_epochs // 3), max(1, 2 * problem.max_epochs // 3), problem.max_epochs})
    return {e: float(spearmanr(problem.cv_curves[:, e - 1], problem.trained_curves[:, e - 1]).statistic)
            for e in epochs}


def seed_noise_agreements(problem: SurrogateAudioNASProblem, seed: int = 0) -> dict[str, Agreement]:
    """Seed-noise mode on the table's architectures trained with several seeds, from the problem's
    cross-validated curves: two noisy draws with each other, a noisy draw and the mean prediction with
    each real run (averaged over runs); best quartile by the architectures' mean trained error. Each
    architecture's deviations are drawn from the other repeated architectures, so that, like its
    cross-validated curve, its draw holds nothing of its own runs."""
    rng = np.random.default_rng(seed)
    repeated = [(i, runs) for i, runs in
                enumerate(run_error_curves(r)[:, :problem.max_epochs] for r in problem.table.trained())
                if len(runs) >= 2]
    rows = [i for i, _ in repeated]
    n_runs = min(len(runs) for _, runs in repeated)
    real = np.array([runs[:n_runs, -1] for _, runs in repeated])
    quality = np.array([runs[:, -1].mean() for _, runs in repeated])
    mean = problem.cv_curves[rows, -1]
    neighbours = problem.seed_noise.neighbours
    left_out = [SeedNoise.from_runs([runs for j, (_, runs) in enumerate(repeated) if j != k], neighbours)
                for k in range(len(repeated))]
    first, second = (np.array([noise.sample(problem.cv_curves[[row]], rng)[0, -1]
                               for noise, row in zip(left_out, rows)]) for _ in range(2))

    def against_runs(predicted: np.ndarray) -> Agreement:
        return Agreement.mean([Agreement.of(predicted, real[:, j], quality) for j in range(n_runs)])

    return {"seed-noise mode: two draws": Agreement.of(first, second, quality),
            "seed-noise mode: a draw vs a real run": against_runs(first),
            "mean prediction vs a real run": against_runs(mean)}


def table_provenance(name: str, table: SurrogateTable) -> dict[str, Any]:
    """What a report row is of: the table's size, whether its build was complete, when it was merged
    and on which machines its trainings ran (from the table's own ``meta``)."""
    meta = table.meta
    return {"table": name, "architectures": len(table.trained()), "complete": table.complete,
            "trainings": meta.get("trainings"), "planned_trainings": meta.get("planned_trainings"),
            "merged": meta.get("merged"), "train_hours": round(meta.get("train_seconds", 0.0) / 3600, 1),
            "machines": sorted({m["hardware"] for m in meta.get("machines", [])})}


def provenance_line(p: dict[str, Any]) -> str:
    if p["planned_trainings"] is None:
        build = "a table without a build plan"
    elif p["complete"]:
        build = f"all {p['planned_trainings']:,} planned trainings (a complete build)"
    else:
        build = (f"{p['trainings']:,} of its build's {p['planned_trainings']:,} planned trainings (a snapshot of "
                 "a build in progress)")
    return (f"- `{p['table']}`: {p['architectures']:,} architectures, {build}; merged {p['merged'] or 'unknown'}, "
            f"{p['train_hours']} h of training on {'; '.join(p['machines']) or 'unrecorded machines'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd", help="comma-separated table names or files")
    parser.add_argument("--models", default=",".join(ERROR_MODELS), help="comma-separated error models")
    parser.add_argument("--trees", type=int, default=300, help="trees (boosting iterations) of the error model")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "surrogate_report")
    args = parser.parse_args()
    command = " ".join(["python benchmarks/surrogate_report.py", *sys.argv[1:]])
    # the load at the start says whether the machine was otherwise idle (a table builder beside the
    # report slows its boosting many times over)
    machine = {"date": datetime.date.today().isoformat(), "hardware": hardware_fingerprint(),
               "load_average_1min": round(os.getloadavg()[0], 2)}
    tables = {name: load_table(name) for name in args.tables.split(",")}
    provenance = [table_provenance(name, table) for name, table in tables.items()]
    head = "| table | model | n | " + " | ".join(COLUMNS) + " | Spearman by epochs |"
    lines = [f"`{command}`", "", f"Run {machine['date']} on {machine['hardware']}, load average "
             f"{machine['load_average_1min']} at the start. Tables:", "",
             *map(provenance_line, provenance), "", head, "|" + "---|" * (head.count("|") - 1)]
    results = []
    for name, table in tables.items():
        ceiling = seed_noise_ceiling(table)
        repeated = sum(len(r.get("runs", ())) >= 2 for r in table.trained())
        if ceiling is not None:
            lines.append(f"| {name} | seed-noise ceiling ({repeated} archs x seeds) | {ceiling.n} | "
                         + " | ".join(f"{getattr(ceiling, c):.3f}" for c in COLUMNS) + " | |")
        else:
            lines.append(f"| {name} | seed-noise ceiling: too few architectures with several seeds | "
                         f"{repeated} |" + " |" * (len(COLUMNS) + 1))
        results.append({"table": name, "model": "ceiling", "repeated": repeated,
                        **(dataclasses.asdict(ceiling) if ceiling else {})})
        for k, model in enumerate(args.models.split(",")):
            noisy = ceiling is not None and k == 0 and args.folds > 0
            problem = SurrogateAudioNASProblem(table, error_model=model, n_estimators=args.trees, folds=args.folds,
                                               seed_noise=noisy)
            report = problem.error_model_report
            by_epochs = fidelity_spearman(problem)
            cells = [f"{getattr(report, c):.3f}" for c in COLUMNS]
            cells.append(", ".join(f"{e}: {v:.3f}" for e, v in by_epochs.items()))
            lines.append(f"| {name} | {model} | {report.n} | " + " | ".join(cells) + " |")
            results.append({"table": name, "model": model, **dataclasses.asdict(report), "by_epochs": by_epochs})
            print(lines[-1], flush=True)
            for label, agreement in (seed_noise_agreements(problem) if noisy else {}).items():
                lines.append(f"| {name} | {label} ({model}, cross-validated) | {agreement.n} | "
                             + " | ".join(f"{getattr(agreement, c):.3f}" for c in COLUMNS) + " | |")
                results.append({"table": name, "model": f"{label} ({model})", **dataclasses.asdict(agreement)})
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "machine": machine, "tables": provenance,
                                                          "results": results}, indent=1))


if __name__ == "__main__":
    main()
