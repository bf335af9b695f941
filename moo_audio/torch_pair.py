"""torchaudio, imported through a check that it loads with the installed torch.

torchaudio's compiled library is built against one torch release. A pair that does not match (e.g.
torchaudio 2.11.1 beside torch 2.11.0, or torchaudio 2.11 beside torch 2.13) fails deep inside
``import torchaudio`` with an undefined symbol. :func:`import_torchaudio` turns that into one line
naming both installed versions and the pair moo-audio pins, read from the installed package's own
requirements (``pyproject.toml`` is the one place the pins are written).
"""

from __future__ import annotations

import re
from importlib import import_module, metadata
from types import ModuleType

DISTRIBUTION = "moo-audio"


class TorchPairError(ImportError):
    """torch and torchaudio are installed but do not load together; the message says what to install."""


def pinned_pair() -> list[str]:
    """moo-audio's requirements on torch and torchaudio, e.g. ``["torch==2.11.0", "torchaudio==2.11.0"]``
    (empty when moo-audio is not installed, e.g. imported from a bare source tree)."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    return [r.replace(" ", "") for r in requires
            if re.match(r"torch(audio)?\s*[=<>!~]", r) and "extra" not in r]


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def mismatch_message(error: BaseException) -> str:
    """One line: what failed, both installed versions and the command that installs the pinned pair."""
    cause = error.__cause__ or error
    reason = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    pins = pinned_pair() or ["torch==<a release>", "torchaudio==<the same release>"]
    return (f"torchaudio {_installed('torchaudio')} does not load with torch {_installed('torch')} "
            f"({reason[:160]}); install the pair moo-audio is tested with: "
            f"pip install {' '.join(pins)}")


def import_torchaudio() -> ModuleType:
    """``import torchaudio``, or :class:`TorchPairError` with :func:`mismatch_message`."""
    try:
        return import_module("torchaudio")
    except (OSError, ImportError) as error:
        raise TorchPairError(mismatch_message(error)) from None
