"""Hypervolume of moo_audio's optimizers against random search and NSGA-II, and BO step timing.

Runs every algorithm on ZDT1 (10 variables) and DTLZ2 (3 objectives, 10 variables) for several seeds,
records the hypervolume (pymoo ``HV``, BoTorch's reference points for these problems) of the first 60
and of all 100 evaluations, and times one ``BoTorchMOBO`` step with 100 observations, 3 objectives and
``q=4``: BoTorch's default configuration, the fast one (:data:`FAST_BO`), the fast one without each of
its settings, and other acquisitions, all in the same run. The numbers in ``docs/algorithms.md`` come
from this script::

    python benchmarks/algorithms_smoke.py --seeds 5 --threads 1 --out results.json
    python benchmarks/algorithms_smoke.py --timing-only --threads 1     # the step times alone

``--jobs N`` runs the seeded runs in N processes (each with ``--threads`` torch threads); the results
do not depend on it, only the wall time does.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize
from pymoo.problems import get_problem

from moo_audio.algorithms import MOPSO, BoTorchMOBO, HybridSearch, RandomSearch, RegularizedEvolution

PROBLEMS = {
    "zdt1": (lambda: get_problem("zdt1", n_var=10), [11.0, 11.0]),
    "dtlz2": (lambda: get_problem("dtlz2", n_obj=3), [1.1, 1.1, 1.1]),
}
#: a cheaper qLogNEHVI step (what the step profile pointed at): the discrete candidates prescreened by
#: their single-point value, pending points scored jointly in blocks (BoTorch's max_iep), fewer MC
#: samples, GP fits warm-started from the previous step's hyperparameters with capped iterations (the
#: warm start is the one that loses hypervolume: compare "botorch-fast-no-warm_start_maxiter")
FAST_BO = {"prescreen": 64, "max_iep": 4, "mc_samples": 16, "warm_start_maxiter": 20}
#: the fast configuration without one of its settings, by the setting left out
FAST_BO_ABLATIONS = {left_out: {k: v for k, v in FAST_BO.items() if k != left_out} for left_out in FAST_BO}
ALGORITHMS = {
    "random": lambda ref: RandomSearch(),
    "nsga2": lambda ref: NSGA2(pop_size=20),
    "evolution": lambda ref: RegularizedEvolution(),
    "pso": lambda ref: MOPSO(),
    "botorch": lambda ref: BoTorchMOBO(ref_point=ref),
    "botorch-inferred-ref": lambda ref: BoTorchMOBO(),
    "botorch-fast": lambda ref: BoTorchMOBO(ref_point=ref, **FAST_BO),
    "hybrid": lambda ref: HybridSearch(bo=BoTorchMOBO(ref_point=ref)),
    # the fast configuration without one of its settings each ("botorch-fast-no-prescreen", ...)
    **{f"botorch-fast-no-{left_out}": (lambda ref, options=options: BoTorchMOBO(ref_point=ref, **options))
       for left_out, options in FAST_BO_ABLATIONS.items()},
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


def time_bo_step(**kwargs) -> dict:
    """One ask() of BoTorchMOBO on DTLZ2 at 100 observations (3 objectives, q=4): a 96-point Sobol design
    and one BO step first (untimed; it leaves the fitted GPs a warm start can begin from)."""
    problem = get_problem("dtlz2", n_obj=3)
    algorithm = BoTorchMOBO(n_init=96, q=4, **kwargs)
    algorithm.setup(problem, termination=("n_evals", 200), seed=0)
    for _ in range(2):
        pop = algorithm.ask()
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
    start = time.perf_counter(), time.process_time()
    algorithm.ask()
    return {"step": kwargs, "wall_s": time.perf_counter() - start[0], "cpu_s": time.process_time() - start[1]}


def step_configurations() -> list[dict]:
    """BoTorch's defaults, the fast configuration and it without each setting, other acquisitions."""
    return [{}, FAST_BO, *FAST_BO_ABLATIONS.values(), {"acqf_optimizer": "continuous"}, {"acquisition": "qEHVI"},
            {"acquisition": "qNParEGO"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--out", default=None, help="write all results as JSON here")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the seeded runs")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--skip-timing", action="store_true", help="do not time BO steps")
    timing.add_argument("--timing-only", action="store_true", help="time BO steps, run no algorithm")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    timings = []
    for step in [] if args.skip_timing else step_configurations():
        timings.append(time_bo_step(**step))
        ratio = timings[0]["wall_s"] / timings[-1]["wall_s"]
        print(f"BO step {step or 'defaults'}: wall {timings[-1]['wall_s']:.1f} s, cpu {timings[-1]['cpu_s']:.1f} s, "
              f"{ratio:.1f}x faster than the defaults", flush=True)
    if args.timing_only:
        args.algorithms = ""

    cells = [(a, p) for p in args.problems.split(",") for a in args.algorithms.split(",") if a]
    # the slowest (Bayesian) runs first, so that a pool does not end waiting on one of them
    jobs = sorted(((a, p, seed) for a, p in cells for seed in range(args.seeds)), key=lambda j: "botorch" not in j[0]
                  and "hybrid" not in j[0])
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, a, p, seed, threads=args.threads) for a, p, seed in jobs]
        runs = []
        for future in futures:
            runs.append(future.result())
            print(json.dumps(runs[-1]), flush=True)
    print("| problem | algorithm | median HV at 60 | median HV at 100 |\n| --- | --- | --- | --- |")
    for a, p in cells:
        mine = [r for r in runs if r["algorithm"] == a and r["problem"] == p]
        hv60, hv100 = (np.median([r[k] for r in mine]) for k in ("hv60", "hv100"))
        print(f"| {p} | {a} | {hv60:.4g} | {hv100:.4g} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"timings": timings, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
