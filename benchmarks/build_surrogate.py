"""Build the table behind ``SurrogateAudioNASProblem``: real trainings of planned architectures, in
shards that survive being killed and merge across machines (:mod:`moo_audio.table_build`).

The first call on a build folder writes its plan: ``--n`` space-filling architectures (scrambled Sobol
over the encoding, meeting the problem file's cheap constraints), ``--front`` more near the front a
prior surrogate predicts (default: the shipped table of the same problem), and the baselines (the
problem file's and MobileNetV1/V2 at four widths); ``--repeats`` of the architectures and every
baseline are trained with ``--seeds`` seeds. Every call trains what no shard holds yet, with the
problem file's recipe for its whole budget (no early stopping: full curves, wall and CPU seconds)::

    python benchmarks/build_surrogate.py --problem builtin --workers 2 --hours 2   # plans, then builds
    python benchmarks/build_surrogate.py --problem builtin --part 1/2 --device cuda --workers 8
    python benchmarks/build_surrogate.py --problem builtin --merge moo_audio/tables/builtin.json.gz
    python benchmarks/build_surrogate.py --folder A --folder B --merge table.json.gz

The build folder is ``benchmarks/results/table-builds/PROBLEM`` unless ``--folder`` names another;
its plan and shards are small text files meant to be committed, so a build grows across sessions
and machines (a shard per builder process).

``--extend`` adds ``--front`` architectures to a plan, near the front predicted by ``--prior`` or, by
default, by the surrogate of the build's own shards so far (for a task with no table yet); its
shards stay valid. ``--quick`` plans 6 architectures (2 of them twice) and 2 baselines for 2 epochs on a small built-in
dataset (the smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from moo_audio.nets import WIDTHS
from moo_audio.parallel import make_runner
from moo_audio.problem_files import load_problem
from moo_audio.table_build import BuildError, Plan, build, extend_plan, make_plan, merge, write_table

MOBILENET_WIDTHS = (0.25, 0.5, 0.75, 1.0)
#: where builds live by default: committed, so that a build grows across sessions and machines
BUILDS = Path(__file__).resolve().parent / "results" / "table-builds"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, action="append", default=None,
                        help="build folder, several with --merge (default benchmarks/results/table-builds/PROBLEM)")
    parser.add_argument("--problem", default="builtin", help="problem name or file (planning only)")
    parser.add_argument("--n", type=int, default=1500, help="space-filling architectures")
    parser.add_argument("--front", type=int, default=300, help="architectures near the predicted front")
    parser.add_argument("--repeats", type=int, default=300, help="architectures trained with --seeds seeds")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--prior", default=None, help="table predicting the front (default: the shipped "
                        "table of the problem, if any; 'none': no front architectures)")
    parser.add_argument("--sobol-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument("--device", default="cpu", help="torch device of the training processes")
    parser.add_argument("--part", default="0/1", help="i/k: train the items whose index is i modulo k")
    parser.add_argument("--hours", type=float, default=None, help="stop (resumably) after this long")
    parser.add_argument("--merge", type=Path, default=None, help="write the table of the folders' shards")
    parser.add_argument("--extend", action="store_true", help="add --front architectures to an existing plan, "
                        "near the front --prior predicts (default: the surrogate of the folder's own shards)")
    parser.add_argument("--quick", action="store_true", help="a tiny plan on a small built-in dataset")
    args = parser.parse_args()

    if args.merge is not None:
        table = merge(args.folder or [BUILDS / load_problem(args.problem).name])
        write_table(args.merge, table)
        meta = table["meta"]
        print(f"wrote {args.merge}: {len(table['rows'])} architectures, {meta['trainings']}/"
              f"{meta['planned_trainings']} planned trainings, {meta['train_seconds'] / 3600:.1f} h of "
              f"training on {len(meta['machines'])} machine(s)")
        return
    if args.quick and not args.folder:
        parser.error("--quick needs a --folder (the default holds the real builds)")
    spec = load_problem(args.problem)
    (folder,) = args.folder or [BUILDS / spec.name]
    if args.quick:
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
        args.n, args.front, args.repeats, args.seeds = 6, 2, 2, 2
    dataset = spec.load_dataset() if not args.quick else _small_builtin(spec)
    runner = make_runner(args.workers)
    try:
        problem = spec.make_problem(dataset, device=args.device, runner=runner)
        if (folder / "plan.json").is_file():
            plan = Plan.load(folder)
            if plan.meta["problem_sha256"] != spec.sha256:
                raise BuildError(f"{folder} was planned for problem {plan.meta['problem']!r} (sha256 "
                                 f"{plan.meta['problem_sha256'][:12]}); {spec.path} is {spec.sha256[:12]}: "
                                 "pass the plan's --problem, unchanged, or start a new --folder")
            if args.extend:
                prior = _prior(args, spec, problem) if args.prior else _own_prior(folder, problem)
                plan = extend_plan(plan, problem, front=args.front, prior=prior,
                                   seed=args.sobol_seed + 100 + len(plan.meta["sampling"].get("extensions", [])))
                plan.save(folder)
                print(f"extended the plan by {args.front} architectures near the front {prior.table.meta['problem']!r}"
                      f" predicts: {len(plan.items)} architectures, {len(plan.trainings())} trainings")
        elif args.extend:
            raise BuildError(f"--extend: {folder} has no plan yet")
        else:
            plan = make_plan(problem, spec, n=args.n, repeats=args.repeats, seeds=args.seeds,
                             front=args.front, prior=_prior(args, spec, problem),
                             baselines=_baselines(spec, problem, args.quick), seed=args.sobol_seed)
            plan.save(folder)
            print(f"planned {len(plan.items)} architectures, {len(plan.trainings())} trainings in {folder}")
        i, k = (int(v) for v in args.part.split("/"))
        build(folder, plan, problem, part=(i, k),
              max_seconds=None if args.hours is None else 3600 * args.hours,
              log=lambda line: print(line, flush=True))
    finally:
        runner.close()


def _small_builtin(spec):
    from moo_audio.data import load_dataset

    return load_dataset("builtin", **{**spec.dataset_options, "n_per_class": 10})


def _baselines(spec, problem, quick: bool) -> dict:
    """The problem file's baselines and MobileNetV1/V2 at four widths (two baselines when quick)."""
    from moo_audio.nets import baseline

    space = problem.space
    found = spec.baseline_genomes(space.sample_rate, space.n_classes, space.clip_ms[0])
    fe = spec.baseline_frontend(space.sample_rate, space.clip_ms[0])
    for model in ("mobilenet_v1", "mobilenet_v2"):
        for width in (w for w in MOBILENET_WIDTHS if w in WIDTHS):
            found.setdefault(f"{model} x{width}", baseline(model, width, fe, space.n_classes))
    return dict(list(found.items())[:2]) if quick else found


def _own_prior(folder: Path, problem):
    """The surrogate of the build's own shards so far."""
    from moo_audio.surrogate import SurrogateAudioNASProblem, SurrogateTable

    table = merge([folder])
    return SurrogateAudioNASProblem(SurrogateTable(table["meta"], tuple(table["rows"])),
                                    energy_model=problem.energy_model, n_estimators=100)


def _prior(args, spec, problem):
    """The surrogate predicting the front, or ``None`` (no table for this problem, or another space)."""
    from moo_audio.surrogate import TABLES, SurrogateAudioNASProblem, load_table
    from moo_audio.table_build import space_options

    if args.front == 0 or args.prior == "none":
        return None
    name = args.prior or (spec.name if spec.name in TABLES else None)
    if name is None:
        raise BuildError(f"no shipped table for problem {spec.name!r} to predict the front: "
                         "pass --prior TABLE or --front 0")
    table = load_table(name)
    if table.meta["space"] != json.loads(json.dumps(space_options(problem.space))):
        raise BuildError(f"prior table {name!r} has another search space than problem {spec.name!r}")
    return SurrogateAudioNASProblem(table, energy_model=problem.energy_model, n_estimators=100)


if __name__ == "__main__":
    main()
