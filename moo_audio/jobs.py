"""Training jobs: everything a worker needs to train one candidate, and what it sends back.

:class:`TrainJob` is small and picklable (genome, seed, budget, stopping rules and the curve history
they compare with, threads, device); the features travel beside it (in this process as a
:class:`~moo_audio.data.FeatureSet`, on Dask as a scattered copy, see :mod:`moo_audio.parallel`).
:func:`train_job` runs on the worker and returns a :class:`~moo_audio.training.TrainResult`;
:func:`evaluation_row` turns it into the row the problem and the run store keep.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from moo_audio.augment import FeatureAugmenter
from moo_audio.data import FeatureSet
from moo_audio.data.features import LOG_OFFSET
from moo_audio.nets import AudioNet, build
from moo_audio.space import Genome
from moo_audio.training import CurveHistory, TrainBudget, TrainData, TrainResult, stopping_rules, train_candidate

#: called after each epoch with ``(epoch, validation accuracy)``
EpochCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class TrainJob:
    """One candidate's training, minus its features (they travel beside the job)."""

    genome: Genome
    seed: int
    budget: TrainBudget
    rules: tuple[str, ...]
    history: tuple[tuple[float, ...], ...]
    threads: int
    device: str = "cpu"
    keep_weights: bool = False  # return the best epoch's weights with the result (final evaluation)
    fold: tuple[int, int] | None = None  # (i, k): train and validate on fold i of k speaker-grouped folds


def training_seed(genome: Genome, seed: int) -> int:
    """Seed of a candidate's training: a function of the genome, not of the worker or order."""
    digest = hashlib.blake2b(f"{seed}:{genome.key}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


def augmenter(budget: TrainBudget, features: FeatureSet) -> FeatureAugmenter | None:
    """The budget's augmentation of training batches of ``features`` (``None`` without one)."""
    if budget.augment is None:
        return None
    return FeatureAugmenter(budget.augment, features.mean, features.std, features.noise,
                            features.frontend.hop_ms, LOG_OFFSET)


def train_model(job: TrainJob, features: FeatureSet,
                on_epoch: EpochCallback | None = None) -> tuple[AudioNet, TrainResult]:
    """Train one candidate on the train split, choosing its epoch on the validation split: the module
    (restored to its best validation epoch) and the result. The test split is never read here."""
    x_train, y_train = features.split("train")
    x_val, y_val = features.split("val")
    if job.fold is not None:
        x_train, y_train, x_val, y_val = fold_split(features, *job.fold)
    data = TrainData(x_train, y_train, x_val, y_val, n_classes=features.n_classes)
    torch.manual_seed(job.seed)
    model = build(job.genome).to(job.device)
    result = train_candidate(model, data, job.genome.frontend.input_shape, job.budget,
                             stopping_rules(job.rules, CurveHistory(job.history)), seed=job.seed,
                             threads=job.threads, on_epoch=on_epoch, augment=augmenter(job.budget, features))
    return model, result


def fold_split(features: FeatureSet, fold: int, folds: int):
    """Fold ``fold`` of ``folds`` speaker-grouped folds over the train and validation splits pooled
    (scikit-learn's ``GroupKFold``; examples without a group are groups of their own): ``(x_train,
    y_train, x_val, y_val)``. The test split takes no part."""
    from sklearn.model_selection import GroupKFold

    if features.groups is None:
        raise ValueError("speaker-grouped folds need a dataset with groups (speakers); this one has none")
    x = torch.cat([features.x["train"], features.x["val"]])
    y = torch.cat([features.y["train"], features.y["val"]])
    groups = np.concatenate([features.groups["train"], features.groups["val"]])
    groups = np.array([g if g else f"#{i}" for i, g in enumerate(groups)], dtype=object)
    if len(set(groups)) < folds:
        raise ValueError(f"{folds} folds need at least {folds} groups (speakers); the data has {len(set(groups))}")
    train, val = list(GroupKFold(n_splits=folds).split(x, y, groups))[fold]
    train, val = torch.from_numpy(train), torch.from_numpy(val)
    return x[train], y[train], x[val], y[val]


def fold_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One candidate's evaluation row from its folds' rows: the mean validation accuracy (and curves,
    to the shortest fold), the folds' accuracies as ``fold_val_accuracies``; failed if a fold failed."""
    failed = [r for r in rows if r["failed"]]
    if failed:
        return {**failed[0], "fold_val_accuracies": [r["val_accuracy"] for r in rows]}
    epochs = min(r["epochs"] for r in rows)
    reasons = {r["stop_reason"] for r in rows}
    return {"val_accuracy": float(np.mean([r["val_accuracy"] for r in rows])), "test_accuracy": float("nan"),
            "curve": np.mean([r["curve"][:epochs] for r in rows], axis=0).tolist(),
            "train_loss": np.mean([r["train_loss"][:epochs] for r in rows], axis=0).tolist(),
            "epochs": epochs, "stop_reason": reasons.pop() if len(reasons) == 1 else "mixed",
            "seconds": float(sum(r["seconds"] for r in rows)),
            "cpu_seconds": float(sum(r.get("cpu_seconds", math.nan) for r in rows)),
            "failed": False, "failure_reason": None,
            "fold_val_accuracies": [r["val_accuracy"] for r in rows]}


def train_job(job: TrainJob, features: FeatureSet, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train one candidate (runs on the worker); with ``job.keep_weights`` the result carries them."""
    model, result = train_model(job, features, on_epoch)
    if job.keep_weights and not result.failed:
        result.weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return result


def evaluation_row(result: TrainResult) -> dict[str, Any]:
    """A training result as one evaluation row; failed runs get the worst error (a finite penalty)."""
    row = result.to_dict()
    if result.failed:
        row["val_accuracy"] = 0.0
    return row

