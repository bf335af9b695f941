"""Do the leftover-channel terms make the energy model's linear base better? Cross-validated per base.

Each energy model base of ``moo_audio.energy.features.BASES`` (``operators``: per operator kind,
counts, MACs, MACs in whole 16-lane blocks, unfolded elements, positions and elements;
``operators+tails``: the same plus the MACs of the output channels left over beyond whole blocks
of 16 and of 4) is fitted with the forest on each stored measurements table and scored by
repeated 5-fold cross-validation (``--splits`` shuffles, out-of-fold predictions): within +/-10%
and +/-20%, overall, by representation and by latency band, with a paired bootstrap 95% interval of
the difference in within +/-10% to the first base. It also gives the evidence that motivated the
tails: the mean measured / predicted energy (``operators`` base) of networks with at least 10% of
their MACs in 2-D depthwise layers of 8 + 16k channels, against the other networks.

    python benchmarks/energy_terms.py          # the packaged table, the 1,220-network one, one from another host
    python benchmarks/energy_terms.py --quick  # the packaged table alone, one shuffle of the folds

Writes ``benchmarks/results/energy_terms.{md,json}`` (``--quick``: ``energy_terms-quick.*``).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TABLES = {"packaged (540 networks, 2026-12-02)": HERE.parent / "moo_audio/energy/models/onnxruntime-int8.csv.gz",
          "larger (1,220 networks, 2026-12-06)":
              HERE / "results/energy_tables/onnxruntime-int8-n1220-2026-12-06.csv.gz",
          "AMD EPYC host (540 networks, 2026-12-06)":
              HERE / "results/energy_tables/epyc-n540-2026-12-06/onnxruntime-int8.csv.gz"}
#: latency bands of the breakdown (ms)
BANDS_MS = ((0, 0.1), (0.1, 1), (1, float("inf")))


def out_of_fold(base: str | None, X: np.ndarray, energy: np.ndarray, splits: int) -> np.ndarray:
    """Out-of-fold predictions of a forest with ``base``, shape ``(splits, networks)``."""
    from sklearn.model_selection import KFold, cross_val_predict

    from moo_audio.energy.forest import ForestEnergyModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.stack([cross_val_predict(ForestEnergyModel(base=base), X, energy,
                                           cv=KFold(5, shuffle=True, random_state=split))
                         for split in range(splits)])


#: networks with at least this share of their MACs in 2-D depthwise layers of 8 + 16k channels are "tail-heavy"
TAIL_HEAVY_SHARE = 0.1


def tail_heavy(genome) -> bool:
    """Whether :data:`TAIL_HEAVY_SHARE` of the network's MACs lie in 2-D depthwise layers of 8 + 16k channels."""
    from moo_audio.costs import network_cost
    from moo_audio.energy.features import LANES, operator_kind

    cost = network_cost(genome)
    tail = sum(c.macs for c in cost.layers
               if operator_kind(c) == "conv_depthwise_2d" and c.layer.out_channels % LANES == LANES // 2)
    return tail >= TAIL_HEAVY_SHARE * cost.macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=3, help="shuffles of the 5 folds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="the packaged table alone, one shuffle")
    args = parser.parse_args()
    tables = dict(list(TABLES.items())[:1]) if args.quick else TABLES
    splits = 1 if args.quick else args.splits
    sys.path.insert(0, str(HERE))
    from surrogate_report import bootstrap_interval

    from moo_audio.energy.features import BASES
    from moo_audio.energy.forest import GenomeFeatures
    from moo_audio.energy.records import read_measurements

    bases = [b for b in BASES if b is not None]
    command = "python benchmarks/energy_terms.py " + ("--quick" if args.quick else f"--splits {splits}")
    report = {"command": command, "tables": {}}
    for label, path in tables.items():
        records = read_measurements(path)
        genomes = [r.genome for r in records]
        energy = np.array([r.energy_mj for r in records])
        latency = np.array([r.latency_ms for r in records])
        X = GenomeFeatures().transform(genomes)
        groups = {"all": np.ones(len(records), bool),
                  "1-D": np.array([g.frontend.representation == "1d" for g in genomes])}
        groups["2-D"] = ~groups["1-D"]
        groups.update({f"{low:g}-{high:g} ms": (latency > low) & (latency <= high) for low, high in BANDS_MS})
        hits, rows = {}, {}
        for base in bases:
            predicted = out_of_fold(base, X, energy, splits)
            relative = np.abs(predicted - energy) / energy
            hits[base] = (relative <= 0.1).mean(axis=0)  # per network, over the splits
            rows[base] = {name: {"n": int(m.sum()), "within_10": float(hits[base][m].mean()),
                                 "within_20": float((relative[:, m] <= 0.2).mean())} for name, m in groups.items()}
            if base == bases[0]:
                heavy = np.array([tail_heavy(g) for g in genomes])
                ratio = np.log(energy / np.exp(np.log(predicted).mean(axis=0)))
                report["tables"].setdefault(label, {})["tail_evidence"] = {
                    "n_tail_heavy": int(heavy.sum()),
                    "measured_over_predicted_tail_heavy": float(np.exp(ratio[heavy].mean())) if heavy.any() else None,
                    "measured_over_predicted_others": float(np.exp(ratio[~heavy].mean()))}
        for base in bases[1:]:
            diff = hits[base] - hits[bases[0]]
            rows[base]["difference_all"] = [float(diff.mean()), *bootstrap_interval(np.mean, diff)]
        report["tables"][label].update({"path": str(path.relative_to(HERE.parent)), "bases": rows})

    names = list(next(iter(report["tables"].values()))["bases"][bases[0]])
    names = [n for n in names if n != "difference_all"]
    lines = ["# Energy model bases, cross-validated", "",
             f"`{report['command']}`: repeated 5-fold cross-validation of the forest with each linear base on "
             "each stored table; within +/-10% of the measured energy (networks in brackets); the difference "
             "to `operators` with its paired bootstrap 95% interval over networks.", "",
             "| table | base | " + " | ".join(f"{n}" for n in names) + " | within +/-20% | difference (all) |",
             "|---|---|" + "---|" * (len(names) + 2)]
    for label, table in report["tables"].items():
        for base, row in table["bases"].items():
            cells = [f"{100 * row[n]['within_10']:.1f}% ({row[n]['n']})" for n in names]
            diff = row.get("difference_all")
            lines.append(f"| {label} | {base} | " + " | ".join(cells) + f" | {100 * row['all']['within_20']:.1f}% | "
                         + (f"{100 * diff[0]:+.1f} [{100 * diff[1]:+.1f}, {100 * diff[2]:+.1f}]" if diff else "-")
                         + " |")
    lines += ["", "Measured / predicted energy (`operators` base, out of fold, geometric mean) of networks with at "
              f"least {TAIL_HEAVY_SHARE:.0%} of their MACs in 2-D depthwise layers of 8 + 16k channels, and of "
              "the others:", ""]
    for label, table in report["tables"].items():
        e = table["tail_evidence"]
        heavy = e["measured_over_predicted_tail_heavy"]
        lines.append(f"- {label}: {'-' if heavy is None else f'{heavy:.3f}'} ({e['n_tail_heavy']} networks) "
                     f"vs {e['measured_over_predicted_others']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "energy_terms-quick" if args.quick else "energy_terms"  # a quick run never overwrites the full one
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
