"""The ``moo-audio`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from moo_audio.space import FrontEnd, Genome, SearchSpace


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moo-audio",
        description="Multi-objective architecture search for energy-efficient always-on audio.")
    sub = parser.add_subparsers(dest="command", required=True)

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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CLIError as e:
        print(f"moo-audio: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"moo-audio: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
