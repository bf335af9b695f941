"""Log-mel features, standardised with the train split, cached on disk and in memory.

Features depend on the dataset (its fingerprint) and on the front end's
:meth:`~moo_audio.space.FrontEnd.feature_key` only: the ``2d``/``1d`` representation merely
reshapes them in the network, so every candidate that shares a key shares one tensor.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_audio.augment import coloured_noise
from moo_audio.data.audio_io import fit_length
from moo_audio.data.dataset import SPLITS, AudioDataset
from moo_audio.space import FrontEnd
from moo_audio.torch_pair import import_torchaudio

torchaudio = import_torchaudio()

LOG_OFFSET = 1e-6
#: segments of generated coloured noise for datasets without noise recordings of their own
GENERATED_NOISE_SEGMENTS = 64
_BATCH = 512  # clips per STFT batch, bounds peak memory
_FORMAT = 2  # version of the cache file layout


class CorruptCacheWarning(UserWarning):
    """A cache file was unreadable or inconsistent and has been recomputed."""


def logmel_settings(frontend: FrontEnd) -> dict[str, Any]:
    """Everything that turns a clip into the network's input: torchaudio ``MelSpectrogram``'s
    arguments, then ``log(x + log_offset)`` (what an exported model's ``preprocessing.json`` states)."""
    return {"sample_rate": frontend.sample_rate, "n_fft": frontend.n_fft, "win_length": frontend.win_length,
            "hop_length": frontend.hop_length, "n_mels": frontend.n_mels, "center": True, "power": 2.0,
            "log_offset": LOG_OFFSET}


def log_mel(waveforms: torch.Tensor, frontend: FrontEnd) -> torch.Tensor:
    """``[N, S]`` waveforms at ``frontend.sample_rate`` -> ``[N, n_mels, n_frames]`` log-mel.

    The clip is first centre-cropped or zero-padded to ``frontend.clip_ms``, then turned into a
    log-mel as :func:`logmel_settings` says.
    """
    if waveforms.ndim != 2:
        raise ValueError(f"log_mel expects waveforms [N, samples], got shape {tuple(waveforms.shape)}")
    settings = logmel_settings(frontend)
    offset = settings.pop("log_offset")
    mel = torchaudio.transforms.MelSpectrogram(**settings)
    x = fit_length(waveforms.float(), frontend.n_samples)
    with torch.no_grad():
        out = torch.cat([torch.log(mel(b) + offset) for b in x.split(_BATCH)]) if len(x) else \
            torch.zeros((0, frontend.n_mels, frontend.n_frames))
    assert out.shape[1:] == (frontend.n_mels, frontend.n_frames), (
        f"log-mel shape {tuple(out.shape[1:])} != front end's {(frontend.n_mels, frontend.n_frames)}")
    return out


class HeldOutError(ValueError):
    """The test split was asked for where it is held out (a search, a selection)."""


@dataclass
class FeatureSet:
    """Standardised log-mel features of one dataset under one front end.

    ``x[split]`` is float32 ``[n, n_mels, n_frames]``, standardised as ``(log_mel - mean) / std``
    with the train split's global ``mean`` and ``std``; ``y[split]`` is int64 ``[n]``; ``groups[split]``
    the speaker (or other group) of each example where the dataset has them. ``noise`` holds log-mel
    segments of background noise (not standardised) for augmentation. A set made by
    :meth:`held_out` has no test split: asking for it raises :class:`HeldOutError`.
    """

    x: dict[str, torch.Tensor] = field(repr=False)
    y: dict[str, torch.Tensor] = field(repr=False)
    class_names: list[str]
    frontend: FrontEnd
    mean: float
    std: float
    dataset_fingerprint: str
    noise: torch.Tensor | None = field(default=None, repr=False)
    groups: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self):
        splits = tuple(s for s in SPLITS if s in self.x)
        if splits not in (SPLITS, SPLITS[:2]) or set(self.y) != set(splits):
            raise ValueError(f"feature set needs x and y for the splits {SPLITS} (or without test)")
        shape = (self.frontend.n_mels, self.frontend.n_frames)
        for s in splits:
            x, y = self.x[s], self.y[s]
            if x.dtype != torch.float32 or x.ndim != 3 or tuple(x.shape[1:]) != shape:
                raise ValueError(f"feature set: x[{s!r}] must be float32 [n, {shape[0]}, {shape[1]}], "
                                 f"got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise ValueError(f"feature set: y[{s!r}] must be int64 [{len(x)}], "
                                 f"got {y.dtype} {tuple(y.shape)}")

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the ``"train"``, ``"val"`` or ``"test"`` split."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        if name not in self.x:
            raise HeldOutError("the test split is held out: searches and selection read the train and "
                               "validation splits only; the test split is read once, by the final "
                               "evaluation (moo-audio evaluate)")
        return self.x[name], self.y[name]

    def held_out(self) -> FeatureSet:
        """The same features without the test split (what a search trains and selects on)."""
        keep = SPLITS[:2]
        return replace(self, x={s: self.x[s] for s in keep}, y={s: self.y[s] for s in keep},
                       groups=None if self.groups is None else {s: self.groups[s] for s in keep})

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def compute_features(dataset: AudioDataset, frontend: FrontEnd) -> FeatureSet:
    """Log-mel of every split of ``dataset``, standardised with train statistics."""
    if frontend.sample_rate != dataset.sample_rate:
        raise ValueError(f"front end sample rate {frontend.sample_rate} Hz differs from dataset "
                         f"{dataset.name!r} sample rate {dataset.sample_rate} Hz")
    feats = log_mel(dataset.waveforms, frontend)
    train = feats[torch.from_numpy(dataset.splits["train"])]
    mean, std = float(train.mean()), float(train.std())
    if not std > 0:
        raise ValueError(f"dataset {dataset.name!r}: train log-mel features are constant (std={std}); "
                         "cannot standardise")
    feats = (feats - mean) / std
    x, y = {}, {}
    for s in SPLITS:
        idx = torch.from_numpy(dataset.splits[s])
        x[s], y[s] = feats[idx], dataset.labels[idx]  # indexing copies
    groups = None if dataset.groups is None else {s: dataset.groups[dataset.splits[s]] for s in SPLITS}
    noise = dataset.noise if dataset.noise is not None else coloured_noise(
        GENERATED_NOISE_SEGMENTS, dataset.n_samples, dataset.sample_rate)
    return FeatureSet(x, y, list(dataset.class_names), frontend, mean, std, dataset.fingerprint,
                      noise=log_mel(noise, frontend), groups=groups)


def default_cache_root() -> Path:
    """``$MOO_AUDIO_CACHE/features`` if that variable is set, else ``~/.cache/moo_audio/features``."""
    base = os.environ.get("MOO_AUDIO_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "moo_audio") / "features"


class FeatureCache:
    """Features computed once per ``(dataset.fingerprint, frontend.feature_key())``.

    Kept in memory and, under ``root`` (default :func:`default_cache_root`), on disk as
    ``torch.save`` files written atomically (temporary file + ``os.replace``) and read with
    ``weights_only=True``. Each file stores a digest of its tensors; a file that cannot be read
    or does not match is recomputed with a :class:`CorruptCacheWarning`. Returned tensors are
    shared by every caller: treat them as read-only.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()
        self._memory: dict[tuple, FeatureSet] = {}

    def path(self, dataset: AudioDataset, frontend: FrontEnd) -> Path:
        key = "_".join(str(v) for v in frontend.feature_key())
        return self.root / f"{dataset.fingerprint}-{key}.pt"

    def get(self, dataset: AudioDataset, frontend: FrontEnd) -> FeatureSet:
        """The features of ``dataset`` under ``frontend`` (memory, then disk, then computed)."""
        key = (dataset.fingerprint, frontend.feature_key())
        if key not in self._memory:
            path = self.path(dataset, frontend)
            features = self._read(path, dataset, frontend) if path.exists() else None
            if features is None:
                features = compute_features(dataset, frontend)
                self._write(path, features)
            self._memory[key] = features
        return replace(self._memory[key], frontend=frontend)

    @staticmethod
    def load_file(path: str | Path) -> FeatureSet:
        """Read one cache file on its own (e.g. in a worker that was sent only the path).

        The front end is rebuilt from the stored feature key, with representation ``"2d"``.
        Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming it if it cannot
        be read or fails its digest.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature cache file not found: {path}")
        try:
            blob = torch.load(path, weights_only=True)
            if blob.get("format") != _FORMAT:
                raise ValueError(f"written in cache format {blob.get('format')!r}, this version reads {_FORMAT}")
            if blob.get("digest") != _digest(blob):
                raise ValueError("content does not match its stored digest")
            groups = None if blob["groups"] is None else {s: np.asarray(g, dtype=object)
                                                          for s, g in blob["groups"].items()}
            return FeatureSet(blob["x"], blob["y"], list(blob["class_names"]), FrontEnd(*blob["feature_key"]),
                              float(blob["mean"]), float(blob["std"]), blob["dataset_fingerprint"],
                              noise=blob["noise"], groups=groups)
        except Exception as err:  # noqa: BLE001 - any failure to read back means a corrupt file
            raise ValueError(f"feature cache file {path} is corrupt ({type(err).__name__}: {err})") from err

    def _read(self, path: Path, dataset: AudioDataset, frontend: FrontEnd) -> FeatureSet | None:
        """The file's features if it is sound and belongs to ``dataset`` and ``frontend``; else
        ``None`` after a :class:`CorruptCacheWarning`."""
        try:
            features = self.load_file(path)
            if features.dataset_fingerprint != dataset.fingerprint or \
                    features.frontend.feature_key() != frontend.feature_key():
                raise ValueError(f"feature cache file {path} was written for another dataset or front end")
            sizes = {s: (len(features.y[s]), len(dataset.splits[s])) for s in SPLITS}
            if any(a != b for a, b in sizes.values()):
                raise ValueError(f"feature cache file {path} has split sizes {sizes} (file, dataset)")
        except ValueError as err:
            warnings.warn(f"{err}; recomputing it", CorruptCacheWarning, stacklevel=3)
            return None
        return features

    def _write(self, path: Path, features: FeatureSet) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"format": _FORMAT, "dataset_fingerprint": features.dataset_fingerprint,
                "feature_key": list(features.frontend.feature_key()), "x": features.x,
                "y": features.y, "class_names": features.class_names,
                "mean": features.mean, "std": features.std, "noise": features.noise,
                "groups": None if features.groups is None else {s: [str(v) for v in g]
                                                                for s, g in features.groups.items()}}
        blob["digest"] = _digest(blob)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(blob, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _digest(blob: dict) -> str:
    """Digest of everything in a cache blob except the digest itself."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr([blob["format"], blob["dataset_fingerprint"], list(blob["feature_key"]),
                   list(blob["class_names"]), float(blob["mean"]), float(blob["std"]), blob["groups"]]).encode())
    if blob["noise"] is not None:
        h.update(blob["noise"].contiguous().numpy().data)
    for s in SPLITS:
        for t in (blob["x"][s], blob["y"][s]):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.contiguous().numpy().data)
    return h.hexdigest()
