"""Hypervolume vs evaluations of ``BoTorchMOBO``'s acquisitions on ``SurrogateAudioNASProblem``.

Every acquisition of ``moo_audio.algorithms.ACQUISITIONS`` (``--acquisitions``, default all), each
with ``exact_cheap_objectives=True`` ("exact": energy and memory read from the problem, one GP for
the error) and ``False`` ("modelled": one GP per objective), all other settings at their defaults
(q=4, discrete acquisition optimiser), ``--seeds`` seeds (0, 1, ...) of ``--budget`` evaluations.
The hypervolume is that of ``compare_optimizers.py`` (``benchmarks/_hv.py``): pymoo ``HV`` of the
running non-dominated set of the feasible evaluations, objectives normalised by a fixed scale from
the table (error as it is; energy and memory on a log scale between the table's extremes, widened
by 10%), so the two scripts' numbers compare.

Outputs under ``--out``: ``acquisitions.json`` (every curve with its wall and CPU seconds),
``acquisitions.md`` (median and 95 % bootstrap interval of the median HV at 25/50/100 evaluations,
median wall and CPU seconds per run) and ``acquisitions.png``::

    python benchmarks/compare_acquisitions.py --jobs 2
    python benchmarks/compare_acquisitions.py --quick        # 2 seeds, 20 evaluations, tiny BO
    python benchmarks/compare_acquisitions.py --acquisitions qLogNEHVI --exact true --n-init 10,20 --name n_init
    python benchmarks/compare_acquisitions.py --acquisitions qLogNEHVI --exact true --n-init 10 --q 1,4 \
        --seeds 10 --budget 60 --reach 0.7839 --name batch_size
    python benchmarks/compare_acquisitions.py --acquisitions qLogNEHVI --exact true --n-init 10 \
        --sampling sobol,cheap-spread --seeds 10 --first-seed 10 --budget 60 --reach 0.7839 --name initial_design
    python benchmarks/compare_acquisitions.py --acquisitions qLogNEHVI --exact true --n-init 10,20 \
        --scale log,linear --seeds 10 --budget 100 --reach 0.7839 --name objective_scale

``--gp-inputs``, ``--n-init``, ``--q``, ``--sampling`` and ``--scale`` (comma-separated) run BoTorchMOBO's
``gp_inputs`` / ``n_init`` / ``q`` (candidates per iteration) / initial design (:data:`SAMPLINGS`) /
``log_objectives`` (:data:`SCALES`) variants, named in the variant; ``--first-seed`` starts the seeds
elsewhere than 0 (a confirmation on seeds a choice was not made on); ``--reach HV`` adds the evaluations to
that hypervolume; ``--name`` sets the output files' stem.

``--jobs N`` runs the (variant, seed) jobs in N processes; the hypervolumes do not depend on it, the
wall seconds do (compare them from runs with the same ``--jobs`` on an otherwise idle machine).
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

QUICK_BO, QUICK_TREES = _hv.QUICK_BO, _hv.QUICK_TREES

#: --quick: a smaller initial design, so that 20 evaluations still hold two BO iterations
QUICK_N_INIT = 12
#: initial designs of ``--sampling``: BoTorchMOBO's default, and moo_audio's CheapSpreadSampling
SAMPLINGS = ("sobol", "cheap-spread")
#: objective scales of ``--scale``, as BoTorchMOBO's ``log_objectives``: the problem's log-scaled
#: objectives (energy, memory) on a log scale, or every objective linear
SCALES = {"log": None, "linear": ()}


def variant_name(acquisition: str, exact: bool, gp_inputs: str | None, n_init: int | None = None,
                 q: int | None = None, sampling: str | None = None, scale: str | None = None) -> str:
    name = f"{acquisition} {'exact' if exact else 'modelled'}"
    name = name if gp_inputs is None else f"{name}, GP on {gp_inputs}"
    name = name if n_init is None else f"{name}, n_init {n_init}"
    name = name if q is None else f"{name}, q {q}"
    name = name if sampling is None else f"{name}, {sampling} design"
    return name if scale is None else f"{name}, {scale} scale"


def run(acquisition: str, exact: bool, gp_inputs: str | None, n_init: int | None, q: int | None,
        sampling: str | None, scale: str | None, seed: int, table: str, trees: int, budget: int,
        quick: bool) -> dict[str, Any]:
    """One (acquisition, exact cheap objectives, GP inputs, initial design size, batch size, initial
    design, objective scale, seed) job: its hypervolume curve and timings."""
    from moo_audio.algorithms import BoTorchMOBO, CheapSpreadSampling, SobolSampling

    _hv.quiet()
    problem = _hv.surrogate(table, trees)
    options = {**QUICK_BO, "n_init": QUICK_N_INIT} if quick else {}
    if gp_inputs is not None:
        options["gp_inputs"] = gp_inputs
    if n_init is not None:
        options["n_init"] = n_init
    if q is not None:
        options["q"] = q
    if sampling is not None:
        options["sampling"] = {"sobol": SobolSampling, "cheap-spread": CheapSpreadSampling}[sampling]()
    if scale is not None:
        options["log_objectives"] = SCALES[scale]
    algorithm = BoTorchMOBO(acquisition=acquisition, exact_cheap_objectives=exact, **options)
    result = _hv.run_pymoo(problem, algorithm, budget, seed)
    return {"variant": variant_name(acquisition, exact, gp_inputs, n_init, q, sampling, scale),
            "acquisition": acquisition, "exact_cheap": exact, "gp_inputs": gp_inputs, "n_init": n_init, "q": q,
            "sampling": sampling, "scale": scale, "seed": seed, **result}


def _sizes(text: str) -> list[int]:
    """A comma-separated list of integers >= 1 (an argparse type)."""
    sizes = text.split(",")
    if not all(n.strip().isdigit() and int(n) >= 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers >= 1, got {text!r}")
    return [int(n) for n in sizes]


#: the run fields that define a variant; ``--paired`` names one of the last five (dashes for underscores)
VARIANT_FIELDS = ("acquisition", "exact_cheap", "gp_inputs", "n_init", "q", "sampling", "scale")


def paired_wins(runs: list[dict], field: str, marks: list[int]) -> dict[str, list[int] | None]:
    """Per variant, at each of ``marks``: on how many seeds its hypervolume exceeds that of its twin, the
    run with the same seed and every other setting whose ``field`` has the first value run (``None``: the
    twin itself)."""
    first = next(r[field] for r in runs)
    others = [f for f in VARIANT_FIELDS if f != field]
    twins = {(tuple(r[f] for f in others), r["seed"]): r["hv"] for r in runs if r[field] == first}
    wins: dict[str, list[int] | None] = {}
    for r in runs:
        twin = twins[tuple(r[f] for f in others), r["seed"]]
        ahead = None if r[field] == first else [int(r["hv"][m - 1] > twin[m - 1]) for m in marks]
        wins[r["variant"]] = ahead if ahead is None or r["variant"] not in wins else [
            a + b for a, b in zip(wins[r["variant"]], ahead)]
    return wins


def report(runs: list[dict], budget: int, reach: float | None = None, paired: str | None = None) -> tuple[str, dict]:
    """The markdown table and the per-evaluation summary of ``runs``; with ``reach``, the evaluations
    the median curve needs to reach that hypervolume and the seeds that reach it; with ``paired`` (a
    field of :data:`VARIANT_FIELDS`), the seeds on which each variant is ahead of its twin with that
    field's first value (:func:`paired_wins`)."""
    summary = _hv.summarize(_hv.group_curves(runs, key="variant"))
    at = _hv.marks(budget, (25, 50, 100))
    wins = paired_wins(runs, paired, at) if paired is not None else {}
    rows = []
    for name, s in summary.items():
        mine = [r for r in runs if r["variant"] == name]
        wall, cpu = (np.median([r[k] for r in mine]) for k in ("wall_s", "cpu_s"))
        row = [name, *(_hv.cell(s, m) for m in at), f"{wall:.1f}", f"{cpu:.1f}"]
        if reach is not None:
            median = _hv.evals_to_reach(s["median"], reach)
            seeds = [n for n in (_hv.evals_to_reach(r["hv"], reach) for r in mine) if n is not None]
            row += [f"not in {budget}" if median is None else median,
                    f"{len(seeds)} of {len(mine)}" + (f" ({min(seeds)}-{max(seeds)})" if seeds else "")]
        if paired is not None:
            row.append("-" if wins[name] is None else " / ".join(f"{w} of {len(mine)}" for w in wins[name]))
        rows.append(row)
    header = ["acquisition, cheap objectives", *(f"HV at {m}" for m in at), "median wall s / run",
              "median CPU s / run"]
    if reach is not None:
        header += [f"evals to HV {reach} (median curve)", f"seeds reaching {reach}"]
    if paired is not None:
        first = next(r[paired] for r in runs)
        header.append(f"ahead of {paired} {first}, paired seeds ({' / '.join(map(str, at))})")
    return _hv.markdown(header, rows), summary


def main(argv: list[str] | None = None) -> None:
    from moo_audio.algorithms import ACQUISITIONS
    from moo_audio.algorithms.botorch_mobo import GP_INPUTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _hv.add_run_arguments(parser, "variant", full=(5, 100), quick=(2, 20),
                          quick_help=f"2 seeds, 20 evaluations, n_init {QUICK_N_INIT}, BO settings {QUICK_BO}, "
                                     f"{QUICK_TREES} trees")
    parser.add_argument("--acquisitions", default=",".join(ACQUISITIONS), help="comma-separated subset")
    parser.add_argument("--exact", choices=("both", "true", "false"), default="both",
                        help="exact_cheap_objectives settings to run")
    parser.add_argument("--gp-inputs", default=None,
                        help=f"comma-separated gp_inputs to run, of {GP_INPUTS} (default: BoTorchMOBO's, unnamed)")
    parser.add_argument("--n-init", type=_sizes, default=[None],
                        help="comma-separated initial design sizes to run (default: BoTorchMOBO's, unnamed)")
    parser.add_argument("--q", type=_sizes, default=[None],
                        help="comma-separated batch sizes (candidates per iteration) to run (default: BoTorchMOBO's, "
                             "unnamed)")
    parser.add_argument("--sampling", default=None,
                        help=f"comma-separated initial designs to run, of {SAMPLINGS} "
                             "(default: BoTorchMOBO's, unnamed)")
    parser.add_argument("--scale", default=None,
                        help=f"comma-separated objective scales to run, of {tuple(SCALES)} "
                             "(default: BoTorchMOBO's, unnamed)")
    parser.add_argument("--reach", type=float, default=None,
                        help="a hypervolume to report the evaluations to (e.g. NSGA-II's at 200 evaluations)")
    parser.add_argument("--name", default="acquisitions", help="stem of the output files")
    parser.add_argument("--paired", choices=[f.replace("_", "-") for f in VARIANT_FIELDS[2:]], default=None,
                        help="add the seeds on which each variant is ahead of the same seed's run with this "
                             "setting's first value and the others alike")
    parser.add_argument("--report", type=Path, metavar="JSON", default=None,
                        help="rewrite the table (.md beside it) of an earlier run's JSON, with --reach/--paired")
    args = parser.parse_args(argv)
    paired = None if args.paired is None else args.paired.replace("-", "_")
    if args.report is not None:
        data = json.loads(args.report.read_text())
        table, _ = report(data["runs"], data["settings"]["budget"], args.reach, paired)
        args.report.with_suffix(".md").write_text(table + "\n")
        print(table, flush=True)
        return
    seeds, budget, trees = _hv.run_sizes(parser, args)
    acquisitions = _hv.choose(parser, args.acquisitions, ACQUISITIONS, "acquisitions")
    exacts = {"both": (True, False), "true": (True,), "false": (False,)}[args.exact]
    gp_inputs = [None] if args.gp_inputs is None else _hv.choose(parser, args.gp_inputs, GP_INPUTS, "gp inputs")
    samplings = [None] if args.sampling is None else _hv.choose(parser, args.sampling, SAMPLINGS, "samplings")
    scales = [None] if args.scale is None else _hv.choose(parser, args.scale, tuple(SCALES), "scales")
    seed_list, seeds = list(seeds), len(seeds)
    _hv.quiet()

    jobs = [(a, e, g, n, q, d, c, s, args.table, trees, budget, args.quick) for a in acquisitions for e in exacts
            for g in gp_inputs for n in args.n_init for q in args.q for d in samplings for c in scales
            for s in seed_list]
    runs, failed = _hv.run_jobs(run, jobs, args.jobs)

    table, summary = report(runs, budget, args.reach, paired)
    print(table, flush=True)
    settings = {"table": args.table, "trees": trees, "seeds": seeds, "budget": budget, "quick": args.quick,
                "acquisitions": acquisitions, "exact_cheap_objectives": list(exacts), "gp_inputs": gp_inputs,
                "n_init": args.n_init, "q": args.q, "sampling": samplings, "scale": scales, "seed_list": seed_list,
                "reach": args.reach, "jobs": args.jobs,
                "bo_options": {**QUICK_BO, "n_init": QUICK_N_INIT} if args.quick else {},
                "hv": "feasible points, error linear and energy/memory log-normalised, pymoo HV at (1, 1, 1)"}
    data = {"settings": settings, "failed": failed, "environment": _hv.environment(),
            "reference": runs[0]["reference"],
            "marks": _hv.marks(budget, (25, 50, 100)), "summary": summary, "runs": runs}
    title = (f"BoTorchMOBO acquisitions, {args.table} surrogate: seeds {seed_list[0]}-{seed_list[-1]}, median and "
             "95% bootstrap CI")
    _hv.write(args.out, args.name, data, table, summary, title)
    _hv.exit_if_failed(failed)


if __name__ == "__main__":
    main()
