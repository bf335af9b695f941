"""Training compute saved by each early-stopping rule vs the ranking it preserves.

Replays the stopping rules of :mod:`moo_audio.training` on the full learning curves of a surrogate
table (``benchmarks/build_surrogate.py`` trained every architecture for the whole budget, and the
one-cycle schedule spans the whole budget whether a run stops early or not, so the first ``e``
epochs of a full curve are exactly what an early-stopped run would have seen). Candidates arrive in
a random order (one order per seed) and each one's truncated curve joins the history the median and
halving rules compare with, as in a search. For each rule it reports the training compute saved
(full-budget seconds / early-stopped seconds) and the Spearman rank correlation between the
early-stopped and the full-budget best validation accuracy::

    python benchmarks/early_stopping.py --table builtin --seeds 10
    python benchmarks/early_stopping.py --quick      # 2 seeds, 40 architectures

Writes ``early_stopping-<table>.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from moo_audio.surrogate import load_table
from moo_audio.training import (
    CurveHistory,
    MedianStopping,
    Patience,
    StoppingRule,
    SuccessiveHalving,
)

#: rule sets by label: each builds its rules on the shared history
RULES: dict[str, Callable[[CurveHistory], list[StoppingRule]]] = {
    "patience 5": lambda h: [Patience(5)],
    "patience 3": lambda h: [Patience(3)],
    "median": lambda h: [MedianStopping(h)],
    "patience 5 + median (default)": lambda h: [Patience(5), MedianStopping(h)],
    "halving (min 1, eta 3)": lambda h: [SuccessiveHalving(h, min_epochs=1, eta=3)],
    "halving (min 2, eta 3)": lambda h: [SuccessiveHalving(h, min_epochs=2, eta=3)],
    "halving (min 1, eta 2)": lambda h: [SuccessiveHalving(h, min_epochs=1, eta=2)],
    "median + halving (min 1, eta 3)": lambda h: [MedianStopping(h), SuccessiveHalving(h, min_epochs=1, eta=3)],
}


def replay(curves: Sequence[Sequence[float]], rules: Callable[[CurveHistory], list[StoppingRule]]
           ) -> np.ndarray:
    """Epochs each candidate trains under ``rules``, in the given order."""
    history = CurveHistory()
    active = rules(history)
    used = []
    for curve in curves:
        stop = next((e for e in range(1, len(curve) + 1) if any(r.should_stop(curve[:e]) for r in active)),
                    len(curve))
        used.append(stop)
        history.add(curve[:stop])
    return np.array(used)


def evaluate(rows: list[dict], seeds: int) -> list[dict]:
    """Per rule: compute saved and Spearman, mean and spread over ``seeds`` arrival orders."""
    curves = [r["curve"] for r in rows]
    per_epoch_s = np.array([r["seconds"] / max(1, r["epochs"]) for r in rows])
    full_epochs = np.array([len(c) for c in curves])
    full_best = np.array([max(c) for c in curves])
    results = []
    for label, rules in RULES.items():
        saved, saved_epochs, rho, stopped = [], [], [], []
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(len(curves))
            used = np.empty(len(curves), dtype=int)
            used[order] = replay([curves[i] for i in order], rules)
            early_best = np.array([max(c[:u]) for c, u in zip(curves, used)])
            saved.append(np.sum(per_epoch_s * full_epochs) / np.sum(per_epoch_s * used))
            saved_epochs.append(full_epochs.sum() / used.sum())
            rho.append(spearmanr(early_best, full_best).statistic)
            stopped.append(np.mean(used < full_epochs))
        results.append({"rule": label, "compute_saved": float(np.mean(saved)),
                        "compute_saved_sd": float(np.std(saved)), "epochs_saved": float(np.mean(saved_epochs)),
                        "spearman": float(np.mean(rho)), "spearman_sd": float(np.std(rho)),
                        "stopped_share": float(np.mean(stopped))})
    return results


def markdown(table: str, meta: dict, n: int, seeds: int, results: list[dict]) -> str:
    lines = [f"Table `{table}`: {n} architectures trained for {meta['budget']['max_epochs']} epochs "
             f"(problem {meta['problem']}); {seeds} random arrival orders (mean +/- sd).", "",
             "| rule | stopped early | compute saved | Spearman (early vs full accuracy) |",
             "| --- | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['rule']} | {r['stopped_share']:.0%} | {r['compute_saved']:.2f}x "
                     f"(+/- {r['compute_saved_sd']:.2f}) | {r['spearman']:.3f} (+/- {r['spearman_sd']:.3f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="builtin", help="shipped table name or table file")
    parser.add_argument("--seeds", type=int, default=10, help="random arrival orders")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--quick", action="store_true", help="2 seeds, first 40 architectures")
    args = parser.parse_args()

    table = load_table(args.table)
    rows = [r for r in table.trained("sample") if r["curve"]]
    if args.quick:
        rows, args.seeds = rows[:40], 2
    results = evaluate(rows, args.seeds)
    name = Path(args.table).name.split(".")[0]
    text = markdown(name, table.meta, len(rows), args.seeds, results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"early_stopping-{name}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": table.meta, "results": results}, indent=1))
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
