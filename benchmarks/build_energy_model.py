"""Build a packaged energy model: measure networks of every shipped search space, fit, ship.

Samples ``--n`` networks spread over the union of the shipped problem files' search spaces
(``moo_audio.problem_files.shipped_spaces``: a scrambled Sobol sample per space) plus every baseline
at every width, measures their energy per inference on this host (int8 onnxruntime, one thread,
:class:`~moo_audio.energy.measure.TimingSettings`, latency x the ``host-cpu-core`` profile), fits
the forest with 5-fold cross-validation, and writes the table and its provenance as package data:
``moo_audio/energy/models/<name>.csv.gz`` and ``<name>.json`` (``moo_audio.energy.packaged``).

    python benchmarks/build_energy_model.py --n 520         # the shipped onnxruntime-int8 model
    python benchmarks/build_energy_model.py --quick         # 16 networks, short timing, to benchmarks/out/
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent / "moo_audio" / "energy" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=520, help="networks sampled from the shipped spaces")
    parser.add_argument("--name", default="onnxruntime-int8")
    parser.add_argument("--seed", type=int, default=0, help="Sobol seed (the verification uses others)")
    parser.add_argument("--profile", default="host-cpu-core")
    parser.add_argument("--quick", action="store_true", help="16 networks, short timing, to benchmarks/out/")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the package's models/)")
    args = parser.parse_args()

    from moo_audio.energy.bundle import design
    from moo_audio.energy.forest import fit_measurements
    from moo_audio.energy.measure import TimingSettings, measure_genomes
    from moo_audio.energy.profiles import load_profile
    from moo_audio.energy.records import MeasurementWriter
    from moo_audio.problem_files import shipped_spaces

    settings = TimingSettings()
    out = args.out or (HERE / "out" if args.quick else MODELS)
    if args.quick:
        args.n = 16
        settings = dataclasses.replace(settings, max_s=0.1, passes=2, max_passes=2, min_round_s=0.0)
    spaces = shipped_spaces()
    genomes = design(args.n, list(spaces.values()), seed=args.seed, baselines=not args.quick)
    profile = load_profile(args.profile)
    started, load = time.perf_counter(), os.getloadavg()[0]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "measurements.csv"
        with MeasurementWriter(csv) as writer:
            def report(i, r):
                writer.write(r)
                print(f"[{i + 1:>4}/{len(genomes)}] {r.model_id:<20} {r.latency_ms:10.4f} ms {r.energy_mj:10.4f} mJ",
                      flush=True)

            records = measure_genomes(genomes, profile, settings=settings, on_record=report)
        (out / f"{args.name}.csv.gz").write_bytes(gzip.compress(csv.read_bytes(), mtime=0))
    measure_s = time.perf_counter() - started
    model = fit_measurements(records, folds=5)
    setup = records[0]
    provenance = {
        "name": args.name, "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hardware": setup.hardware, "runtime": setup.runtime, "dtype": setup.dtype, "threads": setup.threads,
        "method": setup.method, "device_profile": profile.to_dict(), "timing": dataclasses.asdict(settings),
        "spaces": {name: {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.init}
                   for name, s in spaces.items()},
        "networks": len(records), "baselines": sum(1 for k in genomes if not k.startswith("g")),
        "measure_seconds": round(measure_s), "load_average_before": load,
        "forest_params": {"base": model.base, **model.forest_params},
        "cv_report": dataclasses.asdict(model.cv_report),
        "command": f"python benchmarks/build_energy_model.py --n {args.n} --name {args.name}"
                   f"{' --quick' if args.quick else ''}{f' --out {args.out}' if args.out else ''}",
    }
    (out / f"{args.name}.json").write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"{len(records)} networks in {measure_s:.0f} s; 5-fold CV {model.cv_report}; wrote {out / args.name}.*")


if __name__ == "__main__":
    main()
