"""Decode audio files into fixed-length mono clips; bad files are reported by name.

Every loader goes through :func:`load_clips`: ``soundfile`` decodes (torchaudio 2.11's ``load``
needs torchcodec/ffmpeg, which moo_audio does not use), channels are averaged, the clip is
resampled with :func:`torchaudio.functional.resample` and centre-cropped or zero-padded by
:func:`fit_length`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from moo_audio.torch_pair import import_torchaudio

torchaudio = import_torchaudio()

AUDIO_SUFFIXES = (".wav", ".flac")
ON_ERROR = ("warn", "raise")


class SkippedFileWarning(UserWarning):
    """Some audio files were skipped; the message names each one and why."""


class BadFiles:
    """Applies the ``on_error`` policy to bad files.

    ``"raise"``: :meth:`add` raises a ``ValueError`` with the message (which names the file).
    ``"warn"``: messages are collected and, when the ``with`` block ends (also by an exception,
    which the skipped files may explain), one :class:`SkippedFileWarning` lists every one.
    """

    def __init__(self, on_error: str):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        if self.on_error == "raise":
            raise ValueError(message)
        self.messages.append(message)

    def __enter__(self) -> BadFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.messages:
            warnings.warn(
                f"skipped {len(self.messages)} file(s):\n  " + "\n  ".join(self.messages),
                SkippedFileWarning,
                stacklevel=3,
            )


def n_samples_of(sample_rate: int, clip_ms: int) -> int:
    """Samples in a clip of ``clip_ms`` milliseconds (the same rounding as ``FrontEnd``)."""
    return sample_rate * clip_ms // 1000


def check_rate_and_clip(sample_rate: int, clip_ms: int) -> None:
    for name, value in (("sample_rate", sample_rate), ("clip_ms", clip_ms)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def fit_length(x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Centre-crop or symmetrically zero-pad the last dimension to ``n_samples``."""
    length = x.shape[-1]
    if length > n_samples:
        start = (length - n_samples) // 2
        return x[..., start:start + n_samples]
    if length < n_samples:
        left = (n_samples - length) // 2
        return torch.nn.functional.pad(x, (left, n_samples - length - left))
    return x


def read_clip(path: str | Path, sample_rate: int, n_samples: int) -> torch.Tensor:
    """One file -> float32 mono tensor ``[n_samples]`` at ``sample_rate`` (see :func:`read_audio`)."""
    return fit_length(read_audio(path, sample_rate), n_samples).contiguous()


def read_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """One whole file -> float32 mono tensor at ``sample_rate``.

    Raises ``ValueError`` naming the file if it is missing, cannot be decoded, has no samples
    or holds NaN/inf samples. A different sample rate is resampled, not an error.
    """
    if not Path(path).is_file():
        raise ValueError(f"{path}: file not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise ValueError(f"{path}: cannot decode audio ({err})") from err
    if data.shape[0] == 0:
        raise ValueError(f"{path}: empty audio file (zero samples)")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: contains NaN or infinite samples")
    x = torch.from_numpy(data).mean(dim=1)
    if rate != sample_rate:
        x = torchaudio.functional.resample(x, rate, sample_rate)
    return x


def load_clips(
    paths: Sequence[str | Path], sample_rate: int, clip_ms: int, bad: BadFiles
) -> tuple[torch.Tensor, list[int]]:
    """Decode ``paths`` -> (``[n_ok, n_samples]`` float32, indices of the decoded paths).

    Undecodable files go to ``bad`` (raise or skip-and-warn).
    """
    n_samples = n_samples_of(sample_rate, clip_ms)
    clips, kept = [], []
    for i, path in enumerate(paths):
        try:
            clips.append(read_clip(path, sample_rate, n_samples))
        except ValueError as err:
            bad.add(str(err))
            continue
        kept.append(i)
    if not clips:
        return torch.zeros((0, n_samples), dtype=torch.float32), kept
    return torch.stack(clips), kept


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError`` naming it if it is not a folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
