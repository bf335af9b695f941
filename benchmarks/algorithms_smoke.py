"""Hypervolume of moo_audio's optimizers against random search and NSGA-II, and BO step timing.

Runs every algorithm on ZDT1 (10 variables) and DTLZ2 (3 objectives, 10 variables) for several seeds,
records the hypervolume (pymoo ``HV``, BoTorch's reference points for these problems) of the first 60
and of all 100 evaluations, and times one ``BoTorchMOBO`` step with 100 observations, 3 objectives and
``q=4`` (on DTLZ2, or with ``--step-problem builtin`` on the surrogate NAS benchmark): the exact greedy
batch (:data:`EXACT_BO`), the defaults, the defaults with each of their fast settings reverted, the warm
start and other acquisitions, all in the same run. The numbers in
``docs/algorithms.md`` come from this script::

    python benchmarks/algorithms_smoke.py --seeds 5 --threads 1 --out results.json
    python benchmarks/algorithms_smoke.py --timing-only --threads 1     # the step times alone
    python benchmarks/algorithms_smoke.py --timing-only --threads 1 --step-problem builtin  # on the NAS benchmark
    python benchmarks/algorithms_smoke.py --summarize a.json b.json     # medians [95% CI] of stored runs

``--jobs N`` runs the seeded runs in N processes (each with ``--threads`` torch threads); the results
do not depend on it, only the wall time does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize
from pymoo.problems import get_problem

from moo_audio.algorithms import MOPSO, BoTorchMOBO, HybridSearch, RandomSearch, RegularizedEvolution

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hv  # noqa: E402 (this folder, added to the path above)

PROBLEMS = {
    "zdt1": (lambda: get_problem("zdt1", n_var=10), [11.0, 11.0]),
    "dtlz2": (lambda: get_problem("dtlz2", n_obj=3), [1.1, 1.1, 1.1]),
}
#: the exact greedy batch the default step approximates (BoTorchMOBO's defaults before the fast
#: settings): every candidate in the greedy batch, box decompositions re-partitioned after every pick,
#: 32 MC samples
EXACT_BO = {"prescreen": None, "max_iep": 0, "mc_samples": 32}
#: the default configuration with one of its fast settings reverted to the exact one, by that setting
DEFAULT_BO_ABLATIONS = {setting: {setting: value} for setting, value in EXACT_BO.items()}
#: GP fits warm-started from the previous step's hyperparameters with capped iterations: faster, but it
#: loses hypervolume on DTLZ2, so it stays an option
WARM_BO = {"warm_start_maxiter": 20}
ALGORITHMS = {
    "random": lambda ref: RandomSearch(),
    "nsga2": lambda ref: NSGA2(pop_size=20),
    "evolution": lambda ref: RegularizedEvolution(),
    "pso": lambda ref: MOPSO(),
    "botorch": lambda ref: BoTorchMOBO(ref_point=ref),
    "botorch-inferred-ref": lambda ref: BoTorchMOBO(),
    "botorch-exact": lambda ref: BoTorchMOBO(ref_point=ref, **EXACT_BO),
    "botorch-warm": lambda ref: BoTorchMOBO(ref_point=ref, **WARM_BO),
    "hybrid": lambda ref: HybridSearch(bo=BoTorchMOBO(ref_point=ref)),
    # the defaults with one fast setting reverted each ("botorch-exact-prescreen", ...)
    **{f"botorch-exact-{setting}": (lambda ref, options=options: BoTorchMOBO(ref_point=ref, **options))
       for setting, options in DEFAULT_BO_ABLATIONS.items()},
}


def run(algorithm: str, problem: str, seed: int, n_evals: int = 100, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    make_problem, ref = PROBLEMS[problem]
    batches = []
    start = time.perf_counter(), time.process_time()
    minimize(make_problem(), ALGORITHMS[algorithm](np.array(ref)), ("n_evals", n_evals), seed=seed,
             evaluator=Evaluator(callback=lambda pop: batches.append(pop.get("F"))))
    F, hv = np.concatenate(batches), HV(ref_point=np.array(ref))
    return {"algorithm": algorithm, "problem": problem, "seed": seed, "hv60": hv(F[:60]), "hv100": hv(F),
            "wall_s": time.perf_counter() - start[0], "cpu_s": time.process_time() - start[1]}


#: the problems a BO step is timed on: DTLZ2 (every objective modelled, three GPs) and the surrogate
#: benchmark on the built-in table (the defaults model the error alone and read energy and memory exactly)
STEP_PROBLEMS = {
    "dtlz2": PROBLEMS["dtlz2"][0],
    "builtin": lambda: _hv.surrogate("builtin"),
}


def time_bo_step(problem_name: str = "dtlz2", **kwargs) -> dict:
    """One ask() of BoTorchMOBO at 100 observations (3 objectives, q=4) on ``STEP_PROBLEMS[problem_name]``:
    a 96-point Sobol design and one BO step first (untimed; it leaves the fitted GPs a warm start can
    begin from)."""
    problem = STEP_PROBLEMS[problem_name]()
    algorithm = BoTorchMOBO(n_init=96, q=4, **kwargs)
    algorithm.setup(problem, termination=("n_evals", 200), seed=0)
    for _ in range(2):
        pop = algorithm.ask()
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
    start = time.perf_counter(), time.process_time()
    algorithm.ask()
    return {"problem": problem_name, "step": kwargs, "wall_s": time.perf_counter() - start[0],
            "cpu_s": time.process_time() - start[1]}


def step_configurations(problem_name: str) -> list[dict]:
    """The exact greedy batch, the defaults and them with each fast setting reverted, the warm start,
    other acquisitions; on DTLZ2 the continuous acquisition optimiser, on the surrogate benchmark (whose
    exact cheap objectives need the discrete one) every objective modelled and the additive GP instead."""
    own = ([{"acqf_optimizer": "continuous"}] if problem_name == "dtlz2"
           else [{"exact_cheap_objectives": False}, {"gp_inputs": "additive"}])
    return [EXACT_BO, {}, *DEFAULT_BO_ABLATIONS.values(), WARM_BO, {"acquisition": "qEHVI"},
            {"acquisition": "qNParEGO"}, *own]


def median_table(runs: list[dict]) -> str:
    """Markdown: per (problem, algorithm) in order of appearance, the seeds, and the median HV at 60
    and 100 evaluations with its 95% percentile-bootstrap interval over the seeds."""
    cells = list(dict.fromkeys((r["problem"], r["algorithm"]) for r in runs))
    rows = []
    for problem, algorithm in cells:
        mine = [r for r in runs if (r["problem"], r["algorithm"]) == (problem, algorithm)]
        median, lo, hi = _hv.bootstrap_median(np.array([[r["hv60"], r["hv100"]] for r in mine]))
        seeds = sorted(r["seed"] for r in mine)
        rows.append([problem, algorithm, f"{seeds[0]}-{seeds[-1]} ({len(seeds)})",
                     *(f"{median[i]:.4g} [{lo[i]:.4g}, {hi[i]:.4g}]" for i in (0, 1))])
    return _hv.markdown(["problem", "algorithm", "seeds", "median HV at 60 [95% CI]", "median HV at 100 [95% CI]"],
                        rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, ..., first-seed + seeds - 1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the seeded runs")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", default=None,
                        help="print the median table of the runs stored in these --out files and exit")
    parser.add_argument("--step-problem", choices=list(STEP_PROBLEMS), default="dtlz2",
                        help="the problem the BO steps are timed on")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--skip-timing", action="store_true", help="do not time BO steps")
    timing.add_argument("--timing-only", action="store_true", help="time BO steps, run no algorithm")
    args = parser.parse_args()
    if args.summarize:
        print(median_table([r for path in args.summarize for r in json.loads(Path(path).read_text())["runs"]]))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    timings = []
    for step in [] if args.skip_timing else step_configurations(args.step_problem):
        timings.append(time_bo_step(args.step_problem, **step))
        last = timings[-1]
        print(f"BO step on {args.step_problem}, {step or 'defaults'}: wall {last['wall_s']:.1f} s, "
              f"cpu {last['cpu_s']:.1f} s, {timings[0]['wall_s'] / last['wall_s']:.1f}x faster than the exact "
              "greedy batch", flush=True)
    if args.timing_only:
        args.algorithms = ""

    cells = [(a, p) for p in args.problems.split(",") for a in args.algorithms.split(",") if a]
    # the slowest (Bayesian) runs first, so that a pool does not end waiting on one of them
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = sorted(((a, p, seed) for a, p in cells for seed in seeds),
                  key=lambda j: "botorch" not in j[0] and "hybrid" not in j[0])
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, a, p, seed, threads=args.threads) for a, p, seed in jobs]
        runs = []
        for future in futures:
            runs.append(future.result())
            print(json.dumps(runs[-1]), flush=True)
    print(median_table(runs), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"timings": timings, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
