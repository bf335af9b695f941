"""Random-forest energy model fitted on measured energy per inference.

A scikit-learn ``RandomForestRegressor`` maps the features of :mod:`moo_audio.energy.features`
to ``log(energy_mj)``: energies span orders of magnitude and the error that matters is
relative. The prediction is ``exp`` of the forest's mean log-prediction (the geometric mean of
the trees); the spread is the standard deviation of the trees' predictions in mJ.

Saved as ``<path>`` (the estimator, joblib) plus ``<path>.json`` (metadata: feature list,
scikit-learn version, training setup, cross-validation report). Loading refuses a model whose
feature list differs from this version's and warns when scikit-learn's version differs.
Only load model files you trust: joblib files are pickles.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import joblib
import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.metrics import mean_absolute_percentage_error, r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted

from moo_audio.energy.features import FEATURE_NAMES, feature_matrix
from moo_audio.energy.records import Measurement, check_same_setup
from moo_audio.space import Genome


@dataclass(frozen=True)
class AccuracyReport:
    """How well predictions match measurements.

    ``mape`` is the mean absolute percentage error (a fraction), ``r2_log`` the R^2 of
    log-energy, ``within_10``/``within_20`` the shares of predictions within +/-10%/20%.
    """

    n: int
    mape: float
    r2_log: float
    within_10: float
    within_20: float

    def __str__(self) -> str:
        return (f"n={self.n}: MAPE {100 * self.mape:.1f}%, R^2(log) {self.r2_log:.3f}, "
                f"within +/-10% {100 * self.within_10:.0f}%, within +/-20% {100 * self.within_20:.0f}%")


def accuracy(measured: Sequence[float], predicted: Sequence[float]) -> AccuracyReport:
    """Compare predicted energies with measured ones (both positive)."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    if measured.shape != predicted.shape or measured.ndim != 1 or len(measured) < 2:
        raise ValueError("accuracy needs two equal-length vectors of at least 2 energies")
    relative = np.abs(predicted - measured) / measured
    return AccuracyReport(len(measured), float(mean_absolute_percentage_error(measured, predicted)),
                          float(r2_score(np.log(measured), np.log(predicted))),
                          float(np.mean(relative <= 0.10)), float(np.mean(relative <= 0.20)))


def _check_training_data(genomes: Sequence[Genome], energy_mj: Sequence[float]) -> np.ndarray:
    energy = np.asarray(energy_mj, dtype=float)
    if energy.ndim != 1 or len(energy) != len(genomes):
        raise ValueError(f"got {len(genomes)} genomes but energies of shape {energy.shape}")
    if len(energy) < 2:
        raise ValueError("a forest needs at least 2 measured networks")
    bad = np.flatnonzero(~(np.isfinite(energy) & (energy > 0)))
    if bad.size:
        raise ValueError(f"energy_mj[{bad[0]}] = {float(energy[bad[0]])!r}: energies must be finite and > 0")
    return energy


class ForestEnergyModel:
    """Energy per inference (mJ) predicted by a random forest on log-energy.

    Args:
        setup: where the training energies were measured (method, device profile, hardware,
            runtime, dtype, threads), kept as metadata.
        n_estimators, min_samples_leaf, random_state: passed to ``RandomForestRegressor``.
    """

    def __init__(self, setup: Mapping[str, str] | None = None, *, n_estimators: int = 300,
                 min_samples_leaf: int = 1, random_state: int = 0):
        self.setup = dict(setup or {})
        self.estimator = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                               random_state=random_state)
        self.n_train = 0
        self.cv_report: AccuracyReport | None = None

    @property
    def name(self) -> str:
        where = "/".join(self.setup[k] for k in ("device_profile", "dtype") if k in self.setup)
        return f"random-forest({where or 'unspecified setup'}, n={self.n_train})"

    def fit(self, genomes: Sequence[Genome], energy_mj: Sequence[float]) -> ForestEnergyModel:
        """Fit on measured energies; returns ``self``."""
        energy = _check_training_data(genomes, energy_mj)
        self.estimator.fit(feature_matrix(genomes), np.log(energy))
        self.n_train = len(energy)
        return self

    def cross_validate(self, genomes: Sequence[Genome], energy_mj: Sequence[float],
                       folds: int = 5, seed: int = 0) -> AccuracyReport:
        """k-fold cross-validated accuracy of this model's estimator; stored as ``cv_report``."""
        energy = _check_training_data(genomes, energy_mj)
        if not 2 <= folds <= len(energy):
            raise ValueError(f"folds must be between 2 and the {len(energy)} networks, got {folds}")
        log_pred = cross_val_predict(clone(self.estimator), feature_matrix(genomes), np.log(energy),
                                     cv=KFold(folds, shuffle=True, random_state=seed))
        self.cv_report = accuracy(energy, np.exp(log_pred))
        return self.cv_report

    def _tree_log_predictions(self, genomes: Sequence[Genome]) -> np.ndarray:
        check_is_fitted(self.estimator, msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        X = feature_matrix(genomes)
        return np.stack([tree.predict(X) for tree in self.estimator.estimators_])

    def predict_mj(self, genomes: Sequence[Genome]) -> np.ndarray:
        """Predicted energy per inference, mJ."""
        if not len(genomes):
            return np.empty(0)
        return np.exp(self._tree_log_predictions(genomes).mean(axis=0))

    def predict_with_spread(self, genomes: Sequence[Genome]) -> tuple[np.ndarray, np.ndarray]:
        """The prediction and the standard deviation of the individual trees' predictions, mJ."""
        if not len(genomes):
            return np.empty(0), np.empty(0)
        log_pred = self._tree_log_predictions(genomes)
        return np.exp(log_pred.mean(axis=0)), np.exp(log_pred).std(axis=0)

    # ---- persistence -------------------------------------------------------------------
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the estimator to ``path`` and its metadata to ``path.json``."""
        check_is_fitted(self.estimator, msg="cannot save an unfitted ForestEnergyModel")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, path)
        meta = {"feature_names": list(FEATURE_NAMES), "sklearn_version": sklearn.__version__,
                "n_train": self.n_train, "setup": self.setup,
                "cv_report": asdict(self.cv_report) if self.cv_report else None}
        self._sidecar(path).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ForestEnergyModel:
        """Load a saved model; refuses another feature list, warns on another scikit-learn."""
        path = Path(path)
        for p in (path, cls._sidecar(path)):
            if not p.is_file():
                raise FileNotFoundError(f"forest model file not found: {p}")
        try:
            meta = json.loads(cls._sidecar(path).read_text())
            features, version = meta["feature_names"], meta["sklearn_version"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{cls._sidecar(path)}: malformed forest metadata ({e})") from None
        if list(features) != list(FEATURE_NAMES):
            diff = sorted(set(features) ^ set(FEATURE_NAMES)) or ["(same names, other order)"]
            raise ValueError(f"{path} was fitted on another feature list than this version computes "
                             f"(differing: {', '.join(diff)}); refit it on its measurements")
        if version != sklearn.__version__:
            warnings.warn(f"{path} was saved with scikit-learn {version} and is loaded with "
                          f"{sklearn.__version__}: predictions may differ or fail; refit it on its "
                          "measurements", UserWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InconsistentVersionWarning)  # reported above
            estimator = joblib.load(path)
        if not isinstance(estimator, RandomForestRegressor) or estimator.n_features_in_ != len(FEATURE_NAMES):
            raise ValueError(f"{path} does not hold a random forest on {len(FEATURE_NAMES)} features")
        model = cls(meta.get("setup"))
        model.estimator, model.n_train = estimator, int(meta.get("n_train", 0))
        model.cv_report = AccuracyReport(**meta["cv_report"]) if meta.get("cv_report") else None
        return model


def fit_measurements(records: Sequence[Measurement], folds: int = 5, **forest_kwargs) -> ForestEnergyModel:
    """A forest fitted on one setup's measurements, with its k-fold cross-validation report."""
    setup = check_same_setup(records)
    genomes, energy = [r.genome for r in records], [r.energy_mj for r in records]
    model = ForestEnergyModel(setup, **forest_kwargs)
    model.cross_validate(genomes, energy, folds=folds)
    return model.fit(genomes, energy)
