"""How well does ``SurrogateAudioNASProblem``'s error forest predict the trained error?

Fits the surrogate of each table and prints its k-fold cross-validated report (MAE of the
classification error, Spearman rank correlation, R^2) as a markdown table::

    python benchmarks/surrogate_report.py                  # builtin and fsdd, 300 trees
    python benchmarks/surrogate_report.py --tables builtin --trees 30
"""

from __future__ import annotations

import argparse

from moo_audio.surrogate import SurrogateAudioNASProblem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd", help="comma-separated table names or files")
    parser.add_argument("--trees", type=int, default=300, help="trees of the error forest")
    args = parser.parse_args()
    lines = ["| table | n | MAE of error | Spearman | R^2 |", "|---|---|---|---|---|"]
    for table in args.tables.split(","):
        report = SurrogateAudioNASProblem(table, n_estimators=args.trees).error_model_report
        lines.append(f"| {table} | {report.n} | {report.mae:.3f} | {report.spearman:.3f} | {report.r2:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
