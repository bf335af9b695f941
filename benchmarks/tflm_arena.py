"""The memory objective against TFLite Micro's own interpreter: analytic arena and weights vs the real ones.

Samples ``--n`` networks over the shipped problem files' search spaces (a scrambled Sobol sample per
space, seed ``--seed``) plus every baseline at every width, exports each (random weights) as a
fully-int8 ``.tflite`` file (``moo_audio.energy.measure.export_tflite_int8``), and asks TFLite Micro's
interpreter (the ``tflite-micro`` package, ``moo_audio.tflite_io.micro_arena``) for the arena it
needs, split into the planned part (head: activations and scratch buffers) and the persistent part
(tail). Beside each: the analytic peak arena, weights and memory
objective of ``moo_audio.costs``, and the size of the ``.tflite`` file. Reports how closely they
agree (ratios, exact matches, rank correlation) and writes ``benchmarks/results/tflm_arena.{md,json}``
with every network's row::

    python benchmarks/tflm_arena.py --n 100
    python benchmarks/tflm_arena.py --quick --out benchmarks/out      # 4 networks, no baselines
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent


def measure(genomes: dict) -> tuple[list[dict], dict[str, str]]:
    """One row per network the int8 converter takes; the refused ones with the converter's reason."""
    from moo_audio.costs import network_cost
    from moo_audio.energy.measure import export_tflite_int8
    from moo_audio.tflite_io import ConversionError, micro_arena

    rows, refused = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (model_id, genome) in enumerate(genomes.items()):
            path = Path(tmp) / f"{i}.tflite"
            try:
                export_tflite_int8(genome, path)
            except ConversionError as error:
                refused[model_id] = str(error)
                print(f"[{i + 1:>4}/{len(genomes)}] {model_id:<20} refused: {error}", flush=True)
                continue
            arena, cost = micro_arena(path), network_cost(genome)
            rows.append({"model_id": model_id, "representation": genome.frontend.representation,
                         "macs": cost.macs, "analytic_arena": cost.peak_activation_bytes("int8"),
                         "analytic_weights": cost.weight_bytes("int8"), "analytic_memory": cost.memory_bytes("int8"),
                         "tflm_arena": arena.total, "tflm_head": arena.head, "tflm_tail": arena.tail,
                         "tflite_bytes": path.stat().st_size, "genome": genome.to_json()})
            print(f"[{i + 1:>4}/{len(genomes)}] {model_id:<20} analytic arena {rows[-1]['analytic_arena']:>9,} "
                  f"TFLM head {arena.head:>9,} tail {arena.tail:>7,}", flush=True)
    return rows, refused


def agreement(rows: list[dict], ours: str, theirs: str) -> dict[str, float]:
    """How ``ours`` (analytic) predicts ``theirs`` (TFLite Micro) over ``rows``."""
    a, b = np.array([r[ours] for r in rows], float), np.array([r[theirs] for r in rows], float)
    ratio = a / b
    return {"n": len(rows), "exact": float(np.mean(a == b)), "within_5pct": float(np.mean(np.abs(ratio - 1) <= 0.05)),
            "median_ratio": float(np.median(ratio)), "min_ratio": float(ratio.min()), "max_ratio": float(ratio.max()),
            "spearman": float(spearmanr(a, b).statistic)}


COMPARISONS = (  # (ours, theirs, what it says)
    ("analytic_arena", "tflm_head", "peak activation arena vs TFLite Micro's planned arena (head)"),
    ("analytic_arena", "tflm_arena", "peak activation arena vs TFLite Micro's whole arena (head + tail)"),
    ("analytic_weights", "tflite_bytes", "weights vs the .tflite file (weights, graph, metadata)"),
    ("analytic_memory", "tflm_memory", "memory objective vs .tflite file + TFLite Micro's arena"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="networks sampled over the shipped spaces")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--quick", action="store_true", help="4 networks, no baselines")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    from tflite_micro.python.tflite_micro import _version as tflm_version

    from moo_audio.energy.bundle import design
    from moo_audio.problem_files import shipped_spaces

    n = 4 if args.quick else args.n
    genomes = design(n, list(shipped_spaces().values()), seed=args.seed, baselines=not args.quick)
    started = time.perf_counter()
    rows, refused = measure(genomes)
    for r in rows:
        r["tflm_memory"] = r["tflite_bytes"] + r["tflm_arena"]
    report = {f"{ours} vs {theirs}": agreement(rows, ours, theirs) for ours, theirs, _ in COMPARISONS}
    subsets = {"1-D": [r for r in rows if r["representation"] == "1d"],
               "2-D": [r for r in rows if r["representation"] == "2d"],
               "baselines": [r for r in rows if not r["model_id"].startswith("g")]}
    tail_share = np.array([r["tflm_tail"] / r["tflm_arena"] for r in rows])
    command = f"python benchmarks/tflm_arena.py {'--quick' if args.quick else f'--n {args.n} --seed {args.seed}'}"
    lines = [f"`{command}`: {len(rows)} int8 networks ({len(genomes)} asked: {len(refused)} refused by the "
             f"converter) on {platform.machine()}, tflite-micro {tflm_version.__version__}, "
             f"{(time.perf_counter() - started) / 60:.0f} min", "",
             "| comparison | networks | exact | within ±5% | median ratio (ours / TFLM) | range | Spearman |",
             "|---|---|---|---|---|---|---|"]
    for ours, theirs, what in COMPARISONS:
        for label, subset in [("all", rows), *subsets.items()]:
            if not subset or (label != "all" and ours != "analytic_arena"):
                continue
            r = agreement(subset, ours, theirs)
            lines.append(f"| {what}{'' if label == 'all' else f' ({label})'} | {r['n']} | {r['exact']:.0%} | "
                         f"{r['within_5pct']:.0%} | {r['median_ratio']:.3f} | "
                         f"{r['min_ratio']:.3f}-{r['max_ratio']:.3f} | {r['spearman']:.3f} |")
    tail = np.median([r["tflm_tail"] for r in rows])
    lines += ["", f"TFLite Micro's persistent part (tail) is {np.median(tail_share):.0%} of its arena "
              f"(median; {tail_share.min():.0%}-{tail_share.max():.0%}), median {tail:,.0f} bytes."]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tflm_arena{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"command": command, "report": report, "refused": refused,
                                                     "rows": rows}, indent=1))
    stem.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {stem}.json, .md")


if __name__ == "__main__":
    main()
