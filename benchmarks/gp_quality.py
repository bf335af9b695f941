"""How well ``BoTorchMOBO``'s GP ranks held-out *real* trainings, by what it reads (``gp_inputs``).

The hypervolume runs (``compare_acquisitions.py --gp-inputs ...``) score the GP inputs on the
surrogate, whose error model reads architecture features too; this script checks the GP on the
measured errors of a table instead. For each table (``--tables``) and training size n (``--train``),
``--splits`` random splits of the table's trained sample architectures: the GP is fitted exactly as
the algorithm fits it (``BoTorchMOBO.fit_gp``: its input and outcome transforms and L-BFGS budget) to
n architectures' measured final errors and predicts the others. Reported per GP input: Spearman
overall and among the held-out best quartile (by measured error), median and 95% bootstrap interval
over the splits, and the paired difference to ``encoding`` on the same splits.

Outputs under ``--out``: ``gp_quality.json`` (every split's figures) and ``gp_quality.md``::

    python benchmarks/gp_quality.py
    python benchmarks/gp_quality.py --quick        # builtin, n=30, 3 splits
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hv


def split_scores(algorithm, U: np.ndarray, error: np.ndarray, n: int, rng: np.random.Generator) -> tuple:
    """Spearman of the GP's predicted error with the measured one on the held-out rows, overall and in
    their best quartile, for one random split with ``n`` training rows."""
    import torch
    from scipy.stats import spearmanr

    from moo_audio.surrogate import best_quartile

    order = rng.permutation(len(U))
    train, test = order[:n], order[n:]
    X = torch.as_tensor(U, dtype=torch.float64)
    gp = algorithm.fit_gp(X[train], torch.as_tensor(-error[train, None], dtype=torch.float64))
    with torch.no_grad():
        predicted = -gp.posterior(X[test]).mean[:, 0].numpy()
    best = best_quartile(error[test])
    return (float(spearmanr(predicted, error[test]).statistic),
            float(spearmanr(predicted[best], error[test][best]).statistic))


def table_scores(table: str, sizes: list[int], splits: int, inputs: list[str]) -> dict:
    """Every split's (overall, best-quartile) Spearman per training size and GP input of one table."""
    from moo_audio.algorithms import BoTorchMOBO
    from moo_audio.surrogate import error_curves

    problem = _hv.surrogate(table, _hv.QUICK_TREES)  # its space and architecture features only
    rows = problem.table.trained("sample")
    U = problem.space.to_x(problem.table.genomes(rows))
    error = np.array([error_curves(r)[-1] for r in rows])
    scores: dict = {"architectures": len(rows)}
    for n in sizes:
        if n >= len(rows) - 8:
            raise SystemExit(f"--train {n} leaves too few of {table}'s {len(rows)} architectures to test on")
        scores[n] = {}
        for name in inputs:
            algorithm = BoTorchMOBO(gp_inputs=name)
            algorithm.setup(problem, seed=0)
            rng = np.random.default_rng(0)  # the same splits for every input
            scores[n][name] = [split_scores(algorithm, U, error, n, rng) for _ in range(splits)]
    return scores


def interval(values) -> str:
    median, low, high = (float(v[0]) for v in _hv.bootstrap_median(np.asarray(values, float)[:, None]))
    return f"{median:.3f} [{low:.3f}, {high:.3f}]"


def report(scores: dict, inputs: list[str]) -> str:
    rows = []
    for table, by_size in scores.items():
        for n, by_input in by_size.items():
            if n == "architectures":
                continue
            base = np.array(by_input["encoding"]) if "encoding" in by_input else None
            for name in inputs:
                s = np.array(by_input[name])
                paired = ["-", "-"] if base is None or name == "encoding" else [
                    interval(s[:, k] - base[:, k]) for k in (0, 1)]
                rows.append([table, n, name, interval(s[:, 0]), interval(s[:, 1]), *paired])
    header = ["table", "GP trained on", "GP inputs", "Spearman, held-out", "Spearman, held-out best quartile",
              "minus encoding (paired)", "minus encoding, best quartile"]
    return _hv.markdown(header, rows)


def main(argv: list[str] | None = None) -> None:
    from moo_audio.algorithms.botorch_mobo import GP_INPUTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd", help="comma-separated surrogate tables")
    parser.add_argument("--train", default="50,100", help="comma-separated training sizes n")
    parser.add_argument("--splits", type=int, default=20, help="random splits per (table, n)")
    parser.add_argument("--gp-inputs", default=",".join(GP_INPUTS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--quick", action="store_true", help="builtin only, n=30, 3 splits")
    args = parser.parse_args(argv)
    inputs = _hv.choose(parser, args.gp_inputs, GP_INPUTS, "gp inputs")
    tables, sizes, splits = (["builtin"], [30], 3) if args.quick else (
        [t for t in args.tables.split(",") if t], [int(n) for n in args.train.split(",")], args.splits)
    _hv.quiet()

    scores = {table: table_scores(table, sizes, splits, inputs) for table in tables}
    table = report(scores, inputs)
    print(table, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"tables": tables, "train": sizes, "splits": splits, "gp_inputs": inputs, "quick": args.quick}
    data = {"settings": settings, "environment": _hv.environment(),
            "scores": {t: {str(k): v for k, v in s.items()} for t, s in scores.items()}}
    (args.out / "gp_quality.json").write_text(json.dumps(data, indent=1))
    title = "BoTorchMOBO's GP on held-out real trainings: median and 95% bootstrap CI over random splits"
    (args.out / "gp_quality.md").write_text(f"# {title}\n\n{table}\n")


if __name__ == "__main__":
    main()
