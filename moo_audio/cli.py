"""The ``moo-audio`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from moo_audio.space import FrontEnd, Genome, SearchSpace
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
    parser.add_argument("--representation", choices=("2d", "1d"), default=fe.representation)
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
def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Search progress read from the run store: one line per completed evaluation and, on a
    terminal, a status line kept at the bottom (evaluations done, best trade-offs, time left)."""

    def __init__(self, store, budget: int, stream: TextIO = sys.stdout):
        self.store, self.budget, self.stream = store, budget, stream
        self.tty = stream.isatty()
        self.evaluations = store.evaluations()
        self.resumed = len(self.evaluations)
        self.last_id = max((e.id for e in self.evaluations), default=0)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Progress:
        if self.resumed:
            self._print(f"resuming: {self.resumed} evaluation(s) already in {self.store.folder}; "
                        "they are replayed from the store, not trained")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.update()
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(1.0 if self.tty else 2.0):
            self.update()

    def _print(self, line: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + line + "\n")
        self.stream.flush()

    def _timing(self) -> str:
        elapsed = time.monotonic() - self.started
        new = len(self.evaluations) - self.resumed
        left = max(0, self.budget - len(self.evaluations))
        eta = f"~{_clock(elapsed / new * left)} left" if new and left else (
            "done" if not left else "estimating time left")
        return f"{_clock(elapsed)} elapsed, {eta}"

    def _front(self) -> str:
        from moo_audio.runs import pareto

        front = pareto(self.evaluations)
        if not front:
            return "front: none yet"
        best = min(front, key=lambda e: e.error)
        cheap = min(front, key=lambda e: e.energy_mj)
        return (f"front {len(front)}: best error {best.error:.3f} ({best.energy_mj:.3g} mJ, "
                f"{best.memory_kb:.1f} KB), least energy {cheap.energy_mj:.3g} mJ (error {cheap.error:.3f})")

    def update(self) -> None:
        new = self.store.evaluations(since_id=self.last_id)
        for e in sorted(new, key=lambda e: e.id):
            self.evaluations.append(e)
            self.last_id = max(self.last_id, e.id)
            if e.stop_reason == "skipped":
                what = e.failure_reason
            elif e.failed:
                what = f"failed: {e.failure_reason}"
            else:
                what = (f"error {e.error:.3f}  {e.energy_mj:.3g} mJ  {e.memory_kb:.1f} KB  "
                        f"{e.epochs} ep ({e.stop_reason}) {e.train_seconds:.1f} s")
            self._print(f"[{len(self.evaluations):>3}/{self.budget}] {e.genome_id}  {what} | "
                        f"{self._timing()}")
        if self.tty:
            done = min(len(self.evaluations), self.budget)
            self.stream.write(f"\r\033[K[{done}/{self.budget}] {self._front()} | {self._timing()}")
            self.stream.flush()


def pareto_table(evaluations) -> str:
    """The Pareto set as a text table."""
    from moo_audio.runs import pareto

    front = pareto(evaluations)
    if not front:
        return "no feasible model yet"
    rows = [f"{'error':>7}{'energy mJ':>11}{'memory KB':>11}{'MACs':>11}{'val acc':>9}{'test acc':>9}"
            f"  genome id"]
    for e in front:
        rows.append(f"{e.error:>7.3f}{e.energy_mj:>11.4g}{e.memory_kb:>11.1f}{e.macs / 1e6:>10.3g}M"
                    f"{e.val_accuracy:>9.3f}{e.test_accuracy:>9.3f}  {e.genome_id}")
    return "\n".join(rows)


def _search(args: argparse.Namespace) -> None:
    from moo_audio.problem_files import load_problem
    from moo_audio.runs import RunStore, Search, Settings, default_options, stored_problem

    spec = load_problem(args.problem or "builtin")
    algorithm = args.algorithm or spec.search.algorithm
    seed = spec.seed if args.seed is None else args.seed
    out = Path(args.out or Path("runs") / f"{spec.name}-{algorithm}-{seed}")
    meta = RunStore.open(out).meta() if args.resume else {}
    if args.resume and not args.problem:
        spec = stored_problem(meta)  # the file as it was when the run began
    if meta:
        algorithm = args.algorithm or meta["algorithm"]
        seed = meta["seed"] if args.seed is None else args.seed
    budget = args.budget if args.budget is not None else meta.get("budget", spec.search.evaluations)
    workers = args.workers if args.workers is not None else spec.search.workers
    for name, value in (("--budget", budget), ("--workers", workers)):
        if value < 1:
            raise CLIError(f"{name} must be >= 1, got {value}")
    options = meta.get("algorithm_options") if meta and algorithm == meta["algorithm"] else {
        **default_options(algorithm, budget), **spec.algorithm_kwargs(algorithm)}
    spec.check_data()
    print(f"search: problem {spec.name} ({spec.path}), {algorithm}, seed {seed}, {budget} evaluations, "
          f"{workers} worker(s) -> {out}", flush=True)
    started = time.monotonic()
    search = Search(out, spec, Settings(algorithm, options, seed, budget), resume=args.resume,
                    workers=workers, device=args.device)
    try:
        with Progress(search.store, budget):
            search.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: moo-audio search --resume --out {out}", file=sys.stderr)
        raise SystemExit(130) from None
    unreplayed = search.unreplayed()
    if unreplayed:
        print(f"note: {len(unreplayed)} stored evaluation(s) were not asked for again by the replay "
              "(the algorithm did not repeat its earlier proposals); they stay in the store and report")
    evaluations = search.store.evaluations()
    print(f"\nPareto set of {len(evaluations)} evaluations ({_clock(time.monotonic() - started)} wall time; "
          "error = 1 - validation accuracy, memory = int8 weights + peak activations):")
    print(pareto_table(evaluations))
    print(f"\nreport: moo-audio report {out}")


# ---- report, export, problems ------------------------------------------------------------------------
def _report(args: argparse.Namespace) -> None:
    from moo_audio.report import write_report

    index = write_report(args.run, train_baselines=not args.no_train_baselines,
                         log=lambda line: print(line, flush=True))
    print(f"report: {index}")


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
        print(f"{spec.name:<18}{status if status != 'ok' else 'ok: ' + str(spec.path)}")
    if args.names and bad:
        raise CLIError(f"{bad} problem file(s) point at data that is not there")


def build_parser() -> argparse.ArgumentParser:
    from moo_audio.problem_files import ALGORITHMS
    from moo_audio.runs import PICKS

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
    search.add_argument("--algorithm", choices=ALGORITHMS)
    search.add_argument("--budget", type=int, help="evaluations (candidates trained or skipped)")
    search.add_argument("--workers", type=int, help="parallel training processes (Dask) ")
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
    describe.add_argument("--baseline", choices=("mobilenet_v1", "mobilenet_v2"))
    describe.add_argument("--width", type=float, default=1.0)
    describe.add_argument("--genome", help="a genome JSON file")
    describe.add_argument("--random", action="store_true", help="a random genome of the space")
    describe.add_argument("--seed", type=int, default=0)
    describe.add_argument("--dtype", choices=("int8", "float32"), default="int8")
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
