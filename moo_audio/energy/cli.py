"""``moo-audio energy ...``: measure, bundle for a device, import its results, fit the forest.

Handlers raise ``ValueError`` / ``FileNotFoundError`` with one-line messages for user errors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from moo_audio.costs import DEFAULT_DTYPE, DTYPES
from moo_audio.energy.features import BASES, DEFAULT_BASE
from moo_audio.energy.profiles import PROFILES

FOREST_FILE, MEASUREMENTS_FILE = "forest.joblib", "measurements.csv"


def _progress(i: int, n: int, text: str) -> None:
    print(f"[{i + 1:>{len(str(n))}}/{n}] {text}", flush=True)


def _refuse_existing(path: Path) -> Path:
    if path.exists():
        raise ValueError(f"{path} already exists; choose another --out")
    return path


def _fit_and_save(records, args: argparse.Namespace, path: Path) -> None:
    from moo_audio.energy.forest import fit_measurements

    model = fit_measurements(records, folds=args.folds, base=None if args.base == "none" else args.base)
    model.save(path)
    print(f"{model.name}: {args.folds}-fold cross-validation {model.cv_report}"
          + (f"; forest weight {model.forest_weight:.3f}" if model.base else ""))
    print(f"saved {path} (+ {path.name}.json metadata)")


def _spaces(problem: str | None) -> list:
    """The search spaces to sample: one problem file's, or every shipped problem file's."""
    from moo_audio.problem_files import load_problem, shipped_spaces

    return [load_problem(problem).declared_space()] if problem else list(shipped_spaces().values())


def _measure(args: argparse.Namespace) -> None:
    from moo_audio.energy.bundle import design
    from moo_audio.energy.measure import TimingSettings, measure_genomes
    from moo_audio.energy.profiles import load_profile
    from moo_audio.energy.records import MeasurementWriter

    out = Path(args.out)
    csv_path = _refuse_existing(out / MEASUREMENTS_FILE)
    forest_path = _refuse_existing(out / FOREST_FILE)
    profile = load_profile(args.profile)
    settings = TimingSettings(max_s=args.max_seconds, passes=args.passes, statistic=args.statistic)
    genomes = design(args.n, _spaces(args.problem), seed=args.seed)
    start = time.perf_counter()
    with MeasurementWriter(csv_path) as writer:
        def report(i, r):
            writer.write(r)
            _progress(i, len(genomes), f"{r.model_id:<18} {r.dtype} {r.latency_ms:9.4f} ms "
                                       f"(IQR {r.latency_iqr_ms:.4f}) {r.energy_mj:9.4f} mJ {r.method}")

        records = measure_genomes(genomes, profile, dtype=args.dtype, threads=args.threads,
                                  method=args.method, settings=settings, on_record=report)
    print(f"measured {len(records)} networks in {time.perf_counter() - start:.0f} s -> {csv_path}")
    _fit_and_save(records, args, forest_path)


def _bundle(args: argparse.Namespace) -> None:
    from moo_audio.energy.bundle import design, write_bundle

    genomes = design(args.n, _spaces(args.problem), seed=args.seed)
    manifest = write_bundle(genomes, args.out, args.dtype,
                            progress=lambda i, model_id: _progress(i, len(genomes), model_id))
    print(f"wrote {len(genomes)} {args.dtype} models -> {manifest} (see README.md beside it)")


def _import(args: argparse.Namespace) -> None:
    from moo_audio.energy.bundle import import_results, load_manifest
    from moo_audio.energy.profiles import load_profile
    from moo_audio.energy.records import write_measurements

    _refuse_existing(Path(args.out))
    records = import_results(args.results, args.bundle, load_profile(args.profile), args.hardware,
                             runtime=args.runtime, threads=args.threads)
    write_measurements(records, args.out)
    print(f"imported {len(records)} of {len(load_manifest(args.bundle))} bundle models "
          f"({records[0].method}) -> {args.out}")


def _fit(args: argparse.Namespace) -> None:
    from moo_audio.energy.records import read_measurements

    _fit_and_save(read_measurements(args.measurements), args, _refuse_existing(Path(args.out)))


def add_energy_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``energy measure|bundle|import|fit`` to a ``moo-audio`` subparsers object."""
    energy = subparsers.add_parser("energy", help="measure energy per inference, fit the forest model")
    sub = energy.add_subparsers(dest="energy_command", required=True)
    profile_help = f"a built-in device profile ({', '.join(PROFILES)}) or a .toml/.json profile file"

    def sample_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n", type=int, default=200, help="networks sampled from the search spaces "
                                                          "(every baseline is added)")
        p.add_argument("--problem", help="sample this problem file's space (default: every shipped problem "
                                         "file's space, as the packaged model was)")
        p.add_argument("--out", required=True, help="output directory")
        p.add_argument("--seed", type=int, default=0, help="seed of the scrambled Sobol sample")
        p.add_argument("--dtype", choices=DTYPES, default=DEFAULT_DTYPE)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
        p.add_argument("--base", choices=[b or "none" for b in BASES], default=DEFAULT_BASE,
                       help="the forest corrects a non-negative linear model of the operators' "
                            "counts, MACs and elements, with (default) or without the MACs of "
                            "channels left over beyond whole SIMD blocks, or predicts alone (none)")

    measure = sub.add_parser("measure", help="measure a sample on this host, fit and save the forest")
    sample_args(measure)
    measure.add_argument("--profile", default="host-cpu-core", help=profile_help)
    measure.add_argument("--method", choices=("auto", "counter", "power_x_time"), default="auto",
                         help="energy from the RAPL counter, or latency x the profile's power "
                              "(auto: the counter when readable)")
    measure.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    measure.add_argument("--max-seconds", type=float, default=0.4,
                         help="timing cap per model and pass, seconds (default 0.4)")
    measure.add_argument("--passes", type=int, default=3,
                         help="interleaved timing passes over all models, at least (default 3); more, up to "
                              "8, until a model's two fastest passes agree within 3%%")
    measure.add_argument("--statistic", choices=("min", "median"), default="min",
                         help="latency of a model: min (default, robust on shared hosts) or median "
                              "of all its repeats")
    model_args(measure)
    measure.set_defaults(func=_measure)

    bundle = sub.add_parser("bundle", help="export a sample as ONNX models to measure on a device")
    sample_args(bundle)
    bundle.set_defaults(func=_bundle)

    imp = sub.add_parser("import", help="validate and ingest a device's results CSV")
    imp.add_argument("results", help="the results CSV (see the bundle's README.md)")
    imp.add_argument("--bundle", required=True, help="the bundle directory the results belong to")
    imp.add_argument("--out", required=True, help="measurements CSV to write")
    imp.add_argument("--profile", required=True, help=profile_help)
    imp.add_argument("--hardware", required=True, help="the device: make, model, SoC, core")
    imp.add_argument("--runtime", default="unspecified", help="runtime and version used on the device")
    imp.add_argument("--threads", type=int, default=1, help="threads the device ran with")
    imp.set_defaults(func=_import)

    fit = sub.add_parser("fit", help="fit the forest on a measurements CSV")
    fit.add_argument("measurements", help="a measurements CSV (from measure or import)")
    fit.add_argument("--out", required=True, help="forest file to write (metadata beside it)")
    model_args(fit)
    fit.set_defaults(func=_fit)

