"""The in-memory dataset every loader returns, its split rule and its fingerprint."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from moo_audio.data.audio_io import n_samples_of

SPLITS = ("train", "val", "test")
EVAL_FRACTION = 0.2  # of each class, for val and for test alike
_HEX = re.compile(r"[0-9a-f]+")


@dataclass
class AudioDataset:
    """Fixed-length mono clips with integer labels and a train/val/test split.

    Args:
        name: loader name (``"builtin"``, ``"fsdd"``, ...).
        waveforms: float32 ``[N, n_samples]`` at ``sample_rate``, ``n_samples = sample_rate *
            clip_ms // 1000``.
        labels: int64 ``[N]`` indices into ``class_names``.
        class_names: one name per class.
        sample_rate: Hz.
        clip_ms: clip length in milliseconds.
        splits: ``"train"``, ``"val"``, ``"test"`` -> sorted, disjoint index arrays.
        fingerprint: hex cache key; ``""`` computes it from the content.
        groups: the group of each example (e.g. its speaker, ``""`` for none), for group-wise
            validation folds; ``None`` when the dataset has no groups.
        noise: background-noise segments ``[S, n_samples]`` at ``sample_rate`` for augmentation
            (e.g. Speech Commands' ``_background_noise_``); ``None``: none of its own.

    Raises ``ValueError`` naming the problem: shapes or dtypes that disagree, NaN/inf samples,
    bad splits, or a class without a training example.
    """

    name: str
    waveforms: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    class_names: list[str]
    sample_rate: int
    clip_ms: int
    splits: dict[str, np.ndarray] = field(repr=False)
    fingerprint: str = ""
    groups: np.ndarray | None = field(default=None, repr=False)
    noise: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"dataset name must be a non-empty string, got {self.name!r}")
        self.class_names = list(self.class_names)
        if len(self.class_names) < 2:
            raise ValueError(f"dataset {self.name!r}: needs at least 2 classes, got {self.class_names}")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"dataset {self.name!r}: duplicate class names in {self.class_names}")
        n = self._check_tensors()
        self.splits = _checked_splits(self.splits, n, self.name)
        if self.groups is not None:
            self.groups = np.asarray(self.groups, dtype=object)
            if self.groups.shape != (n,):
                raise ValueError(f"dataset {self.name!r}: {len(self.groups)} groups for {n} examples")
        if self.noise is not None and (not isinstance(self.noise, torch.Tensor) or self.noise.ndim != 2
                                       or self.noise.shape[1] != self.n_samples or self.noise.dtype != torch.float32):
            raise ValueError(f"dataset {self.name!r}: noise must be float32 [segments, {self.n_samples}], "
                             f"got {_describe(self.noise)}")
        train_counts = np.bincount(self.labels.numpy()[self.splits["train"]], minlength=self.n_classes)
        empty = [self.class_names[c] for c in np.flatnonzero(train_counts == 0)]
        if empty:
            raise ValueError(f"dataset {self.name!r}: class(es) {empty} have no example in the train split")
        if not self.fingerprint:
            self.fingerprint = content_fingerprint(self.name, self.waveforms, self.labels, self.class_names,
                                                   self.sample_rate, self.clip_ms, self.splits,
                                                   groups=self.groups, noise=self.noise)
        elif not isinstance(self.fingerprint, str) or not _HEX.fullmatch(self.fingerprint):
            raise ValueError(f"dataset {self.name!r}: fingerprint must be a lowercase hex string, "
                             f"got {self.fingerprint!r}")

    def _check_tensors(self) -> int:
        w, y = self.waveforms, self.labels
        if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.dtype != torch.float32:
            raise ValueError(f"dataset {self.name!r}: waveforms must be a float32 tensor [N, n_samples], "
                             f"got {_describe(w)}")
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.dtype != torch.int64:
            raise ValueError(f"dataset {self.name!r}: labels must be an int64 tensor [N], got {_describe(y)}")
        if len(y) != len(w):
            raise ValueError(f"dataset {self.name!r}: {len(w)} waveforms but {len(y)} labels")
        if len(w) == 0:
            raise ValueError(f"dataset {self.name!r}: no examples")
        for attr in ("sample_rate", "clip_ms"):
            value = getattr(self, attr)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"dataset {self.name!r}: {attr} must be a positive integer, got {value!r}")
        expected = n_samples_of(self.sample_rate, self.clip_ms)
        if w.shape[1] != expected:
            raise ValueError(f"dataset {self.name!r}: waveforms have {w.shape[1]} samples, but "
                             f"{self.clip_ms} ms at {self.sample_rate} Hz is {expected}")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"dataset {self.name!r}: labels must lie in [0, {self.n_classes}), "
                             f"got range [{int(y.min())}, {int(y.max())}]")
        bad = (~torch.isfinite(w)).any(dim=1).nonzero().flatten()
        if len(bad):
            raise ValueError(f"dataset {self.name!r}: NaN or infinite samples in example(s) "
                             f"{bad[:10].tolist()}")
        return len(w)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_samples(self) -> int:
        return self.waveforms.shape[1]


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def _checked_splits(splits: Mapping[str, Any], n: int, name: str) -> dict[str, np.ndarray]:
    if not isinstance(splits, Mapping) or set(splits) != set(SPLITS):
        keys = sorted(splits) if isinstance(splits, Mapping) else type(splits).__name__
        raise ValueError(f"dataset {name!r}: splits must have exactly the keys {SPLITS}, got {keys}")
    out = {}
    for key in SPLITS:
        idx = np.asarray(splits[key])
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"dataset {name!r}: split {key!r} must be a 1-D integer array")
        idx = idx.astype(np.int64)
        if idx.size == 0:
            raise ValueError(f"dataset {name!r}: split {key!r} is empty")
        if np.any(np.diff(idx) <= 0):
            raise ValueError(f"dataset {name!r}: split {key!r} must be sorted without repeats")
        if idx[0] < 0 or idx[-1] >= n:
            raise ValueError(f"dataset {name!r}: split {key!r} has indices outside [0, {n})")
        out[key] = idx
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            shared = np.intersect1d(out[a], out[b])
            if shared.size:
                raise ValueError(f"dataset {name!r}: splits {a!r} and {b!r} share example(s) "
                                 f"{shared[:10].tolist()}")
    return out


def stratified_split(labels: np.ndarray | torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """Deterministic 60/20/20 train/val/test split, stratified by label.

    Each class is shuffled with ``seed``; a class with ``k`` examples puts ``round(0.2 k)`` in
    val, as many in test and the rest in train (a class of one or two examples stays wholly in
    train). Written by hand because scikit-learn's
    ``train_test_split(stratify=...)`` refuses classes with fewer than two members.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = n_test = round(EVAL_FRACTION * len(idx))
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {s: np.sort(np.concatenate(parts[s])).astype(np.int64) for s in SPLITS}


def content_fingerprint(
    name: str,
    waveforms: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    sample_rate: int,
    clip_ms: int,
    splits: Mapping[str, np.ndarray],
    options: Mapping[str, Any] | None = None,
    groups: np.ndarray | None = None,
    noise: torch.Tensor | None = None,
) -> str:
    """Hex digest of a dataset's content (groups and noise included), its name and the loader ``options``."""
    h = hashlib.blake2b(digest_size=16)
    meta = {"name": name, "class_names": list(class_names), "sample_rate": int(sample_rate),
            "clip_ms": int(clip_ms), "options": dict(options or {})}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(waveforms.numpy()).data)
    h.update(np.ascontiguousarray(labels.numpy()).data)
    for key in SPLITS:
        h.update(key.encode())
        h.update(np.ascontiguousarray(splits[key], dtype=np.int64).data)
    if groups is not None:
        h.update("\0".join(map(str, groups)).encode())
    if noise is not None:
        h.update(np.ascontiguousarray(noise.numpy()).data)
    return h.hexdigest()


def make_dataset(
    name: str,
    waveforms: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    sample_rate: int,
    clip_ms: int,
    splits: Mapping[str, np.ndarray],
    options: Mapping[str, Any],
    groups: np.ndarray | None = None,
    noise: torch.Tensor | None = None,
) -> AudioDataset:
    """A validated :class:`AudioDataset` whose fingerprint also covers the loader ``options``."""
    key = content_fingerprint(name, waveforms, labels, class_names, sample_rate, clip_ms, splits, options,
                              groups, noise)
    return AudioDataset(name, waveforms, labels, list(class_names), sample_rate, clip_ms,
                        dict(splits), key, groups, noise)
