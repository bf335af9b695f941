"""Energy on the two runtimes always-on audio runs on: onnxruntime and LiteRT (TFLite), same networks.

Samples ``--n`` networks over the shipped problem files' search spaces (a scrambled Sobol sample per
space, seed ``--seed``, the networks of the packaged model excluded by a different seed) plus every
baseline, with random weights. Each is measured as int8 onnxruntime (the packaged model's setup:
``moo_audio.energy.measure``, one thread) and as fully-int8 TFLite in the LiteRT interpreter (one
thread; ``moo_audio.tflite_io``: calibrated on random inputs, timed by median of rounds of repeated
invocations), energy = latency x the ``host-cpu-core`` profile's power for both. Reports the rank
agreement of the two runtimes' energies (Spearman, Kendall) on the networks both run (litert-torch
refuses the int8 graphs of some; they are counted), their ratio, and the 5-fold
cross-validated accuracy of the energy forest fitted to each runtime's table. Writes
``benchmarks/results/runtimes.{md,json}`` and the LiteRT table ``runtimes-litert-int8.csv.gz``::

    python benchmarks/runtimes.py --n 40
    python benchmarks/runtimes.py --quick --out benchmarks/out     # 6 networks, short timing
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

HERE = Path(__file__).resolve().parent


def litert_records(genomes: dict, profile, repeats: int, rounds: int) -> tuple[dict, dict]:
    """int8 LiteRT measurements of ``model_id -> genome`` (random weights, random calibration), by
    model id, and the networks the int8 converter refused, with its reason."""
    from ai_edge_litert import __version__ as litert_version

    from moo_audio.energy.measure import export_tflite_int8, random_input
    from moo_audio.energy.profiles import hardware_fingerprint
    from moo_audio.energy.records import Measurement
    from moo_audio.tflite_io import ConversionError, TFLiteModel

    records, refused = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (model_id, genome) in enumerate(genomes.items()):
            try:
                path = export_tflite_int8(genome, Path(tmp) / f"{i}.tflite")
            except ConversionError as error:
                refused[model_id] = str(error)
                print(f"[{i + 1:>4}/{len(genomes)}] LiteRT {model_id:<20} refused: {error}", flush=True)
                continue
            runner = TFLiteModel(path, threads=1)
            runner(random_input(genome, 99))  # sets the input the timing loop invokes on
            latency = runner.latency_ms(repeats, rounds)
            records[model_id] = Measurement(
                model_id=model_id, genome=genome, dtype="int8", threads=1, latency_ms=latency,
                latency_iqr_ms=None, repeats=repeats * rounds, energy_mj=latency * profile.active_power_w,
                method="power_x_time", device_profile=profile.name, active_power_w=profile.active_power_w,
                hardware=hardware_fingerprint(), runtime=f"ai-edge-litert {litert_version} (XNNPACK)")
            print(f"[{i + 1:>4}/{len(genomes)}] LiteRT {model_id:<20} {latency:10.4f} ms", flush=True)
    return records, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="networks sampled over the shipped spaces")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="6 networks, short timing")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    from moo_audio.energy.bundle import design
    from moo_audio.energy.forest import fit_measurements
    from moo_audio.energy.measure import TimingSettings, measure_genomes
    from moo_audio.energy.profiles import load_profile
    from moo_audio.energy.records import MeasurementWriter
    from moo_audio.problem_files import shipped_spaces

    settings, repeats, rounds = TimingSettings(), 100, 5
    if args.quick:
        args.n = 6
        settings = dataclasses.replace(settings, max_s=0.1, passes=2, max_passes=2, min_round_s=0.0)
        repeats, rounds = 10, 2
    genomes = design(args.n, list(shipped_spaces().values()), seed=args.seed, baselines=not args.quick)
    profile = load_profile("host-cpu-core")
    started = time.perf_counter()
    litert_by_id, refused = litert_records(genomes, profile, repeats, rounds)
    both = {k: g for k, g in genomes.items() if k in litert_by_id}
    onnx = measure_genomes(both, profile, settings=settings)
    litert = [litert_by_id[k] for k in both]
    seconds = time.perf_counter() - started

    a = np.array([r.energy_mj for r in onnx])
    b = np.array([r.energy_mj for r in litert])
    folds = 3 if args.quick else 5
    fits = {name: fit_measurements(records, folds=folds).cv_report for name, records in
            (("onnxruntime", onnx), ("litert", litert))}
    summary = {
        "networks": len(both), "refused_by_int8_converter": refused, "spearman": float(spearmanr(a, b).statistic),
        "kendall": float(kendalltau(a, b).statistic),
        "median_litert_over_onnxruntime": float(np.median(b / a)),
        "ratio_quartiles": [float(q) for q in np.quantile(b / a, [0.25, 0.75])],
        "cv_within_10": {k: v.within_10 for k, v in fits.items()},
        "cv_within_20": {k: v.within_20 for k, v in fits.items()},
        "runtimes": {"onnxruntime": onnx[0].runtime, "litert": litert[0].runtime},
        "hardware": onnx[0].hardware, "seconds": seconds,
    }
    command = " ".join(["python benchmarks/runtimes.py", *sys.argv[1:]])
    lines = [f"`{command}` ({summary['hardware']}, {seconds / 60:.0f} min)", "",
             "| | value |", "|---|---|",
             f"| networks (shipped spaces + baselines, random weights) | {len(genomes)} |",
             f"| of which litert-torch's int8 conversion refused | {len(refused)} "
             f"({sum(g.frontend.representation == '1d' for k, g in genomes.items() if k in refused)} of them 1-D) |",
             f"| Spearman of the two runtimes' energies | {summary['spearman']:.3f} |",
             f"| Kendall tau | {summary['kendall']:.3f} |",
             f"| LiteRT / onnxruntime energy, median [quartiles] | {summary['median_litert_over_onnxruntime']:.2f} "
             f"[{summary['ratio_quartiles'][0]:.2f}, {summary['ratio_quartiles'][1]:.2f}] |"]
    for name, report in fits.items():
        lines.append(f"| {name}: forest {folds}-fold CV within 10% / 20% | {report.within_10:.0%} / "
                     f"{report.within_20:.0%} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("runtimes-quick" if args.quick else "runtimes")
    stem.with_suffix(".md").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps({"command": command, **summary,
                                                     "energy_mj": {r.model_id: [r.energy_mj, s.energy_mj]
                                                                   for r, s in zip(onnx, litert)}}, indent=1))
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "litert.csv"
        with MeasurementWriter(csv) as writer:
            for record in litert:
                writer.write(record)
        Path(f"{stem}-litert-int8.csv.gz").write_bytes(gzip.compress(csv.read_bytes(), mtime=0))


if __name__ == "__main__":
    main()
