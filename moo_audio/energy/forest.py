"""Random-forest energy model fitted on measured energy per inference.

A scikit-learn ``RandomForestRegressor`` maps the features of :mod:`moo_audio.energy.features`
to log-energy: energies span orders of magnitude and the error that matters is relative.

By default (``base="operators"``) the forest corrects a linear base rather than predicting
energy alone: the base is a non-negative linear model of the operator terms
(:func:`~moo_audio.energy.features.operator_matrix`: per operator kind, the count, MACs, MACs
in whole SIMD lanes, unfolded elements, positions and elements in and out; plus a constant),
fitted to minimise relative error, and the forest
learns ``log(energy / base)``. A forest is piecewise constant, so on its own it is coarse over
four orders of magnitude of latency and cannot extrapolate beyond its training range; the base
carries the scale, the forest what is not additive. The forest's correction is weighted by
``forest_weight`` in ``[0, 1]``, the least-squares weight of its out-of-bag predictions of the
residual: a forest that only fits the measurement noise (its out-of-bag predictions do not
explain the residual) gets a weight near 0 instead of adding its noise to the base. ``base=None``
is the forest alone on ``log(energy)`` (weight 1).

The prediction is the base times ``exp`` of the weighted forest's mean log-prediction (the
geometric mean of the trees); the spread is the standard deviation over the trees of the base
times each tree's unweighted correction, in mJ.

Saved as ``<path>`` (the estimators, joblib) plus ``<path>.json`` (metadata: feature and operator
term lists, scikit-learn version, training setup, cross-validation report). Loading refuses a
model whose lists differ from this version's and warns when scikit-learn's version differs.
Only load model files you trust: joblib files are pickles.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import InconsistentVersionWarning, UndefinedMetricWarning
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_percentage_error, r2_score
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler
from sklearn.utils.validation import check_is_fitted

from moo_audio.energy.features import FEATURE_NAMES, OPERATOR_TERM_NAMES, feature_matrix, operator_matrix
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
    if not len(energy):
        raise ValueError("no measured networks to fit on")
    bad = np.flatnonzero(~(np.isfinite(energy) & (energy > 0)))
    if bad.size:
        raise ValueError(f"energy_mj[{bad[0]}] = {float(energy[bad[0]])!r}: energies must be finite and > 0")
    return energy


BASES = (None, "operators")


class ForestEnergyModel:
    """Energy per inference (mJ): a linear operator base corrected by a random forest on log-energy.

    Args:
        setup: where the training energies were measured (method, device profile, hardware,
            runtime, dtype, threads), kept as metadata.
        base: ``"operators"`` (default; see the module docstring) or ``None`` (the forest alone).
        n_estimators, min_samples_leaf, random_state: passed to ``RandomForestRegressor``.
    """

    def __init__(self, setup: Mapping[str, str] | None = None, *, base: str | None = "operators",
                 n_estimators: int = 300, min_samples_leaf: int = 1, random_state: int = 0):
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; expected one of {BASES}")
        self.setup = dict(setup or {})
        self.base = base
        self.estimator = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                               random_state=random_state, oob_score=base is not None)
        self.forest_weight = 1.0
        # MaxAbsScaler keeps signs, so the scaled coefficients stay non-negative; the constant
        # term is a column, so that the per-call overhead is non-negative too
        self.linear: Pipeline | None = None if base is None else make_pipeline(
            MaxAbsScaler(), LinearRegression(positive=True, fit_intercept=False))
        self.n_train = 0
        self.cv_report: AccuracyReport | None = None

    @property
    def forest_params(self) -> dict[str, int]:
        """The forest's parameters that :class:`ForestEnergyModel` takes."""
        return {k: self.estimator.get_params()[k] for k in ("n_estimators", "min_samples_leaf", "random_state")}

    @property
    def name(self) -> str:
        where = "/".join(self.setup[k] for k in ("device_profile", "dtype") if k in self.setup)
        kind = "random-forest" if self.base is None else f"{self.base}+random-forest"
        return f"{kind}({where or 'unspecified setup'}, n={self.n_train})"

    def _base_mj(self, genomes: Sequence[Genome], terms: np.ndarray | None = None) -> np.ndarray:
        """The linear base's energies (ones without a base); ``terms``: their operator matrix,
        if already computed."""
        if self.linear is None:
            return np.ones(len(genomes))
        base = self.linear.predict(operator_matrix(genomes) if terms is None else terms)
        if np.any(base <= 0):
            raise RuntimeError("the linear operator base predicts a non-positive energy; fit the "
                               "model with base=None or on more measurements")
        return base

    def fit(self, genomes: Sequence[Genome], energy_mj: Sequence[float]) -> ForestEnergyModel:
        """Fit on measured energies; returns ``self``."""
        energy = _check_training_data(genomes, energy_mj)
        terms = None
        if self.linear is not None:  # weights 1/energy^2: least squares of the relative error
            terms = operator_matrix(genomes)
            used = int(np.count_nonzero(terms.any(axis=0)))
            if len(energy) < used:
                warnings.warn(f"{len(energy)} measured networks for {used} operator terms: the linear base "
                              "may overfit; measure more networks or use base=None", UserWarning, stacklevel=2)
            self.linear.fit(terms, energy, linearregression__sample_weight=energy ** -2.0)
        target = np.log(energy / self._base_mj(genomes, terms))
        with warnings.catch_warnings():  # few networks: some are never out of bag, handled below
            warnings.filterwarnings("ignore", "Some inputs do not have OOB scores", UserWarning)
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # the out-of-bag R^2, unused
            self.estimator.fit(feature_matrix(genomes), target)
        if self.linear is not None:
            self.forest_weight = _out_of_bag_weight(target, self.estimator.oob_prediction_)
        self.n_train = len(energy)
        return self

    def cross_validate(self, genomes: Sequence[Genome], energy_mj: Sequence[float],
                       folds: int = 5, seed: int = 0) -> AccuracyReport:
        """k-fold cross-validated accuracy of this model's configuration; stored as ``cv_report``."""
        energy = _check_training_data(genomes, energy_mj)
        if not 2 <= folds <= len(energy):
            raise ValueError(f"folds must be between 2 and the {len(energy)} networks, got {folds}")
        predicted = np.empty_like(energy)
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(energy):
            fold = ForestEnergyModel(base=self.base, **self.forest_params)
            fold.fit([genomes[i] for i in train], energy[train])
            predicted[test] = fold.predict_mj([genomes[i] for i in test])
        self.cv_report = accuracy(energy, predicted)
        return self.cv_report

    def _log_parts(self, genomes: Sequence[Genome]) -> tuple[np.ndarray, np.ndarray]:
        """The base's log-energy, shape ``(genomes,)``, and each tree's unweighted log-prediction
        (of the residual, or of the energy without a base), shape ``(trees, genomes)``."""
        check_is_fitted(self.estimator, msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        X = feature_matrix(genomes)
        return np.log(self._base_mj(genomes)), np.stack([tree.predict(X) for tree in self.estimator.estimators_])

    def predict_mj(self, genomes: Sequence[Genome]) -> np.ndarray:
        """Predicted energy per inference, mJ."""
        return self.predict_with_spread(genomes)[0]

    def predict_with_spread(self, genomes: Sequence[Genome]) -> tuple[np.ndarray, np.ndarray]:
        """The prediction and a spread, mJ: the standard deviation over the trees of the base times
        each tree's (unweighted) correction, i.e. how much networks that the trees group with this
        one deviate from the base; it stays an uncertainty when the forest's weight is near 0."""
        if not len(genomes):
            return np.empty(0), np.empty(0)
        log_base, trees = self._log_parts(genomes)
        return np.exp(log_base + self.forest_weight * trees.mean(axis=0)), np.exp(log_base + trees).std(axis=0)

    # ---- persistence -------------------------------------------------------------------
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the estimator to ``path`` and its metadata to ``path.json``."""
        check_is_fitted(self.estimator, msg="cannot save an unfitted ForestEnergyModel")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"forest": self.estimator, "linear": self.linear}, path)
        meta = {"feature_names": list(FEATURE_NAMES), "base": self.base,
                "operator_term_names": list(OPERATOR_TERM_NAMES) if self.base else None,
                "sklearn_version": sklearn.__version__, "n_train": self.n_train,
                "forest_params": self.forest_params, "forest_weight": self.forest_weight, "setup": self.setup,
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
            features, version, base = meta["feature_names"], meta["sklearn_version"], meta["base"]
            forest_weight = float(meta["forest_weight"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{cls._sidecar(path)}: malformed forest metadata ({e}); a model saved "
                             "by an older moo_audio must be refitted on its measurements") from None
        _check_names(path, "feature", features, FEATURE_NAMES)
        if base is not None:
            _check_names(path, "operator term", meta.get("operator_term_names") or [], OPERATOR_TERM_NAMES)
        if version != sklearn.__version__:
            warnings.warn(f"{path} was saved with scikit-learn {version} and is loaded with "
                          f"{sklearn.__version__}: predictions may differ or fail; refit it on its "
                          "measurements", UserWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InconsistentVersionWarning)  # reported above
            saved = joblib.load(path)
        forest, linear = (saved.get("forest"), saved.get("linear")) if isinstance(saved, dict) else (None, None)
        if not isinstance(forest, RandomForestRegressor) or forest.n_features_in_ != len(FEATURE_NAMES) \
                or (base is not None) != isinstance(linear, Pipeline):
            raise ValueError(f"{path} does not hold a random forest on {len(FEATURE_NAMES)} features"
                             f"{' and a linear operator base' if base else ''}")
        model = cls(meta.get("setup"), base=base, **meta.get("forest_params", {}))
        model.estimator, model.linear, model.n_train = forest, linear, int(meta.get("n_train", 0))
        model.forest_weight = forest_weight
        model.cv_report = AccuracyReport(**meta["cv_report"]) if meta.get("cv_report") else None
        return model


def _out_of_bag_weight(residual: np.ndarray, out_of_bag: np.ndarray) -> float:
    """The least-squares weight in ``[0, 1]`` of the forest's out-of-bag predictions of the
    residual; 0 without out-of-bag evidence (networks never left out of a bootstrap sample)."""
    known = np.isfinite(out_of_bag)
    o, r = out_of_bag[known], residual[known]
    return float(np.clip(r @ o / (o @ o), 0.0, 1.0)) if o @ o > 0 else 0.0


def _check_names(path: Path, what: str, saved: Sequence[str], current: Sequence[str]) -> None:
    if list(saved) != list(current):
        diff = sorted(set(saved) ^ set(current)) or ["(same names, other order)"]
        raise ValueError(f"{path} was fitted on another {what} list than this version computes "
                         f"(differing: {', '.join(diff)}); refit it on its measurements")


def fit_measurements(records: Sequence[Measurement], folds: int = 5, **model_kwargs) -> ForestEnergyModel:
    """A model fitted on one setup's measurements, with its k-fold cross-validation report;
    ``model_kwargs`` go to :class:`ForestEnergyModel` (``base``, ``n_estimators``, ...)."""
    setup = check_same_setup(records)
    genomes, energy = [r.genome for r in records], [r.energy_mj for r in records]
    model = ForestEnergyModel(setup, **model_kwargs)
    model.cross_validate(genomes, energy, folds=folds)
    return model.fit(genomes, energy)
