"""Hypervolume vs training seconds: full-budget search against successive halving on the same proposers.

Every method runs on ``SurrogateAudioNASProblem`` until it has spent a budget of *training seconds*
(``out["train_seconds"]``: what the table's machine takes to train each evaluated candidate for the
epochs asked, a fresh training per evaluation): ``--budget`` times the mean seconds of one
whole-budget training in the table, i.e. what a full-budget search spends on that many evaluations.

Methods, for each proposer of ``--proposers`` (moo_audio's registry names, with the options
``moo-audio search`` gives them for that budget):

* ``<proposer>``: the proposer alone, every candidate trained for the whole budget;
* ``<proposer>+asha``: ``SuccessiveHalvingSearch(proposer, min_epochs, eta)`` (``--min-epochs``,
  ``--eta``; ``--no-tell`` for the variant whose proposer sees only first-rung results).

The hypervolume (``benchmarks/_hv.py``'s fixed scale of the table) counts only whole-budget
evaluations: they are the only ones whose objectives are the problem's, and what a user of the search
gets. Curves are sampled at ``GRID`` equal steps of the seconds budget. Reported per method: median
and 95% bootstrap interval of the hypervolume at a quarter, half and all of the budget; the seconds
its median curve needs to reach each full-budget proposer's median hypervolume at the whole budget,
and the ratio (full-budget seconds / these seconds: the training time saved for the same
hypervolume)::

    python benchmarks/multi_fidelity.py --jobs 2          # 10 seeds, 200 evaluations' worth
    python benchmarks/multi_fidelity.py --quick           # 2 seeds, 30 evaluations' worth, 50 trees
    python benchmarks/multi_fidelity.py --merge a.json b.json  # one report of earlier runs

``--merge`` reports the runs stored in earlier ``multi_fidelity.json`` files instead of running; a later
file's runs of a method replace an earlier file's (a rerun of one proposer over a stored comparison).
The files must share the table, budget, trees, BO options and successive-halving settings.

Writes ``multi_fidelity.json``, ``.md`` and ``.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hv

#: points of the hypervolume-vs-seconds curve over the budget
GRID = 200
PROPOSERS = ("evolution", "random", "botorch", "hybrid")
#: fractions of the seconds budget the table reports
FRACTIONS = (0.25, 0.5, 1.0)


def seconds_budget(problem, evals: int) -> float:
    """``evals`` times the mean wall seconds of one whole-budget training in the problem's table."""
    return evals * float(np.mean([r["seconds"] for r in problem.table.trained("sample")]))


def build(proposer: str, asha: dict[str, Any] | None, budget_evals: int, bo_options: dict[str, Any]):
    """A fresh algorithm: the registry's ``proposer`` (wrapped in successive halving with ``asha``)."""
    from moo_audio.algorithms import BoTorchMOBO
    from moo_audio.algorithms.multi_fidelity import SuccessiveHalvingSearch
    from moo_audio.algorithms.registry import default_options, make_algorithm

    options = default_options(proposer, budget_evals)
    if proposer == "botorch":
        options = {**options, **bo_options}
    if proposer == "hybrid":  # a count: the fraction of an n_evals budget has no meaning in seconds
        options = {"bo": BoTorchMOBO(**bo_options), "switch_at": max(8, int(0.3 * budget_evals))}
    algorithm = make_algorithm(proposer, options)
    return algorithm if asha is None else SuccessiveHalvingSearch(algorithm, **asha)


def run(method: str, proposer: str, asha: dict[str, Any] | None, seed: int, table: str, trees: int,
        budget_evals: int, bo_options: dict[str, Any]) -> dict[str, Any]:
    """One seeded run until the seconds budget is spent: its hypervolume-vs-seconds curve."""
    from pymoo.core.termination import Termination
    from pymoo.optimize import minimize

    from moo_audio.objectives import hypervolume_curve

    _hv.quiet()
    problem = _hv.surrogate(table, trees)
    limit = seconds_budget(problem, budget_evals)

    class SecondsSpent(Termination):
        def _update(self, algorithm):
            evaluated = getattr(algorithm, "evaluated", None)
            return 0.0 if evaluated is None or not len(evaluated) else evaluated.get("train_seconds").sum() / limit

    _hv.seed_everything(seed)
    algorithm = build(proposer, asha, budget_evals, bo_options)
    holder = {}
    times = _hv.timed(lambda: holder.setdefault("res", minimize(problem, algorithm, SecondsSpent(), seed=seed)))
    evaluated = holder["res"].algorithm.evaluated
    F, G = evaluated.get("F"), evaluated.get("G") if problem.n_ieq_constr else None
    epochs = evaluated.get("epochs") if asha is not None else np.full(len(F), problem.max_epochs)
    whole = np.asarray(epochs, dtype=float) == problem.max_epochs
    scale = _hv.reference_scale(problem)
    hv = hypervolume_curve(F, _hv.feasible_rows(F, G) & whole, scale)
    spent = np.cumsum(evaluated.get("train_seconds"))
    grid = limit * np.arange(1, GRID + 1) / GRID
    last = np.searchsorted(spent, grid, side="right") - 1  # the last evaluation finished by each point
    curve = np.where(last >= 0, hv[np.maximum(last, 0)], 0.0)
    return {"method": method, "seed": seed, "hv": curve.tolist(), "seconds_budget": limit,
            "n_evals": len(F), "n_whole_budget": int(whole.sum()), "epochs_trained": float(np.sum(epochs)),
            "reference": scale.to_dict(), **times}


def report(runs: list[dict], budget_evals: int, seeds: int) -> tuple[str, dict]:
    """The markdown table and the curve summary (per method) of the runs."""
    summary = _hv.summarize(_hv.group_curves(runs, key="method"))
    limit = runs[0]["seconds_budget"]
    at = [max(1, round(f * GRID)) for f in FRACTIONS]
    per = {m: [r for r in runs if r["method"] == m] for m in summary}
    header = ["method", *(f"HV at {f:.0%} of the seconds" for f in FRACTIONS), "evaluations (whole budget)",
              "epochs trained"]
    rows = [[m, *(_hv.cell(s, i) for i in at), f"{np.median([r['n_evals'] for r in per[m]]):.0f} "
             f"({np.median([r['n_whole_budget'] for r in per[m]]):.0f})",
             f"{np.median([r['epochs_trained'] for r in per[m]]):.0f}"] for m, s in summary.items()]
    lines = [f"{seeds} seeds; budget {limit:.0f} training seconds = {budget_evals} whole-budget trainings "
             "of the table's mean length; hypervolume of the whole-budget evaluations, median [95% CI].", "",
             _hv.markdown(header, rows), ""]
    full = [m for m in summary if "+" not in m]
    target_rows = []
    for base in full:
        target = summary[base]["median"][-1]
        for m, s in summary.items():
            if m == base:
                continue
            reached = _hv.evals_to_reach(s["median"], target)  # grid points here, not evaluations
            seconds = None if reached is None else reached * limit / GRID
            target_rows.append([base, f"{target:.4f}", m, "not reached" if seconds is None else f"{seconds:.0f}",
                                "-" if seconds is None else f"{limit / seconds:.2f}x"])
    lines += ["Training seconds each method's median curve needs to reach the full-budget proposer's median "
              "hypervolume at the whole budget, and the saving (budget / those seconds):", "",
              _hv.markdown(["full-budget proposer", "its HV at the budget", "method", "seconds to reach it",
                            "saving"], target_rows)]
    return "\n".join(lines) + "\n", summary


def _merged(parser, paths: list[Path]) -> tuple[dict, list[dict], list[str]]:
    """The settings and runs of stored ``multi_fidelity.json`` files (a later file's methods replace an
    earlier's); refuses files whose runs cannot share one table of seconds."""
    loaded = [json.loads(path.read_text()) for path in paths]
    shared = ("table", "budget_evals", "trees", "bo_options", "asha", "grid")
    for path, data in zip(paths[1:], loaded[1:], strict=True):
        differ = [k for k in shared if data["settings"][k] != loaded[0]["settings"][k]]
        if differ:
            parser.error(f"--merge: {path} differs from {paths[0]} in {', '.join(differ)}")
    runs = _hv.latest_runs(paths, loaded, key="method")
    proposers = list(dict.fromkeys(p for data in loaded for p in data["settings"]["proposers"]))
    settings = {**loaded[0]["settings"], "proposers": proposers, "seeds": _hv.seed_count(runs, key="method"),
                "merged": [str(p) for p in paths], "merged_environments": [data["environment"] for data in loaded]}
    return settings, runs, [line for data in loaded for line in data.get("failed", [])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _hv.add_run_arguments(parser, "method", full=(10, 200), quick=(2, 30),
                          quick_help="2 seeds, 30 evaluations' worth of seconds, 50 trees, quick BO")
    parser.add_argument("--proposers", default="evolution,random", help=f"comma list of {PROPOSERS}")
    parser.add_argument("--min-epochs", type=int, default=2, help="epochs of successive halving's first rung")
    parser.add_argument("--eta", type=int, default=3, help="successive halving's promotion rate 1/eta")
    parser.add_argument("--no-tell", action="store_true", help="the proposer sees only first-rung results")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="report the runs of these multi_fidelity.json files instead of running")
    args = parser.parse_args(argv)
    if args.merge:
        settings, runs, failed = _merged(parser, args.merge)
    else:
        proposers = _hv.choose(parser, args.proposers, PROPOSERS, "proposer")
        seeds, budget, trees = _hv.run_sizes(parser, args)
        asha = {"min_epochs": args.min_epochs, "eta": args.eta, "tell_promotions": not args.no_tell}
        settings = {"table": args.table, "proposers": proposers, "seeds": len(seeds), "budget_evals": budget,
                    "trees": trees, "bo_options": _hv.QUICK_BO if args.quick else {}, "asha": asha, "grid": GRID}
        jobs = [(name, p, options, seed, args.table, trees, budget, settings["bo_options"])
                for p in proposers for name, options in ((p, None), (f"{p}+asha", asha)) for seed in seeds]
        runs, failed = _hv.run_jobs(run, jobs, args.jobs)
    if runs:
        table, summary = report(runs, settings["budget_evals"], settings["seeds"])
        data = {"settings": settings, "environment": _hv.environment(), "runs": runs}
        limit = runs[0]["seconds_budget"]
        _hv.write(args.out, "multi_fidelity", {**data, "summary": summary}, table, summary,
                  f"hypervolume vs training seconds ({settings['table']})",
                  x=limit * np.arange(1, GRID + 1) / GRID, xlabel="training seconds (table's machine)")
        print(table)
    _hv.exit_if_failed(failed)


if __name__ == "__main__":
    main()
