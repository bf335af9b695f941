"""How well does ``SurrogateAudioNASProblem`` predict trained error, and how well could it?

For each table: the seed-noise ceiling (one training run predicting another of the same
architecture, from the architectures trained with several seeds) and, for each error model of
``moo_audio.surrogate.ERROR_MODELS``, the k-fold cross-validated agreement with the table at the full
budget (overall and in the best quartile: Spearman, Kendall tau, R^2, MAE) and the cross-validated
Spearman at a third and two thirds of the budget (the multi-fidelity answers). For a table with
architectures trained with several seeds, it also checks seed-noise mode on them (the first model's
cross-validated curves with :class:`~moo_audio.seed_noise.SeedNoise` added): two noisy draws should
agree about as well as two seeds do (the ceiling), and a draw should predict a real run about as well
as the mean prediction does. Each model's best-quartile Spearman comes with a 95% bootstrap interval
over the architectures. For a table with architectures near the front (``kind`` front, from
``build_surrogate.py --extend``) and at least :data:`MIN_REPEATED` other repeated ones, it measures
what they add: the first model cross-validated with and without them, scored on those other repeated
architectures, with a paired bootstrap interval of the difference::

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap, spearmanr

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
#: the fewest repeated architectures a comparison on them is made with (a best quartile of 10)
MIN_REPEATED = 40
COLUMNS = ("spearman", "kendall", "r2", "mae", "top_spearman", "top_kendall", "top_mae")


def fidelity_spearman(problem: SurrogateAudioNASProblem) -> dict[int, float]:
    """The problem's cross-validated Spearman of the predicted and trained error after a third, two
    thirds and all of the budget's epochs."""
    epochs = sorted({max(1, problem.max_epochs // 3), max(1, 2 * problem.max_epochs // 3), problem.max_epochs})
    return {e: float(spearmanr(problem.cv_curves[:, e - 1], problem.trained_curves[:, e - 1]).statistic)
            for e in epochs}


def repeated_runs(problem: SurrogateAudioNASProblem, kinds: Sequence[str] | None = None
                  ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The table's architectures trained with several seeds (optionally only of ``kinds``): their row
    indices in ``problem.table.trained()``, each run's final error (architectures x runs, cut to the
    fewest runs) and their mean final error (which defines the best quartile)."""
    repeated = [(i, runs) for i, (row, runs) in
                enumerate((r, run_error_curves(r)[:, :problem.max_epochs]) for r in problem.table.trained())
                if len(runs) >= 2 and (kinds is None or row["kind"] in kinds)]
    n_runs = min(len(runs) for _, runs in repeated)
    return ([i for i, _ in repeated], np.array([runs[:n_runs, -1] for _, runs in repeated]),
            np.array([runs[:, -1].mean() for _, runs in repeated]))


def against_runs(predicted: np.ndarray, real: np.ndarray, quality: np.ndarray) -> Agreement:
    """How well ``predicted`` errors match one real run, averaged over the runs (columns of ``real``)."""
    return Agreement.mean([Agreement.of(predicted, real[:, j], quality) for j in range(real.shape[1])])


def seed_noise_agreements(problem: SurrogateAudioNASProblem, seed: int = 0) -> dict[str, Agreement]:
    """Seed-noise mode on the table's architectures trained with several seeds, from the problem's
    cross-validated curves: two noisy draws with each other, a noisy draw and the mean prediction with
    each real run (averaged over runs); best quartile by the architectures' mean trained error. Each
    architecture's deviations are drawn from the other repeated architectures, so that, like its
    cross-validated curve, its draw holds nothing of its own runs."""
    rng = np.random.default_rng(seed)
    rows, real, quality = repeated_runs(problem)
    runs = [run_error_curves(problem.table.trained()[i])[:, :problem.max_epochs] for i in rows]
    neighbours = problem.seed_noise.neighbours
    left_out = [SeedNoise.from_runs(runs[:k] + runs[k + 1:], neighbours) for k in range(len(runs))]
    first, second = (np.array([noise.sample(problem.cv_curves[[row]], rng)[0, -1]
                               for noise, row in zip(left_out, rows)]) for _ in range(2))
    return {"seed-noise mode: two draws": Agreement.of(first, second, quality),
            "seed-noise mode: a draw vs a real run": against_runs(first, real, quality),
            "mean prediction vs a real run": against_runs(problem.cv_curves[rows, -1], real, quality)}


def bootstrap_interval(statistic: Callable[..., float], *samples: np.ndarray, resamples: int = 2000
                       ) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``statistic(*samples)``, the architectures (the samples'
    shared first axis) resampled with replacement, the same ones for every sample (paired)."""
    result = bootstrap(samples, statistic, paired=True, vectorized=False, n_resamples=resamples,
                       method="percentile", random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def front_gain(problem: SurrogateAudioNASProblem, model: str, trees: int, folds: int) -> dict[str, Any] | None:
    """What the table's architectures near the front (``kind`` front) add to the error model: the same
    model cross-validated on the table without them, against ``problem``'s, as the mean prediction's
    agreement with a real run on the repeated architectures that are not front ones (both models
    predict them out of fold), with paired bootstrap 95% intervals of the gain. ``None`` without
    front architectures or with fewer than :data:`MIN_REPEATED` other repeated ones."""
    table = problem.table
    kinds = sorted({r["kind"] for r in table.trained()} - {"front"})
    others_repeated = sum(len(r.get("runs", ())) >= 2 for r in table.trained() if r["kind"] in kinds)
    if not table.trained("front") or others_repeated < MIN_REPEATED:
        return None
    without_rows = tuple(r for r in table.rows if r["kind"] != "front")
    without = SurrogateAudioNASProblem(dataclasses.replace(table, rows=without_rows), error_model=model,
                                       n_estimators=trees, folds=folds)
    rows, real, quality = repeated_runs(problem, kinds)
    position = {r["genome"]: i for i, r in enumerate(without.table.trained())}
    with_front = problem.cv_curves[rows, -1]
    without_front = without.cv_curves[[position[problem.table.trained()[i]["genome"]] for i in rows], -1]

    def gain(field: str) -> Callable[..., float]:
        def statistic(with_front, without_front, quality, *runs):
            real = np.column_stack(runs)
            return (getattr(against_runs(with_front, real, quality), field)
                    - getattr(against_runs(without_front, real, quality), field))
        return statistic

    samples = (with_front, without_front, quality, *real.T)
    result = {"model": model, "n": len(rows), "front": len(table.trained("front")),
              "with_front": dataclasses.asdict(against_runs(with_front, real, quality)),
              "without_front": dataclasses.asdict(against_runs(without_front, real, quality))}
    for field in ("spearman", "top_spearman"):
        result[f"{field}_gain"] = gain(field)(*samples)
        result[f"{field}_gain_interval"] = bootstrap_interval(gain(field), *samples)
    return result


def front_gain_lines(gain: dict[str, Any]) -> list[str]:
    """:func:`front_gain`'s result as a paragraph and a table (markdown lines)."""
    def cells(key: str) -> str:
        return f"{gain[key]['spearman']:.3f} | {gain[key]['top_spearman']:.3f}"

    def interval(field: str) -> str:
        return "{:+.3f} [{:+.3f}, {:+.3f}]".format(gain[f"{field}_gain"], *gain[f"{field}_gain_interval"])

    return ["", f"What the {gain['front']} architectures near the front add to `{gain['table']}`'s {gain['model']}: "
            f"the mean prediction vs a real run on the {gain['n']} other architectures trained with several seeds, "
            "the model cross-validated with and without them (gain: paired bootstrap 95% interval over the "
            "architectures):", "", "| | Spearman | best-quartile Spearman |", "|---|---|---|",
            f"| without | {cells('without_front')} |", f"| with | {cells('with_front')} |",
            f"| gain | {interval('spearman')} | {interval('top_spearman')} |"]


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
    results, gains = [], []
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
            top_interval = bootstrap_interval(lambda p, t: Agreement.of(p, t).top_spearman,
                                              problem.cv_curves[:, -1], problem.trained_curves[:, -1])
            cells = [f"{getattr(report, c):.3f}" for c in COLUMNS]
            cells[COLUMNS.index("top_spearman")] += " [{:.3f}, {:.3f}]".format(*top_interval)
            cells.append(", ".join(f"{e}: {v:.3f}" for e, v in by_epochs.items()))
            lines.append(f"| {name} | {model} | {report.n} | " + " | ".join(cells) + " |")
            results.append({"table": name, "model": model, **dataclasses.asdict(report),
                            "top_spearman_interval": top_interval, "by_epochs": by_epochs})
            print(lines[-1], flush=True)
            if k == 0 and args.folds > 0 and (gain := front_gain(problem, model, args.trees, args.folds)):
                gains.append({"table": name, **gain})
            for label, agreement in (seed_noise_agreements(problem) if noisy else {}).items():
                lines.append(f"| {name} | {label} ({model}, cross-validated) | {agreement.n} | "
                             + " | ".join(f"{getattr(agreement, c):.3f}" for c in COLUMNS) + " | |")
                results.append({"table": name, "model": f"{label} ({model})", **dataclasses.asdict(agreement)})
    for gain in gains:
        lines += front_gain_lines(gain)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "machine": machine, "tables": provenance,
                                                          "results": results, "front_gain": gains}, indent=1))


if __name__ == "__main__":
    main()
