"""Does the error model's best quartile improve with other inputs or another form?

The default error model (``curve_boosting`` on ``moo_audio.surrogate.architecture_matrix``) is
compared, by repeated k-fold cross-validation on each table, with variants that a reader of the
quality report would try next:

- ``receptive field``: the inputs plus each network's receptive field and total stride along time
  (log2 frames), and how much of the clip the receptive field covers and how many frames the body
  leaves (keyword spotters are known to need a receptive field near the word's length);
- ``runs as weights``: each architecture weighted by its number of training runs (a mean of three
  seeds is a less noisy target than one run);
- ``both`` of these;
- ``blend with forest``: the geometric mean of the default and the random forest's predictions;
- ``best quarter x4``: the curves whose final error is in the best quarter of each training fold
  weighted 4x (about half of the weight), so that the trees spend their splits where the best-quartile
  ranking is decided;
- ``Gaussian process``: a model of another family, smooth where the trees are piecewise constant
  (``moo_audio.surrogate.CurveGP``);
- ``blend with Gaussian process``: the geometric mean of the default's and the GP's predictions
  (the ``curve_blend`` error model).

Each variant's out-of-fold predictions are averaged over ``--splits`` shuffles of the folds. For each
it gives overall and best-quartile Spearman against the table, and, on the architectures trained with
several seeds, the best-quartile Spearman of the prediction against one real run (averaged over runs;
``surrogate_report.py``'s "mean prediction vs a real run", the figure comparable with the seed-noise
ceiling), each with its paired bootstrap 95% interval of the difference to the default::

    python benchmarks/surrogate_inputs.py --tables builtin,fsdd,speech_commands_12

Writes ``benchmarks/results/surrogate_inputs.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import KFold, cross_val_predict

from moo_audio.energy.profiles import hardware_fingerprint
from moo_audio.space import Genome
from moo_audio.surrogate import (
    ERROR_MODELS,
    CurveBlend,
    CurveBoosting,
    best_quartile,
    fitting_data,
    load_table,
    run_error_curves,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from surrogate_report import MIN_REPEATED, bootstrap_interval

HERE = Path(__file__).resolve().parent
#: the weight of a best-quarter curve in the ``best quarter x4`` variant (the rest weigh 1)
BEST_QUARTER_WEIGHT = 4.0


class BestQuarterFocus(CurveBoosting):
    """:class:`~moo_audio.surrogate.CurveBoosting` with the curves whose final error lies in the best
    quarter of those it is fitted to weighted :data:`BEST_QUARTER_WEIGHT` times (decided from the
    training fold alone, so cross-validation stays honest)."""

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> BestQuarterFocus:
        final = np.asarray(y, float).reshape(len(y), -1)[:, -1]
        focus = np.where(best_quartile(final), BEST_QUARTER_WEIGHT, 1.0)
        return super().fit(X, y, focus if sample_weight is None else focus * sample_weight)


def default_model(trees: int) -> CurveBoosting:
    return ERROR_MODELS["curve_boosting"](trees, 0)


@dataclass(frozen=True)
class Variant:
    """What a variant changes in the default: the receptive-field inputs, the runs as weights, and
    the error model (made for a number of trees; a blend is a :class:`~moo_audio.surrogate.CurveBlend`)."""

    receptive_field: bool = False
    run_weights: bool = False
    model: Callable[[int], Any] = default_model


VARIANTS: dict[str, Variant] = {
    "default": Variant(),
    "receptive field": Variant(receptive_field=True),
    "runs as weights": Variant(run_weights=True),
    "both": Variant(receptive_field=True, run_weights=True),
    "blend with forest": Variant(model=lambda trees: CurveBlend([default_model(trees),
                                                                 ERROR_MODELS["forest"](trees, 0)])),
    "best quarter x4": Variant(model=lambda trees: BestQuarterFocus(**default_model(trees).get_params())),
    "Gaussian process": Variant(model=lambda trees: ERROR_MODELS["curve_gp"](trees, 0)),
    "blend with Gaussian process": Variant(model=lambda trees: ERROR_MODELS["curve_blend"](trees, 0)),
}


def time_receptive_field(genome: Genome) -> list[float]:
    """log2 of the body's receptive field and total stride along time (in feature frames), the share
    of the clip's frames the receptive field spans, and the frames the body leaves. (Our genomes are
    not torch modules until built, and no library computes a receptive field from a layer list.)"""
    field, stride = 1, 1
    for block in genome.blocks:
        kernel = block.kernel if isinstance(block.kernel, int) else block.kernel[1]
        step = block.stride if isinstance(block.stride, int) else block.stride[1]
        field, stride = field + (kernel - 1) * stride, stride * step
        if block.pool:  # 2x max pooling: a kernel of 2 with stride 2
            field, stride = field + stride, stride * 2
    frames = genome.frontend.clip_ms / genome.frontend.hop_ms
    return [np.log2(field), np.log2(stride), field / frames, frames / stride]


def top_spearman(predicted: np.ndarray, target: np.ndarray, quality: np.ndarray | None = None) -> float:
    """:attr:`~moo_audio.surrogate.Agreement.top_spearman` alone (the bootstraps call it thousands of times)."""
    top = best_quartile(target if quality is None else quality)
    return float(spearmanr(predicted[top], target[top]).statistic)


def out_of_fold(X: np.ndarray, Y: np.ndarray, extra: np.ndarray, weights: np.ndarray, variant: Variant, trees: int,
                splits: int) -> np.ndarray:
    """The variant's cross-validated final-epoch error of each architecture (inputs ``X``, curves ``Y``;
    ``extra`` the receptive-field inputs, ``weights`` the runs per architecture), averaged over
    ``splits`` shuffles of 5 folds."""
    if variant.receptive_field:
        X = np.hstack([X, extra])
    params = {"sample_weight": weights} if variant.run_weights else {}
    model = variant.model(trees)
    return np.mean([np.clip(cross_val_predict(model, X, Y, cv=KFold(5, shuffle=True, random_state=split),
                                              params=params).reshape(len(Y), -1)[:, -1], 1e-3, 1.0)
                    for split in range(splits)], axis=0)


def compare(name: str, trees: int, splits: int, variants: list[str]) -> list[dict[str, Any]]:
    """The ``variants``' agreement on the table ``name``, with intervals of their difference to the default."""
    table = load_table(name)
    rows = table.trained()
    X, curves = fitting_data(table)  # the networks' features, walked once for every variant
    target = curves[:, -1]
    extra = np.array([time_receptive_field(g) for g in table.genomes(rows)])
    all_runs = [run_error_curves(r) for r in rows]
    weights = np.array([len(r) for r in all_runs], float)
    runs = [r[:, curves.shape[1] - 1] for r in all_runs]  # each run's final error
    repeated = [i for i, r in enumerate(runs) if len(r) >= 2]
    n_runs = min((len(runs[i]) for i in repeated), default=0)
    real = np.array([runs[i][:n_runs] for i in repeated])
    quality = real.mean(axis=1) if repeated else None
    scores: dict[str, Callable[..., float]] = {"spearman": lambda p, t: spearmanr(p, t).statistic,
                                               "top_spearman": top_spearman}
    predicted = {label: out_of_fold(X, curves, extra, weights, VARIANTS[label], trees, splits)
                 for label in ["default", *variants]}
    results = []
    for variant, p in predicted.items():
        result: dict[str, Any] = {"table": name, "variant": variant, "n": len(target)}
        for field, score in scores.items():
            result[field] = score(p, target)
            if variant != "default":
                result[f"{field}_gain_interval"] = bootstrap_interval(
                    lambda a, b, t, score=score: score(a, t) - score(b, t), p, predicted["default"], target)
        if len(repeated) >= MIN_REPEATED:
            def vs_run(a, q, *columns):  # against one real run, averaged over the runs
                return float(np.mean([top_spearman(a, c, q) for c in columns]))
            result["repeated"] = len(repeated)
            result["vs_run_top_spearman"] = vs_run(p[repeated], quality, *real.T)
            if variant != "default":
                result["vs_run_top_spearman_gain_interval"] = bootstrap_interval(
                    lambda a, b, q, *columns: vs_run(a, q, *columns) - vs_run(b, q, *columns),
                    p[repeated], predicted["default"][repeated], quality, *real.T)
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def cell(result: dict[str, Any], default: dict[str, Any], field: str) -> str:
    if field not in result:
        return "-"
    if f"{field}_gain_interval" not in result:
        return f"{result[field]:.3f}"
    return "{:.3f} ({:+.3f} [{:+.3f}, {:+.3f}])".format(result[field], result[field] - default[field],
                                                        *result[f"{field}_gain_interval"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="builtin,fsdd,speech_commands_12", help="comma-separated table names")
    parser.add_argument("--trees", type=int, default=300, help="boosting iterations (forest trees) per model")
    parser.add_argument("--splits", type=int, default=3, help="shuffles of the 5 folds, predictions averaged")
    parser.add_argument("--variants", default=",".join(list(VARIANTS)[1:]),
                        help="comma-separated variants compared with the default (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "surrogate_inputs")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v != "default"]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variant(s) {', '.join(unknown)}: give some of {', '.join(VARIANTS)}")
    command = shlex.join(["python", "benchmarks/surrogate_inputs.py", *sys.argv[1:]])
    results = [r for name in args.tables.split(",") for r in compare(name, args.trees, args.splits, variants)]
    fields = ("spearman", "top_spearman", "vs_run_top_spearman")
    lines = [f"`{command}`", "", f"Run {datetime.date.today().isoformat()} on {hardware_fingerprint()}; "
             f"out-of-fold predictions averaged over {args.splits} shuffles of 5 folds; in brackets the "
             "difference to the default with its paired bootstrap 95% interval over the architectures.", "",
             "| table | variant | n | Spearman | best-quartile Spearman | best quartile vs a real run (repeated) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        default = next(d for d in results if d["table"] == r["table"] and d["variant"] == "default")
        lines.append(f"| {r['table']} | {r['variant']} | {r['n']} | "
                     + " | ".join(cell(r, default, f) for f in fields) + " |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "splits": args.splits,
                                                          "trees": args.trees, "results": results}, indent=1))


if __name__ == "__main__":
    main()
