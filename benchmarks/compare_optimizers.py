"""Hypervolume vs evaluations of moo_audio's optimizers and their peers on ``SurrogateAudioNASProblem``.

Algorithms (``--algorithms``, default all):

* ours: ``hybrid`` (``HybridSearch()``), ``botorch`` (``BoTorchMOBO()``: qLogNEHVI, q=4, exact cheap
  objectives), ``evolution`` (``RegularizedEvolution()``), ``pso`` (``MOPSO()``);
* peers: ``nsga2`` and ``smsemoa`` (pymoo, population ``POP_SIZE`` with the genome sampling and repair
  and duplicate elimination, as ``moo-audio search`` sets up NSGA-II), ``random`` (``RandomSearch()``),
  ``optuna-tpe`` (``optuna.samplers.TPESampler``), ``optuna-gp`` (``GPSampler``: a GP per objective,
  log-EHVI with the constraints, after 10 random trials) and ``optuna-nsga2`` (``NSGAIISampler``,
  population ``POP_SIZE``), all with their defaults otherwise. An Optuna trial suggests one value per entry of
  ``problem.vars`` (Real: ``suggest_float``, Integer: ``suggest_int``, Choice: ``suggest_categorical``,
  Binary: ``suggest_categorical([False, True])``), the problem evaluates that dict, and the constraint
  values go to the sampler through ``constraints_func``; ``ax`` (Ax's ``Client`` with its default
  generation strategy: Sobol, then qLogNEHVI on a GP per objective and constraint; choices as Ax
  choice parameters, ordered where numeric; ``BoTorchMOBO``'s initial design size and batch size;
  the ``bench`` extra) and ``smac`` (SMAC3's ``HyperparameterOptimizationFacade`` with its
  multi-objective algorithm, ParEGO: a random forest on a randomly weighted scalarisation, one trial
  at a time; choices as ConfigSpace categorical hyperparameters, ordinal where numeric; a Sobol
  initial design of ``BoTorchMOBO``'s size; an infeasible trial is told as failed, SMAC's own
  mechanism for it, at the worst cost the run has seen; the ``bench`` extra).

Every algorithm runs ``--seeds`` seeds (0, 1, ..., or from ``--first-seed``) of ``--budget`` evaluations
(evaluations beyond the budget, e.g. of NSGA-II's last generation, are not counted). Hypervolume (see
``benchmarks/_hv.py``): pymoo ``HV`` of the running non-dominated set of the *feasible* evaluations,
objectives normalised by a fixed scale computed once from the table (error as it is; energy and memory
on a log scale between the table's extremes, widened by 10%). It is thus in [0, ~1] and comparable
across algorithms and with ``compare_acquisitions.py``.

Outputs under ``--out``: ``optimizers.json`` (every curve, timings, settings, reference),
``optimizers.md`` (median and 95 % percentile-bootstrap interval of the median HV at 25/50/100/200
evaluations; evaluations each algorithm's median curve needs to reach NSGA-II's median HV at the
budget; per mark, whether the leader's lead over the runner-up exceeds the surrogate's error: it
must hold under at least 95% of ``REFITS`` surrogates refitted to bootstrap resamples of the table,
which re-answer every run's designs, and the seed intervals must not overlap) and ``optimizers.png``
(median curves with their 95 % bands)::

    python benchmarks/compare_optimizers.py --jobs 2              # the full comparison
    python benchmarks/compare_optimizers.py --quick               # 2 seeds, 30 evaluations
    python benchmarks/compare_optimizers.py --merge a.json b.json # one report of earlier runs

``--merge`` reports the runs stored in earlier ``optimizers.json`` files (e.g. the Bayesian runs made
on a bigger machine, or with a smaller ``--budget``, beside the others) instead of running anything;
a run shorter than the longest shows a dash at the marks beyond its budget. Where two files hold runs
of the same algorithm, the later file's runs replace the earlier's (a rerun over a stored comparison;
the script says so), so no seed is counted twice.

``--seed-noise`` runs every job on the surrogate's seed-noise mode (``seed_noise=True``: each
evaluation answers as one training run does, so a genome evaluated twice gets two answers; the
noise is drawn from the job's seed). A noisy answer can look better than the architecture is, so the
hypervolume is then that of the front the run *saw*, at its members' noise-free values: what the
optimizer would report, at its true worth (refitted surrogates score that same front);
``hv_observed`` in the JSON keeps the hypervolume of the noisy answers. Outputs go to
``optimizers-seed_noise.*``::

    python benchmarks/compare_optimizers.py --seed-noise --jobs 2 --algorithms botorch,optuna-tpe,nsga2

``--jobs N`` runs the (algorithm, seed) jobs in N processes; each job reseeds every generator and
the problem is deterministic, so the results do not depend on it (the wall times do).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hv

#: population of pymoo's NSGA-II / SMS-EMOA and of Optuna's NSGA-II sampler (pymoo's default of 100
#: would leave two generations in 200 evaluations); the builtin problem file uses 12 for 60
POP_SIZE = 20
OURS = ("hybrid", "botorch", "evolution", "pso")
PEERS = ("nsga2", "smsemoa", "random", "optuna-tpe", "optuna-gp", "optuna-nsga2", "ax", "smac")
#: the module each peer family needs and the extra of moo-audio that installs it
PEER_PACKAGES = {"optuna": ("optuna", "test"), "ax": ("ax", "bench"), "smac": ("smac", "bench")}
ALGORITHMS = OURS + PEERS
QUICK_BO, QUICK_TREES = _hv.QUICK_BO, _hv.QUICK_TREES
#: surrogates refitted to bootstrap resamples of the table, re-answering every run's designs: whether
#: a lead exceeds the surrogate's error (``_hv.leaders_vs_surrogate_error``)
REFITS, QUICK_REFITS = 10, 3


def make_algorithm(name: str, bo_options: dict[str, Any]):
    """A fresh pymoo algorithm for ``name`` (not the Optuna ones), from moo_audio's registry."""
    from moo_audio.algorithms import BoTorchMOBO
    from moo_audio.algorithms.registry import make_algorithm as registered

    options = {"hybrid": {"bo": BoTorchMOBO(**bo_options)}, "botorch": {"acquisition": "qLogNEHVI", **bo_options},
               "nsga2": {"pop_size": POP_SIZE}, "smsemoa": {"pop_size": POP_SIZE}}
    return registered(name, options.get(name, {}))


def plain(value):
    """A numpy scalar as the Python value the peers' APIs take; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def suggest(trial, name: str, var):
    """One Optuna suggestion for a pymoo variable."""
    from pymoo.core.variable import Binary, Choice, Integer, Real

    if isinstance(var, Binary):
        return trial.suggest_categorical(name, [False, True])
    if isinstance(var, Choice):
        return trial.suggest_categorical(name, [plain(o) for o in var.options])
    if isinstance(var, Integer):
        lo, hi = var.bounds
        return trial.suggest_int(name, int(lo), int(hi))
    if isinstance(var, Real):
        lo, hi = var.bounds
        return trial.suggest_float(name, float(lo), float(hi))
    raise TypeError(f"variable {name!r}: no Optuna suggestion for {type(var).__name__}")


def run_optuna(problem, sampler_name: str, budget: int, seed: int, refits=(), judge=None) -> dict[str, Any]:
    """One seeded Optuna study of ``budget`` trials on the problem's mixed variables."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _hv.seed_everything(seed)
    recorder = _hv.Recorder()

    def constraints(trial) -> list[float]:
        return trial.user_attrs["constraints"]

    def objective(trial) -> list[float]:
        assignment = {name: suggest(trial, name, var) for name, var in problem.vars.items()}
        out = problem.evaluate(np.array([assignment], dtype=object), return_as_dictionary=True)
        G = out.get("G") if problem.n_ieq_constr else None
        recorder.add(np.array([assignment], dtype=object), out["F"], G)
        trial.set_user_attr("constraints", [] if G is None else [float(g) for g in np.ravel(G)])
        return [float(f) for f in np.ravel(out["F"])]

    if sampler_name == "optuna-tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)
    elif sampler_name == "optuna-gp":
        sampler = optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    else:
        sampler = optuna.samplers.NSGAIISampler(population_size=POP_SIZE, seed=seed,
                                                constraints_func=constraints)
    study = optuna.create_study(directions=["minimize"] * problem.n_obj, sampler=sampler)
    times = _hv.timed(lambda: study.optimize(objective, n_trials=budget))
    return _hv.finish(recorder, problem, budget, times, refits, judge)


def one_option_choices(problem, mapped: dict[str, Any]) -> dict[str, Any]:
    """The values of the variables a peer's space left out (``None`` in ``mapped``: one-option
    choices, which Ax and ConfigSpace refuse), for every assignment the peer proposes."""
    return {name: plain(problem.vars[name].options[0]) for name, entry in mapped.items() if entry is None}


def ax_parameter(name: str, var):
    """One Ax parameter config for a pymoo variable; ``None`` for a one-option Choice (Ax refuses a
    choice of one value; the assignment fixes it instead)."""
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
    from pymoo.core.variable import Binary, Choice, Integer, Real

    if isinstance(var, Binary):
        return ChoiceParameterConfig(name=name, values=[False, True], parameter_type="bool")
    if isinstance(var, Choice):
        values = [plain(v) for v in var.options]
        if len(values) == 1:
            return None
        kind = "str" if isinstance(values[0], str) else "int" if isinstance(values[0], int) else "float"
        return ChoiceParameterConfig(name=name, values=values, parameter_type=kind, is_ordered=kind != "str")
    if isinstance(var, Integer | Real):
        lo, hi = var.bounds
        kind = "int" if isinstance(var, Integer) else "float"
        return RangeParameterConfig(name=name, bounds=(lo, hi) if kind == "float" else (int(lo), int(hi)),
                                    parameter_type=kind)
    raise TypeError(f"variable {name!r}: no Ax parameter for {type(var).__name__}")


def run_ax(problem, budget: int, seed: int, refits=(), judge=None) -> dict[str, Any]:
    """One seeded Ax ``Client`` run: its default generation strategy for a multi-objective experiment
    (Sobol, then BoTorch's qLogNEHVI on GPs of every objective), with ``BoTorchMOBO``'s initial
    design size and batch size ``q``; the constraint values are an outcome constraint ``g <= 0``."""
    import inspect
    import logging

    from ax.api.client import Client

    from moo_audio.algorithms import BoTorchMOBO
    from moo_audio.algorithms.botorch_mobo import default_n_init

    _hv.seed_everything(seed)
    recorder = _hv.Recorder()
    configs = {name: ax_parameter(name, var) for name, var in problem.vars.items()}
    fixed = one_option_choices(problem, configs)
    objectives = [f"f{i}" for i in range(problem.n_obj)]
    constraints = [f"g{i}" for i in range(problem.n_ieq_constr)]
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=[c for c in configs.values() if c is not None])
    client.configure_optimization(objective=", ".join(f"-{f}" for f in objectives),
                                  outcome_constraints=[f"{g} <= 0" for g in constraints] or None)
    client.configure_generation_strategy(initialization_budget=default_n_init(len(problem.vars)),
                                         initialization_random_seed=seed)
    batch = inspect.signature(BoTorchMOBO).parameters["q"].default
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "ax"]:
        logging.getLogger(name).setLevel(logging.WARNING)  # Ax's loggers log every trial at INFO

    def optimize() -> None:
        done = 0
        while done < budget:
            trials = client.get_next_trials(max_trials=min(batch, budget - done))
            if not trials:
                break
            X = np.array([{**fixed, **parameters} for parameters in trials.values()], dtype=object)
            out = problem.evaluate(X, return_as_dictionary=True)
            G = np.atleast_2d(out["G"]) if constraints else None
            recorder.add(X, out["F"], G)
            for row, index in enumerate(trials):
                data = {f: float(v) for f, v in zip(objectives, out["F"][row])}
                data.update({} if G is None else {g: float(v) for g, v in zip(constraints, G[row])})
                client.complete_trial(trial_index=index, raw_data=data)
            done += len(trials)

    return _hv.finish(recorder, problem, budget, _hv.timed(optimize), refits, judge)


def smac_hyperparameter(name: str, var):
    """One ConfigSpace hyperparameter for a pymoo variable; ``None`` for a one-option Choice (fixed by
    the assignment, as for Ax)."""
    from ConfigSpace import (
        CategoricalHyperparameter,
        OrdinalHyperparameter,
        UniformFloatHyperparameter,
        UniformIntegerHyperparameter,
    )
    from pymoo.core.variable import Binary, Choice, Integer, Real

    if isinstance(var, Binary):
        return CategoricalHyperparameter(name, [False, True])
    if isinstance(var, Choice):
        values = [plain(v) for v in var.options]
        if len(values) == 1:
            return None
        if isinstance(values[0], str):
            return CategoricalHyperparameter(name, values)
        return OrdinalHyperparameter(name, values)
    if isinstance(var, Integer):
        lo, hi = var.bounds
        return UniformIntegerHyperparameter(name, int(lo), int(hi))
    if isinstance(var, Real):
        lo, hi = var.bounds
        return UniformFloatHyperparameter(name, float(lo), float(hi))
    raise TypeError(f"variable {name!r}: no ConfigSpace hyperparameter for {type(var).__name__}")


def run_smac(problem, budget: int, seed: int, refits=(), judge=None) -> dict[str, Any]:
    """One seeded SMAC3 run through its ask-and-tell interface: the hyperparameter-optimisation facade
    (random forest, expected improvement, local and random search of the acquisition) with ParEGO
    for the objectives and a Sobol initial design of ``BoTorchMOBO``'s size. SMAC has no constraints:
    a trial that violates one is told as ``CRASHED`` (how SMAC records a failed configuration) at the
    element-wise worst cost the run has seen so far, so the forest learns to avoid it without any
    knowledge beyond the run's own evaluations."""
    import tempfile

    from ConfigSpace import ConfigurationSpace
    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue
    from smac.runhistory.enumerations import StatusType

    from moo_audio.algorithms.botorch_mobo import default_n_init

    _hv.seed_everything(seed)
    recorder = _hv.Recorder()
    hyperparameters = {name: smac_hyperparameter(name, var) for name, var in problem.vars.items()}
    fixed = one_option_choices(problem, hyperparameters)
    space = ConfigurationSpace(seed=seed)
    space.add([h for h in hyperparameters.values() if h is not None])
    objectives = [f"f{i}" for i in range(problem.n_obj)]

    def optimize() -> None:
        with tempfile.TemporaryDirectory() as output:
            scenario = Scenario(space, objectives=objectives, deterministic=True, n_trials=budget, seed=seed,
                                output_directory=Path(output))
            facade = HyperparameterOptimizationFacade
            smac = facade(scenario, target_function=None, logging_level=40, overwrite=True,
                          multi_objective_algorithm=facade.get_multi_objective_algorithm(scenario),
                          initial_design=facade.get_initial_design(
                              scenario, n_configs=default_n_init(len(problem.vars))))
            worst = None
            for _ in range(budget):
                info = smac.ask()
                X = np.array([{**fixed, **{k: plain(v) for k, v in dict(info.config).items()}}], dtype=object)
                out = problem.evaluate(X, return_as_dictionary=True)
                G = np.atleast_2d(out["G"]) if problem.n_ieq_constr else None
                recorder.add(X, out["F"], G)
                cost = np.ravel(out["F"]).astype(float)
                worst = cost if worst is None else np.maximum(worst, cost)
                feasible = G is None or bool(np.all(G <= 0))
                smac.tell(info, TrialValue(cost=(cost if feasible else worst).tolist(),
                                           status=StatusType.SUCCESS if feasible else StatusType.CRASHED))

    return _hv.finish(recorder, problem, budget, _hv.timed(optimize), refits, judge)


def run(algorithm: str, seed: int, table: str, trees: int, budget: int, quick: bool,
        seed_noise: bool = False) -> dict[str, Any]:
    """One (algorithm, seed) job: its hypervolume curve and timings; with ``seed_noise``, on the noisy
    surrogate (its noise drawn from the job's seed), scored by the noise-free one."""
    _hv.quiet()
    problem = _hv.surrogate(table, trees, seed_noise)
    judge = None
    if seed_noise:
        problem.noise_rng = np.random.default_rng(seed)  # the job's draws, whatever ran before it
        judge = _hv.surrogate(table, trees)
    refits = _hv.refitted_surrogates(table, trees, QUICK_REFITS if quick else REFITS)
    if algorithm.startswith("optuna-"):
        result = run_optuna(problem, algorithm, budget, seed, refits, judge)
    elif algorithm == "ax":
        result = run_ax(problem, budget, seed, refits, judge)
    elif algorithm == "smac":
        result = run_smac(problem, budget, seed, refits, judge)
    else:
        algo = make_algorithm(algorithm, QUICK_BO if quick else {})
        result = _hv.run_pymoo(problem, algo, budget, seed, refits, judge)
    return {"algorithm": algorithm, "seed": seed, **result}


def report(runs: list[dict], budget: int, baseline: str = "nsga2") -> tuple[str, dict]:
    """The markdown table and the per-evaluation summary of ``runs``: median HV [95% CI] at the marks,
    and the evaluations each median curve needs to reach NSGA-II's median HV at each mark; for
    seed-noise runs also the median hypervolume of the noisy answers themselves at the budget."""
    summary = _hv.summarize(_hv.group_curves(runs))
    at = _hv.marks(budget)
    targets = {m: summary[baseline]["median"][m - 1] for m in at if m > 25} if baseline in summary else {}
    noisy = all("hv_observed" in r for r in runs)
    rows = []
    for name, s in summary.items():
        reach = [_hv.evals_to_reach(s["median"], t) or f"not in {len(s['median'])}" for t in targets.values()]
        own = [r for r in runs if r["algorithm"] == name]
        observed = [f"{np.median([r['hv_observed'][-1] for r in own]):.4f}"] if noisy else []
        rows.append([name, *(_hv.cell(s, m) for m in at), *observed, *reach,
                     f"{np.median([r['wall_s'] for r in own]):.1f}",
                     f"{np.median([r['wall_s'] / len(r['hv']) for r in own]):.2f}"])
    header = ["algorithm", *(f"HV at {m}" for m in at), *([f"noisy answers' HV at {budget}"] if noisy else []),
              *(f"evals to NSGA-II's HV at {m} ({t:.4f})" for m, t in targets.items()), "median wall s / run",
              "wall s / evaluation (median over runs)"]
    return _hv.markdown(header, rows), summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _hv.add_run_arguments(parser, "algorithm", full=(10, 200), quick=(2, 30),
                          quick_help=f"2 seeds, 30 evaluations, small BO settings {QUICK_BO}, {QUICK_TREES} trees")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated subset")
    parser.add_argument("--seed-noise", action="store_true",
                        help="evaluate on the surrogate's seed-noise mode (answers as one training run); "
                             "hypervolume of the front each run saw, at its noise-free values; "
                             "outputs optimizers-seed_noise.*")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="report the runs of these optimizers.json files instead of running")
    args = parser.parse_args(argv)
    seed_range, budget, trees = _hv.run_sizes(parser, args)
    algorithms = _hv.choose(parser, args.algorithms, ALGORITHMS, "algorithms")
    for name in [] if args.merge else algorithms:  # merging reads results; it runs no peer
        module, extra = PEER_PACKAGES.get(name.split("-")[0], (None, None))
        if module and importlib.util.find_spec(module) is None:
            parser.error(f"{name} needs {module}: pip install 'moo-audio[{extra}]' (or leave it out of --algorithms)")
    _hv.quiet()

    loaded = [json.loads(path.read_text()) for path in args.merge or []]
    if args.merge:
        noisy = {bool(data["settings"].get("seed_noise")) for data in loaded}
        if len(noisy) > 1:
            parser.error("--merge: some files hold seed-noise runs and some noise-free ones; merge them apart")
        args.seed_noise = noisy.pop()
        tables = {data["settings"]["table"] for data in loaded}
        if len(tables) > 1:
            parser.error(f"--merge: the files hold runs on different tables ({', '.join(sorted(tables))})")
        args.table = tables.pop()
        runs = _hv.latest_runs(args.merge, loaded, algorithms)
        failed = [line for data in loaded for line in data.get("failed", [])]
        budget = max(len(r["hv"]) for r in runs)
        trees = loaded[0]["settings"]["trees"]
    else:
        # the Bayesian runs first, so that a pool does not end waiting on one of them
        jobs = [(a, s, args.table, trees, budget, args.quick, args.seed_noise)
                for a in sorted(algorithms, key=lambda a: a not in ("botorch", "hybrid", "optuna-gp"))
                for s in seed_range]
        runs, failed = _hv.run_jobs(run, jobs, args.jobs)
    seeds = _hv.seed_count(runs)  # of the runs reported: a merge's, or this run's that finished
    runs.sort(key=lambda r: (algorithms.index(r["algorithm"]), r["seed"]))

    table, summary = report(runs, budget)
    table += "\n\nDo the leaders differ by more than the surrogate's error?\n\n" + \
        _hv.leaders_vs_surrogate_error(runs, summary, budget)
    print(table, flush=True)
    settings = {"table": args.table, "trees": trees, "seeds": seeds, "budget": budget, "quick": args.quick,
                "seed_noise": args.seed_noise,
                "algorithms": algorithms, "pop_size": POP_SIZE, "bo_options": QUICK_BO if args.quick else {},
                "jobs": args.jobs, "merged": [str(p) for p in args.merge or []],
                "merged_environments": [data["environment"] for data in loaded],
                "hv": "feasible points, error linear and energy/memory log-normalised, pymoo HV at (1, 1, 1)"}
    data = {"settings": settings, "failed": failed, "environment": _hv.environment(),
            "reference": runs[0]["reference"],
            "marks": _hv.marks(budget), "summary": summary, "runs": runs}
    noisy = " (seed noise)" if args.seed_noise else ""
    title = f"{args.table} surrogate{noisy}: {seeds} seeds, median and 95% bootstrap CI"
    _hv.write(args.out, "optimizers-seed_noise" if args.seed_noise else "optimizers", data, table, summary, title)
    _hv.exit_if_failed(failed)


if __name__ == "__main__":
    main()
