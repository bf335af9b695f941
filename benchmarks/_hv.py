"""Helpers shared by the hypervolume benchmarks on ``SurrogateAudioNASProblem``
(``compare_optimizers.py``, ``compare_acquisitions.py``): the problem cache, the fixed hypervolume
reference, recording a run, hypervolume-vs-evaluations curves, their summary (median and bootstrap
confidence interval), the markdown table and the plot.

Hypervolume: :func:`moo_audio.objectives.hypervolume_curve` (the definition the report uses too) on
a scale fixed once per problem from its table (:func:`reference_scale`): the table's trained,
feasible ``sample`` rows under the problem's own energy model and constraints, so that every run of
every script on that table compares. The curve holds, after each evaluation (in the order the
optimizer asked for them, rows of a batch in order), the hypervolume of the non-dominated feasible
set of everything evaluated so far.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from moo_audio.objectives import HypervolumeScale, hypervolume_curve

#: evaluations at which the tables report the hypervolume (those within the budget, and the budget)
MARKS = (25, 50, 100, 200)
#: BoTorchMOBO settings of the scripts' --quick (the discrete acquisition optimiser, the default,
#: ignores the first two)
QUICK_BO = {"num_restarts": 2, "raw_samples": 32, "n_candidates": 128, "mc_samples": 16}
#: trees of the --quick problem's error forest
QUICK_TREES = 50

#: trees of the full runs' problem
TREES = 300

_PROBLEMS: dict[tuple[str, int], Any] = {}
_REFITS: dict[tuple[str, int, int], list] = {}


def add_run_arguments(parser, unit: str, full: tuple[int, int], quick: tuple[int, int], quick_help: str) -> None:
    """The options both scripts share: ``--table --seeds --first-seed --budget --trees --jobs --out --quick``;
    ``full`` and ``quick`` are the (seeds, budget) defaults of a full and a ``--quick`` run."""
    parser.add_argument("--table", default="builtin", help="surrogate table: builtin, fsdd or a file")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds per {unit} (default {full[0]}, quick {quick[0]})")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="run seeds first-seed, ..., first-seed + seeds - 1 (default 0): more seeds for a "
                             "stored comparison, merged over it with --merge")
    parser.add_argument("--budget", type=int, default=None,
                        help=f"evaluations per run (default {full[1]}, quick {quick[1]})")
    parser.add_argument("--trees", type=int, default=None,
                        help=f"trees of the surrogate's error forest (default {TREES}, quick {QUICK_TREES})")
    parser.add_argument("--jobs", type=int, default=1, help=f"processes for the ({unit}, seed) jobs")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.set_defaults(_full=full, _quick=quick)


def run_sizes(parser, args) -> tuple[range, int, int]:
    """``(seeds, budget, trees)`` of parsed arguments, the options given else the defaults; ``seeds`` is
    the range of seeds to run."""
    if args.first_seed < 0:
        parser.error(f"--first-seed must be >= 0, got {args.first_seed}")
    seeds, budget = args._quick if args.quick else args._full
    seeds = args.seeds or seeds
    return (range(args.first_seed, args.first_seed + seeds), args.budget or budget,
            args.trees or (QUICK_TREES if args.quick else TREES))


def choose(parser, given: str, allowed: Sequence[str], what: str) -> list[str]:
    """The comma-separated subset ``given`` of ``allowed``; a parser error names unknown ones."""
    chosen = [a for a in given.split(",") if a]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        parser.error(f"unknown {what} {unknown}; choose from {tuple(allowed)}")
    return chosen


def quiet(threads: int = 1) -> None:
    """One torch thread (BoTorch's small tensors gain nothing from more, and the benchmark machines
    are shared) and no warnings."""
    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("optuna").setLevel(logging.WARNING)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators, so that a job's result depends on its seed
    only, not on which jobs ran before it in the same process (results independent of ``--jobs``)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def surrogate(table: str, n_estimators: int = TREES, seed_noise: bool = False):
    """The ``SurrogateAudioNASProblem`` of ``table``, built once per process (fitting the forest takes
    seconds); its forest seed is fixed, so every process builds the same problem. With ``seed_noise``
    it answers as one training run does (``seed_noise=True``); a job reseeds its ``noise_rng``. Only
    the noise-free problem cross-validates its error model (the noisy one's answers do not use it)."""
    key = (table, n_estimators, seed_noise)
    if key not in _PROBLEMS:
        from moo_audio.surrogate import SurrogateAudioNASProblem

        no_cv = {"folds": 0} if seed_noise else {}  # the noise-free problem keeps the default report
        _PROBLEMS[key] = SurrogateAudioNASProblem(table, n_estimators=n_estimators, seed_noise=seed_noise, **no_cv)
    return _PROBLEMS[key]


def refitted_surrogates(table: str, n_estimators: int, k: int) -> list:
    """``k`` surrogates of ``table`` each fitted to a bootstrap resample of its architectures (seeds
    0..k-1; built once per process): surrogates as plausible as the one a benchmark runs on, whose
    disagreement measures how far the surrogate's error moves a hypervolume."""
    key = (table, n_estimators, k)
    if key not in _REFITS:
        from moo_audio.surrogate import SurrogateAudioNASProblem, SurrogateTable

        main = surrogate(table, n_estimators)
        rows = main.table.rows
        _REFITS[key] = []
        for seed in range(k):
            pick = np.random.default_rng(seed).integers(0, len(rows), len(rows))
            resampled = SurrogateTable(main.table.meta, tuple(rows[i] for i in pick))
            _REFITS[key].append(SurrogateAudioNASProblem(resampled, energy_model=main.energy_model,
                                                         n_estimators=n_estimators, folds=0, seed=seed))
    return _REFITS[key]


def reference_scale(problem) -> HypervolumeScale:
    """The hypervolume scale of the problem's table: its trained feasible sample architectures under
    the problem's energy model and constraints (depends on the table, not on the forest)."""
    from moo_audio.problem import cheap_values, cost_columns

    rows = problem.table.trained("sample")
    columns = cost_columns(cheap_values(problem.table.genomes(rows), problem.energy_model))
    accuracy = np.array([r["val_accuracy"] for r in rows], dtype=float)
    g = problem.constraints.values(accuracy, columns["energy_mj"], columns["memory_kb"], columns["macs"])
    feasible = np.all([np.asarray(v) <= 0 for v in g.values()], axis=0) if g else np.ones(len(rows), bool)
    if not feasible.any():
        raise ValueError("no feasible trained sample in the table: cannot fix a hypervolume reference")
    F = np.column_stack([1 - accuracy, columns["energy_mj"], columns["memory_kb"]])
    return HypervolumeScale.around(F[feasible])


def feasible_rows(F: np.ndarray, G: np.ndarray | None) -> np.ndarray:
    """Rows with finite objectives and every constraint satisfied."""
    ok = np.all(np.isfinite(F), axis=1)
    if G is not None and np.size(G):
        ok &= np.all(np.asarray(G, dtype=float) <= 0, axis=1)
    return ok


class Recorder:
    """Designs, objectives and constraints of every evaluation, in order; ``evaluator()`` records a
    pymoo run, ``add`` anything else (e.g. an Optuna trial)."""

    def __init__(self):
        self.X: list[np.ndarray] = []
        self.F: list[np.ndarray] = []
        self.G: list[np.ndarray | None] = []

    def add(self, X: np.ndarray, F: np.ndarray, G: np.ndarray | None) -> None:
        F, X = np.atleast_2d(np.asarray(F, dtype=float)), np.asarray(X)
        self.X.append(X if X.dtype == object else X.reshape(len(F), -1))  # mixed variables: dicts
        self.F.append(F)
        self.G.append(None if G is None or not np.size(G) else np.atleast_2d(np.asarray(G, dtype=float)))

    def evaluator(self):
        """A pymoo ``Evaluator`` that records exactly the individuals it evaluates."""
        from pymoo.core.evaluator import Evaluator

        recorder = self

        class RecordingEvaluator(Evaluator):
            def _eval(self, problem, pop, evaluate_values_of, **kwargs):
                super()._eval(problem, pop, evaluate_values_of, **kwargs)
                recorder.add(pop.get("X"), pop.get("F"), pop.get("G") if problem.n_ieq_constr else None)

        return RecordingEvaluator()

    def observed(self) -> tuple[np.ndarray, np.ndarray]:
        """(objectives, feasibility) of every evaluation as the run saw them."""
        return (np.concatenate(self.F),
                np.concatenate([feasible_rows(f, g) for f, g in zip(self.F, self.G)]))

    def answers(self, problem, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """(objectives, feasibility) of the first ``budget`` designs, in order, re-answered by ``problem``."""
        values = problem.evaluate(np.concatenate(self.X)[:budget],
                                  return_values_of=["F", "G"] if problem.n_ieq_constr else ["F"])
        F, G = values if problem.n_ieq_constr else (values, None)
        return F, feasible_rows(F, G)

    def curve(self, scale: HypervolumeScale, budget: int, judge=None) -> tuple[np.ndarray, int]:
        """(hypervolume curve over ``budget`` evaluations, evaluations actually recorded); with
        ``judge`` (the noise-free problem of a noisy run), that of the front the run saw, scored by the
        judge's answers (:func:`~moo_audio.objectives.hypervolume_curve`'s ``judged``)."""
        if not self.F:
            return np.zeros(budget), 0
        F, feasible = self.observed()
        judged = None if judge is None else self.answers(judge, budget)
        return hypervolume_curve(F, feasible, scale, budget, judged=judged), len(F)

    def refit_hv(self, refits: Sequence, scale: HypervolumeScale, budget: int,
                 seen_front: bool = False) -> list[list[float]]:
        """The hypervolume at each of :func:`marks` of the same designs, in the same order, answered by
        each of ``refits`` (see :func:`refitted_surrogates`): one list per refit. With ``seen_front``
        (a noisy run), each refit scores the front the run saw rather than choosing its own."""
        if not self.X:
            return [[0.0] * len(marks(budget)) for _ in refits]
        seen = self.observed() if seen_front else None
        out = []
        for refit in refits:
            answers = self.answers(refit, budget)
            curve = (hypervolume_curve(*seen, scale, budget, judged=answers) if seen_front
                     else hypervolume_curve(*answers, scale, budget))
            out.append([float(curve[m - 1]) for m in marks(budget)])
        return out


def timed(fn: Callable[[], None]) -> dict[str, float]:
    """Run ``fn``; its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def run_pymoo(problem, algorithm, budget: int, seed: int, refits: Sequence = (), judge=None) -> dict[str, Any]:
    """One seeded ``minimize`` of a pymoo algorithm, ``("n_evals", budget)``: its hypervolume curve
    (evaluations past the budget, e.g. of a last generation, are left out), timings and, with
    ``refits``, the hypervolumes those surrogates give its designs (:meth:`Recorder.refit_hv`); see
    :func:`finish` for ``judge``."""
    from pymoo.optimize import minimize

    seed_everything(seed)
    recorder = Recorder()
    times = timed(lambda: minimize(problem, algorithm, ("n_evals", budget), seed=seed,
                                   evaluator=recorder.evaluator()))
    return finish(recorder, problem, budget, times, refits, judge)


def finish(recorder: Recorder, problem, budget: int, times: dict[str, float], refits: Sequence = (),
           judge=None) -> dict[str, Any]:
    """A run's record: ``hv`` (the hypervolume curve), ``n_evals``, the reference, timings, and
    ``hv_refit`` with ``refits``. ``judge``, the noise-free problem of a run on a noisy one: ``hv`` is
    then the front the run saw scored by the judge (what the optimizer would report, at its true
    worth), and ``hv_observed`` the hypervolume of the noisy answers themselves."""
    scale = reference_scale(problem)
    curve, n = recorder.curve(scale, budget, judge)
    out = {"hv": curve.tolist(), "n_evals": min(n, budget), "reference": scale.to_dict(), **times}
    if judge is not None:
        out["hv_observed"] = recorder.curve(scale, budget)[0].tolist()
    if refits:
        out["hv_refit"] = recorder.refit_hv(refits, scale, budget, seen_front=judge is not None)
    return out


def run_jobs(fn: Callable[..., dict], jobs: Sequence[tuple], processes: int) -> tuple[list[dict], list[str]]:
    """``fn(*job)`` for every job, in ``processes`` processes (in this one when 1): the results of the
    jobs that finished, in the order of ``jobs``, each printed as a JSON line when done, and one line
    per job that raised (printed too; the other jobs go on, so a failure loses no finished run)."""
    results: list[dict | None] = [None] * len(jobs)
    failed: list[str] = []

    def done(i: int, run: Callable[[], dict]) -> None:
        try:
            result = run()
        except Exception as error:  # noqa: BLE001 - reported with the job, the other jobs go on
            failed.append(f"{jobs[i]}: {type(error).__name__}: {error}")
            print(f"job {jobs[i]} failed: {type(error).__name__}: {error}", flush=True)
            return
        results[i] = result
        brief = {k: v for k, v in result.items() if k not in ("hv", "reference", "hv_refit", "hv_observed")}
        print(json.dumps({**brief, "final_hv": round(result["hv"][-1], 5)}), flush=True)

    if processes <= 1:
        for i, job in enumerate(jobs):
            done(i, lambda job=job: fn(*job))
    else:
        with ProcessPoolExecutor(processes) as pool:
            futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
            for future, i in futures.items():
                done(i, future.result)
    return [r for r in results if r is not None], failed


def latest_runs(paths: Sequence[Path], loaded: Sequence[dict], keep: Sequence[str] | None = None,
                key: str = "algorithm") -> list[dict]:
    """The runs (``loaded[i]["runs"]``, read from ``paths[i]``) whose ``key`` is in ``keep`` (all when
    ``None``); where two files hold a run of the same ``key`` and seed, the later file's replaces the earlier's
    (said on stderr), so that a rerun merged over a stored comparison counts no seed twice, while a file of
    further seeds (``--first-seed``) adds to it."""
    source: dict[tuple[str, int], int] = {}
    for index, data in enumerate(loaded):
        for name in sorted({r[key] for r in data["runs"] if keep is None or r[key] in keep}):
            seeds = sorted(r["seed"] for r in data["runs"] if r[key] == name)
            replaced = sorted(s for s in seeds if (name, s) in source)
            if replaced:
                earlier = sorted({str(paths[source[name, s]]) for s in replaced})
                print(f"--merge: {name}'s seeds {replaced} from {paths[index]} replace those from "
                      f"{', '.join(earlier)}", file=sys.stderr)
            source.update({(name, s): index for s in seeds})
    return [r for index, data in enumerate(loaded) for r in data["runs"] if source.get((r[key], r["seed"])) == index]


def seed_count(runs: Sequence[dict], key: str = "algorithm") -> int:
    """The most seeds any one ``key`` has among ``runs`` (what a merged table's title reports)."""
    names = {r[key] for r in runs}
    return max(len({r["seed"] for r in runs if r[key] == name}) for name in names)


def exit_if_failed(failed: Sequence[str]) -> None:
    """After the outputs are written: exit with status 1 naming the failed jobs, if any."""
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed (outputs hold the others):\n" + "\n".join(failed))


# ------------------------------------------------------------------------------------------ summary


def bootstrap_median(curves: np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """Median over runs (axis 0) of ``curves`` ``(runs, evals)`` and the percentile bootstrap
    ``level`` confidence interval of that median, per evaluation (fixed seed: reproducible)."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    n = len(curves)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    medians = np.median(curves[idx], axis=1)  # (n_boot, evals)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(medians, [alpha, 1 - alpha], axis=0)
    return np.median(curves, axis=0), lo, hi


def marks(budget: int, wanted: Iterable[int] = MARKS) -> list[int]:
    """The reporting evaluations within ``budget``, plus the budget itself."""
    return sorted({m for m in wanted if m <= budget} | {budget})


def group_curves(runs: Sequence[dict], key: str = "algorithm") -> dict[str, np.ndarray]:
    """Curves ``(seeds, evals)`` by ``run[key]``, seeds in order, groups in order of appearance."""
    groups: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        groups.setdefault(run[key], []).append(run["hv"])
    return {name: np.array(c) for name, c in groups.items()}


def summarize(curves: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Median and 95 % bootstrap interval of every group's curves, per evaluation."""
    out = {}
    for name, c in curves.items():
        median, lo, hi = bootstrap_median(c)
        out[name] = {"median": median.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    return out


def evals_to_reach(median: Sequence[float], target: float) -> int | None:
    """First evaluation count (1-based) at which ``median`` reaches ``target``, else None."""
    hit = np.flatnonzero(np.asarray(median) >= target - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


def cell(summary: dict[str, list[float]], evals: int) -> str:
    """``median [lo, hi]`` at ``evals`` evaluations (a dash beyond a shorter run's budget)."""
    i = evals - 1
    if i >= len(summary["median"]):
        return "-"
    return f"{summary['median'][i]:.4f} [{summary['lo'][i]:.4f}, {summary['hi'][i]:.4f}]"


def leaders_vs_surrogate_error(runs: Sequence[dict], summary: dict, budget: int, key: str = "algorithm") -> str:
    """Per mark, whether the leader's lead over the runner-up (by median hypervolume) exceeds the
    surrogate's error: the share of refitted surrogates (runs' ``hv_refit``) under which the leader's
    median still beats the runner-up's, beside whether their seed intervals overlap. Groups without
    refits (e.g. merged older runs) take no part."""
    at = marks(budget)
    refit = {}
    for run in runs:
        if "hv_refit" in run:
            refit.setdefault(run[key], []).append(np.array(run["hv_refit"]))  # (refits, marks)
    rows = []
    for j, m in enumerate(at):
        ranked = sorted((g for g in refit if len(summary[g]["median"]) >= m),
                        key=lambda g: -summary[g]["median"][m - 1])
        if len(ranked) < 2:
            continue
        lead, second = ranked[:2]
        medians = {g: np.median(np.stack(refit[g])[:, :, j], axis=0) for g in (lead, second)}  # per refit
        holds = int(np.sum(medians[lead] > medians[second]))
        gap = summary[lead]["median"][m - 1] - summary[second]["median"][m - 1]
        overlap = summary[lead]["lo"][m - 1] <= summary[second]["hi"][m - 1]
        verdict = "yes" if holds >= 0.95 * len(medians[lead]) and not overlap else "no"
        rows.append([m, lead, second, f"{gap:.4f}", f"{holds}/{len(medians[lead])}",
                     "overlap" if overlap else "apart", verdict])
    header = ["evals", "leader", "runner-up", "median HV gap", "leader ahead under refitted surrogates",
              "95% seed intervals", "difference exceeds the surrogate's error and seed noise"]
    return markdown(header, rows)


def markdown(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, list[float]]], path: Path, title: str, x: Sequence[float] | None = None,
         xlabel: str = "evaluations") -> None:
    """Median hypervolume with its 95 % band, one line per group, at ``x`` (default evaluations 1, 2, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, s in summary.items():
        at = np.arange(1, len(s["median"]) + 1) if x is None else np.asarray(x)[: len(s["median"])]
        (line,) = ax.plot(at, s["median"], label=name, lw=1.5)
        ax.fill_between(at, s["lo"], s["hi"], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised hypervolume (feasible points)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(out: Path, stem: str, data: dict, table: str, summary: dict, title: str, **axis) -> None:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` under ``out`` (``axis``: :func:`plot`'s ``x``
    and ``xlabel``)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{stem}.json", "w") as f:
        json.dump(data, f, indent=1)
    (out / f"{stem}.md").write_text(table + "\n")
    plot(summary, out / f"{stem}.png", title, **axis)
    print(f"wrote {out / stem}.json, .md, .png", flush=True)


def environment() -> dict[str, Any]:
    """Machine facts that bear on the wall times."""
    return {"cpu_count": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
