"""Does tuning the surrogate's curve boosting by cross-validation bring it nearer the seed-noise ceiling?

Nested cross-validation per table: the outer folds are those of the surrogate's own report
(``KFold(folds, shuffle=True, random_state=seed)``, as ``SurrogateAudioNASProblem.error_model_report``);
inside each outer training set ``GridSearchCV`` chooses :class:`~moo_audio.surrogate.CurveBoosting`'s
parameters from :data:`GRID` by an inner k-fold, scored by the mean of the overall and the
best-quartile Spearman of the full-budget error (the issue's two targets). The tuned predictions of the
held-out folds are set beside the default parameters' on the same folds, with a paired bootstrap
interval of the difference; the parameters each outer fold chose are listed, and the search on the
whole table gives the parameters a tuned default would take::

    OMP_NUM_THREADS=1 python benchmarks/tune_surrogate.py --tables builtin,fsdd,speech_commands_12

Writes ``benchmarks/results/surrogate_tuning.{md,json}`` (``--out``). Run it on an otherwise idle
machine or with ``OMP_NUM_THREADS=1``: the boosting's OpenMP threads contend with other processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid

from moo_audio.surrogate import ERROR_MODELS, Agreement, CurveBoosting, PartialTableWarning, fitting_data, load_table

HERE = Path(__file__).resolve().parent
#: the parameters searched (the others keep CurveBoosting's defaults)
GRID = {"learning_rate": [0.03, 0.06, 0.12], "max_leaf_nodes": [8, 20], "min_samples_leaf": [5, 10, 20]}
#: the grid of --quick (a smoke test), with 2 outer and inner folds and QUICK_TREES boosting iterations
QUICK_GRID, QUICK_TREES = {"learning_rate": [0.06, 0.12]}, 30
COLUMNS = ("spearman", "top_spearman", "kendall", "top_kendall", "r2", "mae")


def full_budget(Y: np.ndarray) -> np.ndarray:
    return Y if Y.ndim == 1 else Y[:, -1]


def targets_score(estimator: CurveBoosting, X: np.ndarray, Y: np.ndarray) -> float:
    """The mean of the overall and the best-quartile Spearman of the full-budget error."""
    agreement = Agreement.of(full_budget(estimator.predict(X)), full_budget(Y))
    return (agreement.spearman + agreement.top_spearman) / 2


def bootstrap_difference(tuned: np.ndarray, default: np.ndarray, target: np.ndarray, field: str,
                         draws: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% paired bootstrap interval (over architectures) of ``field`` of the tuned minus the default
    predictions' :class:`~moo_audio.surrogate.Agreement` with ``target``."""
    differences = []
    for _ in range(draws):
        i = rng.integers(0, len(target), len(target))
        differences.append(getattr(Agreement.of(tuned[i], target[i]), field)
                           - getattr(Agreement.of(default[i], target[i]), field))
    low, high = np.quantile(differences, [0.025, 0.975])
    return float(low), float(high)


def tune(name: str, grid: dict[str, list], trees: int, folds: int, inner: int, seed: int, jobs: int,
         draws: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialTableWarning)  # the report names the table's size
        table = load_table(name)
    X, Y = fitting_data(table)
    y = Y if Y.shape[1] > 1 else Y[:, 0]

    def default() -> CurveBoosting:  # the surrogate's own error model, as its report fits it
        return ERROR_MODELS["curve_boosting"](trees, seed)

    search = GridSearchCV(default(), grid, scoring=targets_score, n_jobs=jobs,
                          cv=KFold(inner, shuffle=True, random_state=seed))
    tuned, defaulted, chosen = np.zeros(Y.shape), np.zeros(Y.shape), []
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        search.fit(X[train], y[train])
        chosen.append(search.best_params_)
        tuned[test] = search.predict(X[test]).reshape(len(test), -1)
        defaulted[test] = default().fit(X[train], y[train]).predict(X[test]).reshape(len(test), -1)
        print(f"{name}: outer fold chose {search.best_params_}", flush=True)
    search.fit(X, y)
    target, rng = Y[:, -1], np.random.default_rng(seed)
    return {"table": name, "n": len(Y), "folds": folds, "inner_folds": inner,
            "default": dataclasses.asdict(Agreement.of(defaulted[:, -1], target)),
            "tuned": dataclasses.asdict(Agreement.of(tuned[:, -1], target)),
            "difference_interval": {
                field: bootstrap_difference(tuned[:, -1], defaulted[:, -1], target, field, draws, rng)
                for field in ("spearman", "top_spearman")},
            "chosen_by_fold": chosen, "chosen_on_all": search.best_params_,
            "inner_score_on_all": float(search.best_score_),
            "inner_score_of_default_on_all": float(search.cv_results_["mean_test_score"][
                list(ParameterGrid(grid)).index({k: getattr(default(), k) for k in grid})])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd,speech_commands_12",
                        help="comma-separated table names or files")
    parser.add_argument("--folds", type=int, default=5, help="outer folds (those of the surrogate's report)")
    parser.add_argument("--inner", type=int, default=3, help="inner folds of the parameter search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="parallel fits of the parameter search")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws of the difference's interval")
    parser.add_argument("--trees", type=int, default=CurveBoosting().max_iter, help="boosting iterations")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "surrogate_tuning")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke test: grid {QUICK_GRID}, {QUICK_TREES} trees, 2 outer and inner folds, "
                             "100 draws")
    args = parser.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    if args.quick:
        args.trees, args.folds, args.inner, args.draws = QUICK_TREES, 2, 2, 100
    command = " ".join(["python benchmarks/tune_surrogate.py", *sys.argv[1:]])
    results = [tune(name, grid, args.trees, args.folds, args.inner, args.seed, args.jobs, args.draws)
               for name in args.tables.split(",")]
    head = "| table | n | parameters | " + " | ".join(COLUMNS) + " |"
    lines = [f"`{command}`", "", f"Grid: `{grid}`", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        for label in ("default", "tuned"):
            lines.append(f"| {r['table']} | {r['n']} | {label} | "
                         + " | ".join(f"{r[label][c]:.3f}" for c in COLUMNS) + " |")
    lines += ["", "| table | tuned - default Spearman, 95% paired bootstrap | best quartile | chosen on all "
              "(inner score; default's) | chosen by the outer folds |", "|---|---|---|---|---|"]
    for r in results:
        spread = {field: "[{:+.3f}, {:+.3f}]".format(*r["difference_interval"][field])
                  for field in ("spearman", "top_spearman")}
        lines.append(f"| {r['table']} | {spread['spearman']} | {spread['top_spearman']} | {r['chosen_on_all']} "
                     f"({r['inner_score_on_all']:.3f}; {r['inner_score_of_default_on_all']:.3f}) | "
                     + "; ".join(str(c) for c in r["chosen_by_fold"]) + " |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    record = {"command": command, "grid": grid, "trees": args.trees, "results": results}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
