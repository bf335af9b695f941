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

import gzip
import hashlib
import json
import os
import tempfile
from functools import lru_cache
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


@lru_cache(maxsize=len(PACKAGED))
def load_packaged(name: str = DEFAULT_MODEL):
    """The packaged forest ``name``: read from the user cache, else fitted on its table and cached."""
    import sklearn

    from moo_audio.energy.forest import AccuracyReport, ForestEnergyModel, fit_measurements
    from moo_audio.energy.records import read_measurements

    table, _ = _files(name)
    info = provenance(name)
    cached = _cache_root() / f"{name}-{table_sha256(name)[:12]}-sklearn{sklearn.__version__}.joblib"
    if cached.is_file():
        model = ForestEnergyModel.load(cached)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "measurements.csv"
            csv.write_bytes(gzip.decompress(table.read_bytes()))
            records = read_measurements(csv)
        model = fit_measurements(records, folds=0, **info["forest_params"])
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
