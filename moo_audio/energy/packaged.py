"""The energy models that ship with moo_audio: energy measured on hardware, fitted on first use.

A packaged model is a measurements table (``models/<name>.csv.gz``: one setup — method, device
profile, hardware, runtime, dtype, threads, timing statistic) and its provenance (``models/<name>.json``:
date, host, runtime and its version, timing settings, the spaces the networks were sampled from and
how far each feature ranges, the forest's parameters and its cross-validated accuracy). The
:class:`~moo_audio.energy.forest.ForestEnergyModel` is fitted on the table the first time it is asked
for (deterministically: the forest's random state is fixed) and cached under the user cache; the
table, not a pickle, is what ships, because a scikit-learn pickle is tied to one scikit-learn version
and a 300-tree forest weighs megabytes where its table weighs kilobytes.

``default_model()`` is the energy model of every search that names none.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

#: the packaged models by name
PACKAGED = ("onnxruntime-int8",)
#: the energy model of searches that name none
DEFAULT_MODEL = "onnxruntime-int8"


def _files(name: str) -> tuple[Path, Path]:
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged energy model {name!r}; expected one of {PACKAGED}")
    folder = Path(str(resources.files("moo_audio") / "energy" / "models"))
    return folder / f"{name}.csv.gz", folder / f"{name}.json"


def provenance(name: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Where and how a packaged model's energies were measured."""
    return json.loads(_files(name)[1].read_text())


def table_sha256(name: str = DEFAULT_MODEL) -> str:
    return hashlib.sha256(_files(name)[0].read_bytes()).hexdigest()


def _cache_root() -> Path:
    base = os.environ.get("MOO_AUDIO_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "moo_audio") / "energy"


def packaged_measurements(name: str = DEFAULT_MODEL) -> list:
    """The measured networks of the packaged model ``name``: its table's
    :class:`~moo_audio.energy.records.Measurement` s."""
    from moo_audio.energy.records import read_measurements

    return read_measurements(_files(name)[0])


@cache
def load_packaged(name: str = DEFAULT_MODEL, base: str | None = None):
    """The packaged forest ``name``: read from the user cache, else fitted on its table and cached.

    ``base``: the linear base (:data:`~moo_audio.energy.features.BASES`) to fit the table with;
    ``None``, the one its provenance names (whose cross-validated accuracy it records; another
    base is cross-validated when first fitted).
    """
    import sklearn

    from moo_audio.energy.features import BASES
    from moo_audio.energy.forest import MATRIX_COLUMNS, AccuracyReport, ForestEnergyModel, fit_measurements

    info = provenance(name)
    params = info["forest_params"]
    as_packaged = base is None or base == params["base"]
    if not as_packaged and base not in BASES:
        raise ValueError(f"unknown base {base!r} for packaged energy model {name!r}; expected one of "
                         f"{[b for b in BASES if b]}")
    base = params["base"] if as_packaged else base
    # keyed by the table, the base, the feature and term lists and scikit-learn: a change to any needs a refit
    columns = hashlib.sha256("\n".join(MATRIX_COLUMNS).encode()).hexdigest()[:8]
    cached = _cache_root() / (f"{name}-{table_sha256(name)[:12]}-{base}-{columns}-"
                              f"sklearn{sklearn.__version__}.joblib")
    if cached.is_file():
        model = ForestEnergyModel.load(cached)
    else:
        model = fit_measurements(packaged_measurements(name), folds=0 if as_packaged else 5,
                                 **{**params, "base": base})
        if as_packaged:
            model.cv_report = AccuracyReport(**info["cv_report"])
        cached.parent.mkdir(parents=True, exist_ok=True)
        # saved beside the cache and moved in, the sidecar first: a search's workers fitting at
        # once never read a half-written file
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            staged = model.save(Path(tmp) / cached.name)
            os.replace(f"{staged}.json", f"{cached}.json")
            os.replace(staged, cached)
    model.packaged = name
    return model


def default_model():
    """The energy model of searches that name none: the packaged :data:`DEFAULT_MODEL`."""
    return load_packaged(DEFAULT_MODEL)
