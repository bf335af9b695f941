"""The seed work's table: MobileNet baselines vs the Pareto models a search finds, same training budget.

For each surrogate table (real trainings: ``benchmarks/build_surrogate.py``), the MobileNetV1/V2
baselines it holds are compared with the Pareto models (error, energy, memory) among the
architectures a search trained for real under the same budget: a ``moo-audio search`` run folder
(``--run TABLE=FOLDER``) where one is given, else the table's own trained sample. Energy per
inference is measured on this host (int8 onnxruntime, :func:`moo_audio.energy.measure_genomes`) and,
with ``--forest``, also predicted by a fitted forest. Ratios compare the most accurate baseline with
the cheapest found model of equal or better *test* accuracy::

    python benchmarks/baselines.py --run builtin=benchmarks/results/run-builtin-hybrid \\
        --forest energy/host.joblib
    python benchmarks/baselines.py --quick          # builtin table only, 4 models, short timing

Writes ``baselines.md`` and ``baselines.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from moo_audio.energy.measure import TimingSettings, measure_genomes
from moo_audio.energy.profiles import load_profile
from moo_audio.runs import RunStore, pareto
from moo_audio.space import Genome
from moo_audio.surrogate import load_table


def found_models(table, run: Path | None) -> tuple[str, list[dict]]:
    """``(source, rows)`` of the Pareto models found by a search (or in the table's sample)."""
    if run is not None:
        evaluations = [e for e in RunStore.open(run).evaluations() if e.feasible]
        front = pareto(evaluations)
        rows = [{"label": e.genome_id, "genome": e.key, "val_accuracy": e.val_accuracy,
                 "test_accuracy": e.test_accuracy, "macs": e.macs, "params": e.params,
                 "memory_kb": e.memory_kb} for e in front]
        return f"search run {run} ({len(evaluations)} feasible evaluations)", rows
    sample = table.trained("sample")
    F = np.array([[1 - r["val_accuracy"], r["energy_mj"], r["memory_kb"]] for r in sample])
    keep = [i for i in range(len(F)) if not np.any(np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1))]
    rows = [{**sample[i], "label": f"sample {i}"} for i in keep]
    return f"Pareto set of the table's {len(sample)} trained sample architectures", rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd", help="comma-separated table names or files")
    parser.add_argument("--run", action="append", default=[], metavar="TABLE=FOLDER",
                        help="a search run folder whose Pareto models stand for that table")
    parser.add_argument("--forest", type=Path, help="a fitted energy forest (moo-audio energy fit/measure)")
    parser.add_argument("--profile", default="host-cpu-core")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    runs = dict(item.split("=", 1) for item in args.run)
    forest = None
    if args.forest:
        from moo_audio.energy.forest import ForestEnergyModel

        forest = ForestEnergyModel.load(args.forest)
    settings = TimingSettings(max_s=0.05, passes=1, max_passes=1, min_round_s=0.0) if args.quick \
        else TimingSettings()
    profile = load_profile(args.profile)
    tables = ["builtin"] if args.quick else args.tables.split(",")
    report, lines = {}, []
    for name in tables:
        table = load_table(name)
        source, found = found_models(table, Path(runs[name]) if name in runs else None)
        baselines = [{**r} for r in table.trained("baseline")]
        if args.quick:
            found, baselines = found[:2], baselines[:2]
        models = [{**r, "group": "baseline"} for r in baselines] + [{**r, "group": "found"} for r in found]
        genomes = {f"m{i}": Genome.from_json(m["genome"]) for i, m in enumerate(models)}
        measured = measure_genomes(genomes, profile, settings=settings, model=forest)
        for m, record in zip(models, measured):
            m["measured_mj"], m["latency_ms"] = record.energy_mj, record.latency_ms
            m["forest_mj"] = record.predicted_mj
        ratios = compare(models)
        report[name] = {"source": source, "models": [{k: v for k, v in m.items() if k not in ("curve", "train_loss")}
                                                     for m in models], "ratios": ratios,
                        "budget": table.meta["budget"], "setup": measured[0].setup()}
        lines += markdown(name, table.meta, source, models, ratios, measured[0].setup(), forest is not None)
    if forest is not None:
        lines += forest_check([m for r in report.values() for m in r["models"]])
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (args.out / f"baselines{suffix}.json").write_text(json.dumps(report, indent=1))
    text = "\n".join(lines) + "\n"
    (args.out / f"baselines{suffix}.md").write_text(text)
    print(text)


def forest_check(models: list[dict]) -> list[str]:
    """Measured vs the forest's prediction over every model measured here."""
    error = np.abs(np.array([m["forest_mj"] / m["measured_mj"] - 1 for m in models]))
    return [f"Forest vs measured energy over these {len(error)} models: median error {np.median(error):.1%}, "
            f"{np.mean(error <= 0.1):.0%} within +/-10%, {np.mean(error <= 0.2):.0%} within +/-20%, "
            f"worst {error.max():.0%}.", ""]


def compare(models: list[dict]) -> dict:
    """Most accurate baseline vs the found model of >= its test accuracy with the least measured energy."""
    baselines = [m for m in models if m["group"] == "baseline"]
    best = max(baselines, key=lambda m: m["test_accuracy"])
    better = [m for m in models if m["group"] == "found" and m["test_accuracy"] >= best["test_accuracy"]]
    if not better:
        return {"baseline": best["label"], "found": None,
                "note": "no found model reaches the best baseline's test accuracy"}
    pick = min(better, key=lambda m: m["measured_mj"])
    return {"baseline": best["label"], "found": pick["label"],
            "energy_ratio": best["measured_mj"] / pick["measured_mj"],
            "memory_ratio": best["memory_kb"] / pick["memory_kb"],
            "macs_ratio": best["macs"] / pick["macs"],
            "accuracy_gain": pick["test_accuracy"] - best["test_accuracy"]}


def markdown(name, meta, source, models, ratios, setup, with_forest) -> list[str]:
    lines = [f"### {name}: {meta['problem']} problem, {meta['budget']['max_epochs']} epochs for every model", "",
             f"Found models: {source}. Energy measured on {setup['hardware']}, {setup['runtime']}, "
             f"{setup['dtype']}, {setup['method']} ({setup['device_profile']}), latency statistic "
             f"{setup['latency_statistic']}.", "",
             "| model | val acc | test acc | energy mJ (measured) |" + (" energy mJ (forest) |" if with_forest else "")
             + " memory KB | MACs | params |",
             "| --- | ---: | ---: | ---: |" + (" ---: |" if with_forest else "") + " ---: | ---: | ---: |"]
    for m in sorted(models, key=lambda m: (m["group"], -m["test_accuracy"])):
        forest = f" {m['forest_mj']:.4f} |" if with_forest else ""
        lines.append(f"| {m['group']}: {m['label']} | {m['val_accuracy']:.3f} | {m['test_accuracy']:.3f} | "
                     f"{m['measured_mj']:.4f} |{forest} {m['memory_kb']:.1f} | {m['macs'] / 1e6:.3f} M | "
                     f"{int(m['params']):,} |")
    if ratios.get("found"):
        lines += ["", f"Best baseline {ratios['baseline']} vs found {ratios['found']} (test accuracy "
                  f"{ratios['accuracy_gain']:+.3f}): energy {ratios['energy_ratio']:.1f}x less, memory "
                  f"{ratios['memory_ratio']:.1f}x less, MACs {ratios['macs_ratio']:.1f}x fewer.", ""]
    else:
        lines += ["", f"Best baseline {ratios['baseline']}: {ratios['note']}.", ""]
    return lines


if __name__ == "__main__":
    main()
