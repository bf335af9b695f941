"""Does the energy model hold on networks it was not fitted on? Fresh samples measured afresh.

In this process — not the one that measured and fitted the model (``build_energy_model.py``) — the
script measures, on this host and with the model's own timing settings:

* a **fresh sample**: networks of the same shipped spaces drawn with another Sobol seed;
* a **wider space**: networks of ``SearchSpace()``'s defaults (up to 6 blocks of up to 128
  channels, 64 mel bins), beyond what the shipped spaces hold;

and reports, for each, how close the model's predictions are (within +/-10% and +/-20%, median and
worst relative error, and how many networks the model flags as far outside what it was measured on),
for the packaged model and for its table refitted with each other linear base (``--bases``; the same
measurements score every model): as predicted, and calibrated to the host's speed now
(:mod:`moo_audio.energy.calibration`: the table's baselines, measured in the same passes as each
sample and not part of it, give the factor by which the host runs slower or faster than when the
table was measured). Then it measures the reference networks (MobileNetV1/V2 x1.0, DS-CNN-S, the
smallest and the largest genome of ``SearchSpace()``) in float32 and int8.

    python benchmarks/energy_model.py                    # the packaged model, 100 networks per sample
    python benchmarks/energy_model.py --forest F.joblib  # a forest of your own (moo-audio energy measure)
    python benchmarks/energy_model.py --table T.csv.gz   # a table of build_energy_model.py --out, per base
    python benchmarks/energy_model.py --out D --rescore  # score the measurements an earlier run stored in D
    python benchmarks/energy_model.py --quick            # 8 networks, short timing
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from moo_audio.costs import network_cost
from moo_audio.energy.bundle import design
from moo_audio.energy.calibration import QUICK_WIDTHS, calibration_genomes, host_speed
from moo_audio.energy.features import BASES
from moo_audio.energy.forest import EnergyExtrapolationWarning, ForestEnergyModel, accuracy, fit_measurements
from moo_audio.energy.measure import TimingSettings, measure_genomes
from moo_audio.energy.packaged import DEFAULT_MODEL, load_packaged, provenance
from moo_audio.energy.profiles import load_profile
from moo_audio.energy.records import read_measurements, write_measurements
from moo_audio.nets import WIDTHS, baseline
from moo_audio.problem_files import shipped_spaces
from moo_audio.space import Block, FrontEnd, Genome, SearchSpace

HERE = Path(__file__).resolve().parent


def extreme_genomes(space: SearchSpace) -> dict[str, Genome]:
    """Smallest (1 block, fewest channels, coarsest front end) and largest (most blocks,
    widest channels, finest front end) genomes of the space: plain 3x3-kernel convolutions,
    stride 1, 2-D representation."""
    def genome(n_blocks: int, channels: int, n_mels: int, win: int, hop: int, clip: int) -> Genome:
        frontend = FrontEnd(space.sample_rate, clip, n_mels, win, hop, "2d")
        return Genome(frontend, (Block("conv", channels, min(space.kernels), min(space.strides)),) * n_blocks,
                      space.n_classes)

    return {"smallest": genome(space.min_blocks, min(space.channels), min(space.n_mels), max(space.win_ms),
                               max(space.hop_ms), min(space.clip_ms)),
            "largest": genome(space.max_blocks, max(space.channels), max(space.n_mels), min(space.win_ms),
                              min(space.hop_ms), max(space.clip_ms))}


#: latency bands of the breakdown of errors (ms)
LATENCY_BANDS_MS = ((0, 0.1), (0.1, 1), (1, 10), (10, float("inf")))


def errors(model, records, factor: float = 1.0) -> dict[str, float]:
    """Accuracy of the model's predictions (times ``factor``) of measured records, and how many it
    flags as far outside."""
    genomes = [r.genome for r in records]
    measured = np.array([r.energy_mj for r in records])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnergyExtrapolationWarning)
        predicted = model.predict_mj(genomes) * factor
    relative = np.abs(predicted - measured) / measured
    report = accuracy(measured, predicted)
    groups = {"1-D": np.array([g.frontend.representation == "1d" for g in genomes])}
    groups["2-D"] = ~groups["1-D"]
    latency = np.array([r.latency_ms for r in records])
    for low, high in LATENCY_BANDS_MS:
        groups[f"{low:g}-{high:g} ms"] = (latency > low) & (latency <= high)
    return {"n": len(records), "within_10": report.within_10, "within_20": report.within_20,
            "median": float(np.median(relative)), "worst": float(relative.max()), "mape": report.mape,
            "flagged": sum(bool(f) for f in model.outside(genomes)),
            "within_10_by_group": {k: (int(m.sum()), float(np.mean(relative[m] <= 0.1)) if m.any() else None)
                                   for k, m in groups.items()}}


def _stored(path: Path) -> Path:
    """A measured table an earlier run wrote, as written or gzipped."""
    gzipped = path.with_name(path.name + ".gz")
    return gzipped if gzipped.is_file() and not path.is_file() else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="networks per sample")
    parser.add_argument("--forest", type=Path, help="a saved forest (default: the packaged model)")
    parser.add_argument("--packaged", default=DEFAULT_MODEL)
    parser.add_argument("--table", type=Path, help="a table of build_energy_model.py --out (its provenance "
                                                   "<name>.json beside it) to fit instead of the packaged one")
    parser.add_argument("--bases", nargs="*", choices=[b for b in BASES if b], default=[b for b in BASES if b],
                        help="linear bases to fit the table with (the packaged model: beside its own)")
    parser.add_argument("--seed", type=int, default=1, help="Sobol seed of the fresh samples (the model: 0)")
    parser.add_argument("--quick", action="store_true", help="8 networks per sample, short timing")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder of the measured tables")
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="folder of energy_model.md (energy_model-quick.md with --quick)")
    parser.add_argument("--rescore", action="store_true",
                        help="score the measurements stored in --out by an earlier run instead of measuring")
    args = parser.parse_args()
    if args.forest:
        models, timing = {"given": ForestEnergyModel.load(args.forest)}, {}
    elif args.table:
        stem = args.table.name.removesuffix(".gz").removesuffix(".csv")  # <name>.csv.gz as written, or unpacked
        info_path = args.table.with_name(stem + ".json")
        if not info_path.exists():
            parser.error(f"--table {args.table}: its provenance {info_path.name} is not beside it "
                         "(build_energy_model.py --out writes both)")
        info = json.loads(info_path.read_text())
        table = read_measurements(args.table)
        models = {f"table ({base})": fit_measurements(table, folds=0, **{**info["forest_params"], "base": base})
                  for base in args.bases}
        timing = info["timing"]
    else:
        packaged = load_packaged(args.packaged)
        models = {f"packaged ({packaged.base})": packaged,
                  **{f"refitted ({base})": load_packaged(args.packaged, base)
                     for base in args.bases if base != packaged.base}}
        timing = provenance(args.packaged)["timing"]
    model = next(iter(models.values()))
    settings = TimingSettings(**timing)
    n = 8 if args.quick else args.n
    if args.quick:
        settings = replace(settings, max_s=0.1, passes=2, max_passes=2, min_round_s=0.0)
    profile = load_profile(model.setup.get("device_profile", "host-cpu-core"))
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    samples = {"fresh sample of the shipped spaces": design(n, list(shipped_spaces().values()), seed=args.seed,
                                                            baselines=False),
               "wider space (SearchSpace() defaults)": design(n, SearchSpace(n_classes=12), seed=args.seed,
                                                              baselines=False)}
    calibration = calibration_genomes(list(shipped_spaces().values()), QUICK_WIDTHS if args.quick else WIDTHS)
    results, started = {}, time.perf_counter()
    for label, genomes in samples.items():
        stored = args.out / f"energy_model-{label.split()[0]}.csv"
        if args.rescore:
            measured = read_measurements(_stored(stored))
        else:
            measured = measure_genomes({**genomes, **calibration}, profile, dtype=model.setup.get("dtype", "int8"),
                                       settings=settings, model=model)
            measured = read_measurements(write_measurements(measured, stored, overwrite=True))  # scored as stored
        records = [r for r in measured if r.model_id in genomes]
        if len(records) != len(genomes):
            raise SystemExit(f"{stored}: {len(records)} of the sample's {len(genomes)} networks; rescore with the "
                             "--n and --seed of the run that measured it")
        for name, scored in models.items():
            speed = host_speed([r for r in measured if r.model_id in calibration], scored)
            results[label, name] = {"as predicted": errors(scored, records), "speed": speed,
                                    "calibrated": errors(scored, records, speed.factor)}
            print(label, name, speed, results[label, name]["calibrated"], flush=True)
    measure_s = time.perf_counter() - started
    reference = {"mobilenet_v1_x1.00": baseline("mobilenet_v1"), "mobilenet_v2_x1.00": baseline("mobilenet_v2"),
                 "ds_cnn_s": baseline("ds_cnn_s", n_classes=12), **extreme_genomes(SearchSpace())}
    stored = args.out / "energy_model_reference.csv"
    if args.rescore:
        ref_records = read_measurements(_stored(stored), allow_mixed=True)
    else:
        ref_records = [r for dtype in ("float32", "int8")
                       for r in measure_genomes(reference, profile, dtype=dtype, settings=settings)]
        ref_records = read_measurements(write_measurements(ref_records, stored, overwrite=True, allow_mixed=True),
                                        allow_mixed=True)

    command = "python benchmarks/energy_model.py" + (" --quick" if args.quick else f" --n {n}") + (
        f" --forest {args.forest}" if args.forest else "") + (f" --table {args.table}" if args.table else "") + (
        f" --out {args.out}" if args.out != HERE / "out" else "") + (" --rescore" if args.rescore else "")
    setup = ref_records[-1]
    where = (f"measured by an earlier run on {setup.hardware}, {setup.runtime}, stored in {args.out} and scored "
             "here" if args.rescore else
             f"measured in this process on {setup.hardware}, {setup.runtime}, 1-minute load average "
             f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; {measure_s:.0f} s")
    lines = ["# Energy model on fresh samples", "", f"`{command}`: {where}.", "",
             "Host speed now against the table's (measured / predicted energy of the "
             f"{len(calibration)} calibration networks, measured in the same passes as each sample):", ""]
    lines += [f"- {label}, {name}: {r['speed']}" for (label, name), r in results.items()]
    lines += ["", "Models: " + "; ".join(
        f"{name}: {scored.name}" + (f", cross-validated when fitted {scored.cv_report}"
                                    if getattr(scored, "cv_report", None) else "")
        for name, scored in models.items()) + ".", "",
              "| sample | model | predictions | n | within +/-10% | within +/-20% | median error | worst error | MAPE "
              "| flagged as outside |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (label, name), both in results.items():
        for kind in ("as predicted", "calibrated"):
            r = both[kind]
            lines.append(f"| {label} | {name} | {kind} | {r['n']} | {100 * r['within_10']:.0f}% | "
                         f"{100 * r['within_20']:.0f}% | {100 * r['median']:.1f}% | {100 * r['worst']:.1f}% | "
                         f"{100 * r['mape']:.1f}% | {r['flagged']} |")
    groups = list(next(iter(results.values()))["calibrated"]["within_10_by_group"])
    lines += ["", "Within +/-10% of the calibrated predictions by representation and by measured latency "
              "(networks in brackets):", "",
              "| sample | model | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for (label, name), both in results.items():
        cells = [f"{100 * share:.0f}% ({n})" if share is not None else "- (0)"
                 for n, share in both["calibrated"]["within_10_by_group"].values()]
        lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "| network | MACs | dtype | latency ms (IQR) | energy mJ |", "|---|---|---|---|---|"]
    for r in ref_records:
        lines.append(f"| {r.model_id} | {network_cost(r.genome).macs:,} | {r.dtype} | "
                     f"{r.latency_ms:.4f} ({r.latency_iqr_ms:.4f}) | {r.energy_mj:.4f} |")
    text = "\n".join(lines) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"energy_model{'-quick' if args.quick else ''}.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
