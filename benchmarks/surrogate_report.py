"""How well does ``SurrogateAudioNASProblem`` predict trained error, and how well could it?

For each table: the seed-noise ceiling (one training run predicting another of the same
architecture, from the architectures trained with several seeds) and, for each error model of
``moo_audio.surrogate.ERROR_MODELS``, the k-fold cross-validated agreement with the table at the full
budget (overall and in the best quartile: Spearman, Kendall tau, R^2, MAE) and the cross-validated
Spearman at a third and two thirds of the budget (the multi-fidelity answers)::

    python benchmarks/surrogate_report.py                  # builtin and fsdd, 300 trees
    python benchmarks/surrogate_report.py --tables builtin --trees 30 --models forest

Writes ``benchmarks/results/surrogate_report.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from scipy.stats import spearmanr

from moo_audio.surrogate import ERROR_MODELS, SurrogateAudioNASProblem, load_table, seed_noise_ceiling

HERE = Path(__file__).resolve().parent
COLUMNS = ("spearman", "kendall", "r2", "mae", "top_spearman", "top_kendall", "top_mae")


def fidelity_spearman(problem: SurrogateAudioNASProblem) -> dict[int, float]:
    """The problem's cross-validated Spearman of the predicted and trained error after a third, two
    thirds and all of the budget's epochs."""
    epochs = sorted({max(1, problem.max_epochs // 3), max(1, 2 * problem.max_epochs // 3), problem.max_epochs})
    return {e: float(spearmanr(problem.cv_curves[:, e - 1], problem.trained_curves[:, e - 1]).statistic)
            for e in epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd", help="comma-separated table names or files")
    parser.add_argument("--models", default=",".join(ERROR_MODELS), help="comma-separated error models")
    parser.add_argument("--trees", type=int, default=300, help="trees (boosting iterations) of the error model")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "surrogate_report")
    args = parser.parse_args()
    command = " ".join(["python benchmarks/surrogate_report.py", *sys.argv[1:]])
    head = "| table | model | n | " + " | ".join(COLUMNS) + " | Spearman by epochs |"
    lines = [f"`{command}`", "", head, "|" + "---|" * (head.count("|") - 1)]
    results = []
    for name in args.tables.split(","):
        table = load_table(name)
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
        for model in args.models.split(","):
            problem = SurrogateAudioNASProblem(table, error_model=model, n_estimators=args.trees, folds=args.folds)
            report = problem.error_model_report
            by_epochs = fidelity_spearman(problem)
            cells = [f"{getattr(report, c):.3f}" for c in COLUMNS]
            cells.append(", ".join(f"{e}: {v:.3f}" for e, v in by_epochs.items()))
            lines.append(f"| {name} | {model} | {report.n} | " + " | ".join(cells) + " |")
            results.append({"table": name, "model": model, **dataclasses.asdict(report), "by_epochs": by_epochs})
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=1))


if __name__ == "__main__":
    main()
