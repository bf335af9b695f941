"""The ``moo-audio`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from moo_audio.space import REPRESENTATIONS, FrontEnd, Genome, SearchSpace
from moo_audio.torch_pair import TorchPairError


class CLIError(Exception):
    """An error a user can fix; printed as one line with a non-zero exit code."""


def _frontend_args(parser: argparse.ArgumentParser) -> None:
    fe = FrontEnd()
    parser.add_argument("--n-mels", type=int, default=fe.n_mels)
    parser.add_argument("--win-ms", type=int, default=fe.win_ms)
    parser.add_argument("--hop-ms", type=int, default=fe.hop_ms)
    parser.add_argument("--clip-ms", type=int, default=fe.clip_ms)
    parser.add_argument("--sample-rate", type=int, default=fe.sample_rate)
    parser.add_argument("--representation", choices=REPRESENTATIONS, default=fe.representation)
    parser.add_argument("--n-classes", type=int, default=10)


def _describe(args: argparse.Namespace) -> None:
    from moo_audio.costs import network_cost
    from moo_audio.nets import baseline

    if sum(x is not None and x is not False for x in (args.baseline, args.genome, args.random)) != 1:
        raise CLIError("describe needs exactly one of --baseline NAME, --genome FILE, --random")
    if args.genome:
        path = Path(args.genome)
        if not path.is_file():
            raise CLIError(f"genome file not found: {path}")
        try:
            genome = Genome.from_json(path.read_text())
        except json.JSONDecodeError as e:
            raise CLIError(f"{path}: not valid JSON ({e})") from None
        except ValueError as e:
            raise CLIError(f"{path}: {e}") from None
    else:
        fe = FrontEnd(args.sample_rate, args.clip_ms, args.n_mels, args.win_ms, args.hop_ms,
                      args.representation)
        if args.baseline:
            genome = baseline(args.baseline, args.width, fe, args.n_classes)
        else:
            space = SearchSpace(sample_rate=args.sample_rate, n_classes=args.n_classes)
            genome = space.sample(1, seed=args.seed)[0]
    cost = network_cost(genome)
    print("genome:")
    print(json.dumps(genome.to_dict(), indent=2))
    print()
    print(cost.table(args.dtype))
    print()
    for key, value in cost.summary().items():
        print(f"{key:>28}: {value:,.4g}" if isinstance(value, float) else f"{key:>28}: {value:,}")


# ---- search ---------------------------------------------------------------------------------------
def pareto_table(evaluations) -> str:
    """The Pareto set as a text table."""
    from moo_audio.selection import pareto

    front = pareto(evaluations)
    if not front:
        return "no feasible model yet"
    rows = [f"{'error':>7}{'energy mJ':>11}{'memory KB':>11}{'MACs':>11}{'val acc':>9}  genome id"]
    for e in front:
        rows.append(f"{e.error:>7.3f}{e.energy_mj:>11.4g}{e.memory_kb:>11.1f}{e.macs / 1e6:>10.3g}M"
                    f"{e.val_accuracy:>9.3f}  {e.genome_id}")
    return "\n".join(rows)


def _search(args: argparse.Namespace) -> None:
    from moo_audio.progress import SearchProgress, clock
    from moo_audio.search import Search

    search = Search.from_options(args.problem, args.algorithm, args.budget, args.workers, args.seed, args.out,
                                 args.resume, scheduler=args.scheduler, device=args.device)
    s = search.settings
    where = f"the workers of {args.scheduler}" if args.scheduler else f"{search.workers} worker(s)"
    print(f"search: problem {search.spec.name} ({search.spec.path}), {s.algorithm}, seed {s.seed}, "
          f"{s.budget} evaluations, {where} -> {search.folder}", flush=True)
    done = search.store.count()
    if done:
        print(f"resuming: {done} evaluation(s) already in {search.folder}; they are replayed from the "
              "store, not trained", flush=True)
    started = time.monotonic()
    try:
        with SearchProgress(s.budget, done) as progress:
            search.run(events=progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: moo-audio search --resume --out {search.folder}", file=sys.stderr)
        raise SystemExit(130) from None
    unreplayed = search.unreplayed()
    if unreplayed:
        print(f"note: {len(unreplayed)} stored evaluation(s) were not asked for again by the replay "
              "(the algorithm did not repeat its earlier proposals); they stay in the store and report")
    evaluations = search.store.evaluations()
    print(f"\nPareto set of {len(evaluations)} evaluations ({clock(time.monotonic() - started)} wall time; "
          "error = 1 - validation accuracy, memory = int8 weights + peak activations):")
    print(pareto_table(evaluations))
    print(f"\nreport: moo-audio report {search.folder}")


# ---- report, export, problems ------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> None:
    from moo_audio.report import write_report

    index = write_report(args.run, train_baselines=not args.no_train_baselines,
                         log=lambda line: print(line, flush=True))
    print(f"report: {index}")


def _evaluate(args: argparse.Namespace) -> None:
    from moo_audio.evaluation import Protocol, evaluate_run

    try:
        lrs = tuple(float(v) for v in args.lrs.split(","))
    except ValueError:
        raise CLIError(f"--lrs must be comma-separated numbers, got {args.lrs!r}") from None
    protocol = Protocol(seeds=args.seeds, epochs_factor=args.epochs_factor, lrs=lrs, max_models=args.max_models,
                        baselines=args.baselines)
    evaluate_run(args.run, protocol, workers=args.workers, scheduler=args.scheduler, measure=args.measure,
                 log=lambda line: print(line, flush=True))
    print(f"results: {Path(args.run) / 'evaluation' / 'report.md'}")


def _export(args: argparse.Namespace) -> None:
    from moo_audio.export import export_model

    if args.min_accuracy is not None and not 0 < args.min_accuracy <= 1:
        raise CLIError(f"--min-accuracy must be in (0, 1], got {args.min_accuracy}")
    exported = export_model(args.run, args.pick, min_accuracy=args.min_accuracy, out=args.out,
                            log=lambda line: print(line, flush=True))
    print(f"exported {exported.genome_id} to {exported.folder}")
    for path in exported.files:
        print(f"  {path}")


def _problems(args: argparse.Namespace) -> None:
    from moo_audio.problem_files import ProblemFileError, available_problems, load_problem

    names = args.names or list(available_problems())
    if not names:
        raise CLIError("no problem files found (looked in ./problems and in the installed package)")
    bad = 0
    for name in names:
        spec = load_problem(name)  # a schema error stops here, naming the file and key
        try:
            spec.check_data()
            status = "ok"
        except ProblemFileError as err:
            status, bad = f"valid; {err}", bad + 1
        print(f"{spec.name:<20}{status if status != 'ok' else 'ok: ' + str(spec.path)}")
    if args.names and bad:
        raise CLIError(f"{bad} problem file(s) point at data that is not there")


def build_parser() -> argparse.ArgumentParser:
    from moo_audio.algorithms.registry import ALGORITHM_NAMES
    from moo_audio.costs import DEFAULT_DTYPE, DTYPES
    from moo_audio.evaluation import Protocol, baseline_names
    from moo_audio.nets import BASELINES
    from moo_audio.selection import PICKS

    parser = argparse.ArgumentParser(
        prog="moo-audio",
        description="Multi-objective architecture search for energy-efficient always-on audio.")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser(
        "search", help="search for Pareto-optimal networks (default: the built-in problem)",
        description="Run a search, store every evaluation in RUN/run.sqlite as it completes, and "
                    "print the Pareto set. Options not given come from the problem file's [search].")
    search.add_argument("--problem", help="problem name (see `moo-audio problems`) or TOML file; "
                                          "default builtin")
    search.add_argument("--algorithm", choices=ALGORITHM_NAMES)
    search.add_argument("--budget", type=int, help="evaluations (candidates trained or skipped)")
    search.add_argument("--workers", type=int, help="parallel training processes (a local Dask cluster)")
    search.add_argument("--scheduler", help="train on the workers of this running Dask scheduler "
                                            "(tcp://host:8786) instead of a local cluster")
    search.add_argument("--seed", type=int)
    search.add_argument("--device", default="cpu", help="torch device to train on, e.g. cuda (default cpu)")
    search.add_argument("--out", help="run folder (default runs/<problem>-<algorithm>-<seed>)")
    search.add_argument("--resume", action="store_true",
                        help="continue the run in --out: stored evaluations are replayed, not retrained")
    search.set_defaults(func=_search)

    report = sub.add_parser("report", help="HTML report and figures of a run (RUN/report/index.html)")
    report.add_argument("run", help="run folder")
    report.add_argument("--no-train-baselines", action="store_true",
                        help="do not train the MobileNet baselines (their error is shown as not trained)")
    report.set_defaults(func=_report)

    evaluate = sub.add_parser(
        "evaluate", help="held-out evaluation: the run's Pareto models and the baselines, retrained with seeds",
        description="Retrain the run's Pareto models (chosen on validation) and the problem file's baselines "
                    "under one fair budget (a learning-rate grid, several seeds), then read the test split "
                    "once: test accuracy with intervals, energy, memory and the ratio to the best baseline "
                    "each found model matches. Results in RUN/evaluation/.")
    evaluate.add_argument("run", help="run folder")
    protocol = Protocol()
    evaluate.add_argument("--seeds", type=int, default=protocol.seeds, help="seeds per model")
    evaluate.add_argument("--epochs-factor", type=int, default=protocol.epochs_factor,
                          help="final epochs = this x the search's")
    evaluate.add_argument("--lrs", default=",".join(f"{lr:g}" for lr in protocol.lrs),
                          help="learning rates tried on seed 0, chosen on validation")
    evaluate.add_argument("--max-models", type=int, default=protocol.max_models,
                          help="found models taken from the Pareto set")
    evaluate.add_argument("--baselines", type=baseline_names,
                          help="comma-separated model names (ds_cnn_s,mobilenet_v2) of the problem file's "
                               "baselines to evaluate (default: all of them)")
    evaluate.add_argument("--workers", type=int, help="training processes (default: the problem file's)")
    evaluate.add_argument("--scheduler", help="train on the workers of this Dask scheduler")
    evaluate.add_argument("--measure", action="store_true", help="also measure energy on this host (onnxruntime)")
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser("export", help="retrain a chosen model and export it to ONNX")
    export.add_argument("run", help="run folder")
    export.add_argument("--pick", default="knee", help=f"{', '.join(PICKS)} or a genome id (default knee)")
    export.add_argument("--min-accuracy", type=float,
                        help="choose among models with at least this validation accuracy")
    export.add_argument("--out", help="output folder (default RUN/export/<genome id>)")
    export.set_defaults(func=_export)

    problems = sub.add_parser("problems", help="list problem files, or check the given ones")
    problems.add_argument("names", nargs="*", help="problem names or files")
    problems.set_defaults(func=_problems)

    describe = sub.add_parser("describe", help="genome, per-layer costs and totals of a network")
    describe.add_argument("--baseline", choices=sorted(BASELINES))
    describe.add_argument("--width", type=float, default=1.0)
    describe.add_argument("--genome", help="a genome JSON file")
    describe.add_argument("--random", action="store_true", help="a random genome of the space")
    describe.add_argument("--seed", type=int, default=0)
    describe.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE)
    _frontend_args(describe)
    describe.set_defaults(func=_describe)

    from moo_audio.energy.cli import add_energy_commands

    add_energy_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # the parser imports torchaudio (problem files)
        args.func(args)
    except (CLIError, ValueError, FileNotFoundError, TorchPairError) as e:
        print(f"moo-audio: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
