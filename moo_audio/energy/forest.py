"""Random-forest energy model fitted on measured energy per inference.

A scikit-learn ``RandomForestRegressor`` maps the features of :mod:`moo_audio.energy.features`
to log-energy: energies span orders of magnitude and the error that matters is relative.

By default (``base="operators+tails"``) the forest corrects a linear base rather than predicting
energy alone: the base is a non-negative linear model of the operator terms
(:func:`~moo_audio.energy.features.operator_matrix`: per operator kind, the count, MACs, MACs
in whole SIMD lanes, MACs of the channels left over beyond whole blocks of 16 and of 4, unfolded
elements, positions and elements in and out; plus a constant), fitted to minimise relative
error, and the forest
learns ``log(energy / base)``. A forest is piecewise constant, so on its own it is coarse over
four orders of magnitude of latency and cannot extrapolate beyond its training range; the base
carries the scale, the forest what is not additive. The forest's correction is weighted by
``forest_weight`` in ``[0, 1]``, the least-squares weight of its out-of-bag predictions of the
residual: a forest that only fits the measurement noise (its out-of-bag predictions do not
explain the residual) gets a weight near 0 instead of adding its noise to the base.
``base="operators"`` is the same base without the leftover-channel terms (the packaged model's:
see :mod:`moo_audio.energy.packaged`); ``base=None`` is the forest alone on ``log(energy)``
(weight 1).

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
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import InconsistentVersionWarning, UndefinedMetricWarning
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_percentage_error, r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler
from sklearn.utils.validation import check_is_fitted

from moo_audio.energy.features import (
    BASES,
    DEFAULT_BASE,
    FEATURE_NAMES,
    OPERATOR_TERM_NAMES,
    feature_matrix,
    operator_matrix,
)
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


#: the linear base's lowest energy, as a fraction of the cheapest measured network's
BASE_FLOOR = 0.01
#: columns of the matrix :class:`GenomeFeatures` makes: the forest's features, then the base's terms
MATRIX_COLUMNS = (*FEATURE_NAMES, *OPERATOR_TERM_NAMES)


class GenomeFeatures(TransformerMixin, BaseEstimator):
    """Genomes -> the matrix :class:`ForestEnergyModel` learns from: per genome the features of
    :func:`~moo_audio.energy.features.feature_matrix` then the operator terms of
    :func:`~moo_audio.energy.features.operator_matrix` (:data:`MATRIX_COLUMNS`). Stateless."""

    def fit(self, X, y=None) -> GenomeFeatures:
        return self

    def transform(self, X) -> np.ndarray:
        genomes = list(X)
        return np.hstack([feature_matrix(genomes), operator_matrix(genomes)])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(MATRIX_COLUMNS, dtype=object)


def _as_matrix(X) -> np.ndarray:
    """A :class:`GenomeFeatures` matrix, or genomes turned into one."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.ndim != 2 or X.shape[1] != len(MATRIX_COLUMNS):
            raise ValueError(f"expected a GenomeFeatures matrix of {len(MATRIX_COLUMNS)} columns, got shape {X.shape}")
        return X.astype(float)
    genomes = list(X)
    if not all(isinstance(g, Genome) for g in genomes):
        raise TypeError("ForestEnergyModel takes genomes or the matrix GenomeFeatures makes of them")
    return GenomeFeatures().transform(genomes)


class ForestEnergyModel(RegressorMixin, BaseEstimator):
    """Energy per inference (mJ): a linear operator base corrected by a random forest on log-energy.

    A scikit-learn regressor (``get_params``/``clone``, ``fit``/``predict``) on the matrix that
    :class:`GenomeFeatures` makes of genomes, or on the genomes themselves, so that
    ``cross_val_predict``, pipelines (``make_pipeline(GenomeFeatures(), ForestEnergyModel())``) and
    ``TransformedTargetRegressor`` work with it; and an energy model of the problems
    (:meth:`predict_mj`, :attr:`name`).

    Args:
        setup: where the training energies were measured (method, device profile, hardware,
            runtime, dtype, threads), kept as metadata.
        base: ``"operators+tails"`` (default), ``"operators"`` (without the leftover-channel terms;
            see the module docstring) or ``None`` (the forest alone).
        n_estimators, min_samples_leaf, random_state: passed to ``RandomForestRegressor``.
    """

    def __init__(self, setup: Mapping[str, str] | None = None, *, base: str | None = DEFAULT_BASE,
                 n_estimators: int = 300, min_samples_leaf: int = 1, random_state: int = 0):
        if base not in BASES:
            raise ValueError(f"unknown base {base!r}; expected one of {list(BASES)}")
        self.setup, self.base = setup, base
        self.n_estimators, self.min_samples_leaf, self.random_state = n_estimators, min_samples_leaf, random_state

    @property
    def forest_params(self) -> dict[str, int]:
        """The forest's parameters."""
        return {"n_estimators": self.n_estimators, "min_samples_leaf": self.min_samples_leaf,
                "random_state": self.random_state}

    @property
    def forest_weight(self) -> float:
        """The fitted weight of the forest's correction (1 without a base)."""
        check_is_fitted(self, "forest_", msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        return self.forest_weight_

    @property
    def name(self) -> str:
        setup = self.setup or {}
        where = "/".join(setup[k] for k in ("device_profile", "dtype") if k in setup)
        kind = "random-forest" if self.base is None else f"{self.base}+random-forest"
        packaged = getattr(self, "packaged", None)
        return (f"packaged {packaged}: " if packaged else "") + \
            f"{kind}({where or 'unspecified setup'}, n={getattr(self, 'n_train_', 0)})"

    def _base_terms(self, M: np.ndarray) -> np.ndarray:
        """The columns of a :class:`GenomeFeatures` matrix that this model's base is fitted on."""
        return M[:, [len(FEATURE_NAMES) + OPERATOR_TERM_NAMES.index(t) for t in BASES[self.base]]]

    def _base_mj(self, terms: np.ndarray) -> np.ndarray:
        """The linear base's energies for operator terms (ones without a base)."""
        if self.linear_ is None:
            return np.ones(len(terms))
        # non-negative coefficients can all be zero on a network whose operators the fit never saw
        # in use (few measurements): the floor keeps its log defined and leaves it to the forest
        base = np.maximum(self.linear_.predict(terms), self.base_floor_mj_)
        if np.any(base <= 0):
            raise RuntimeError("the linear operator base predicts a non-positive energy; fit the "
                               "model with base=None or on more measurements")
        return base

    def fit(self, X, y) -> ForestEnergyModel:
        """Fit on measured energies ``y`` (mJ) of genomes (or their :class:`GenomeFeatures` matrix)."""
        energy = np.asarray(y, dtype=float)
        n = len(X)
        if energy.ndim != 1 or len(energy) != n:
            raise ValueError(f"got {n} genomes but energies of shape {energy.shape}")
        if not n:
            raise ValueError("no measured networks to fit on")
        bad = np.flatnonzero(~(np.isfinite(energy) & (energy > 0)))
        if bad.size:
            raise ValueError(f"energy_mj[{bad[0]}] = {float(energy[bad[0]])!r}: energies must be finite and > 0")
        M = _as_matrix(X)
        features, terms = M[:, :len(FEATURE_NAMES)], self._base_terms(M)
        # MaxAbsScaler keeps signs, so the scaled coefficients stay non-negative; the constant term
        # is a column, so that the per-call overhead is non-negative too
        self.linear_ = None if self.base is None else make_pipeline(
            MaxAbsScaler(), LinearRegression(positive=True, fit_intercept=False))
        if self.linear_ is not None:  # weights 1/energy^2: least squares of the relative error
            used = int(np.count_nonzero(terms.any(axis=0)))
            if n < used:
                warnings.warn(f"{n} measured networks for {used} operator terms: the linear base "
                              "may overfit; measure more networks or use base=None", UserWarning, stacklevel=2)
            self.linear_.fit(terms, energy, linearregression__sample_weight=energy ** -2.0)
        self.base_floor_mj_ = BASE_FLOOR * float(energy.min())
        target = np.log(energy / self._base_mj(terms))
        self.forest_ = RandomForestRegressor(oob_score=self.base is not None, **self.forest_params)
        with warnings.catch_warnings():  # few networks: some are never out of bag, handled below
            warnings.filterwarnings("ignore", "Some inputs do not have OOB scores", UserWarning)
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # the out-of-bag R^2, unused
            self.forest_.fit(features, target)
        self.forest_weight_ = 1.0 if self.linear_ is None else _out_of_bag_weight(target, self.forest_.oob_prediction_)
        columns = [FEATURE_NAMES.index(f) for f in RANGE_FEATURES]
        self.feature_range_ = {f: (float(features[:, c].min()), float(features[:, c].max()))
                               for f, c in zip(RANGE_FEATURES, columns)}
        self.n_train_ = n
        return self

    def cross_validate(self, genomes: Sequence[Genome], energy_mj: Sequence[float],
                       folds: int = 5, seed: int = 0) -> AccuracyReport:
        """k-fold cross-validated accuracy of this model's configuration (scikit-learn's
        ``cross_val_predict`` on clones); stored as ``cv_report``."""
        energy = np.asarray(energy_mj, dtype=float)
        if not 2 <= folds <= len(energy):
            raise ValueError(f"folds must be between 2 and the {len(energy)} networks, got {folds}")
        predicted = cross_val_predict(clone(self), GenomeFeatures().transform(genomes), energy,
                                      cv=KFold(folds, shuffle=True, random_state=seed))
        self.cv_report = accuracy(energy, predicted)
        return self.cv_report

    def _log_parts(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The base's log-energy, shape ``(networks,)``, and each tree's unweighted log-prediction
        (of the residual, or of the energy without a base), shape ``(trees, networks)``."""
        check_is_fitted(self, "forest_", msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        M = _as_matrix(X)
        features = M[:, :len(FEATURE_NAMES)]
        return (np.log(self._base_mj(self._base_terms(M))),
                np.stack([tree.predict(features) for tree in self.forest_.estimators_]))

    def predict(self, X) -> np.ndarray:
        """Predicted energy per inference, mJ, of genomes (or their :class:`GenomeFeatures` matrix)."""
        return self.predict_with_spread(X)[0]

    def predict_mj(self, genomes: Sequence[Genome]) -> np.ndarray:
        """Predicted energy per inference, mJ (the energy-model interface of the problems); warns
        (:class:`EnergyExtrapolationWarning`) for genomes far outside the measured networks."""
        M = _as_matrix(genomes)
        self.warn_outside(M)
        return self.predict(M)

    def outside(self, X) -> list[str]:
        """For each network, the first feature beyond ``EXTRAPOLATION`` x the measured range ("" if none)."""
        check_is_fitted(self, "forest_", msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        M = _as_matrix(X)
        out = []
        for row in M:
            far = [f for f in RANGE_FEATURES if not (self.feature_range_[f][0] / EXTRAPOLATION
                                                     <= row[FEATURE_NAMES.index(f)]
                                                     <= self.feature_range_[f][1] * EXTRAPOLATION)]
            out.append(far[0] if far else "")
        return out

    def warn_outside(self, X) -> None:
        far = [(i, f) for i, f in enumerate(self.outside(X)) if f]
        if far:
            i, f = far[0]
            low, high = self.feature_range_[f]
            warnings.warn(f"{len(far)} of {len(X)} network(s) lie far outside the networks {self.name} was "
                          f"measured on (network {i}: {f} {_as_matrix(X)[i, FEATURE_NAMES.index(f)]:.4g}, "
                          f"measured {low:.4g} to {high:.4g}); its energies there are extrapolated: measure "
                          "networks like them (moo-audio energy measure)", EnergyExtrapolationWarning, stacklevel=3)

    def predict_with_spread(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The prediction and a spread, mJ: the standard deviation over the trees of the base times
        each tree's (unweighted) correction, i.e. how much networks that the trees group with this
        one deviate from the base; it stays an uncertainty when the forest's weight is near 0."""
        check_is_fitted(self, "forest_", msg="this ForestEnergyModel is not fitted yet; call fit() or load()")
        if not len(X):
            return np.empty(0), np.empty(0)
        log_base, trees = self._log_parts(X)
        return (np.exp(log_base + self.forest_weight_ * trees.mean(axis=0)),
                np.exp(log_base + trees).std(axis=0))

    # ---- persistence -------------------------------------------------------------------
    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimators to ``path`` and the metadata to ``path.json``."""
        check_is_fitted(self, "forest_", msg="cannot save an unfitted ForestEnergyModel")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"forest": self.forest_, "linear": self.linear_}, path)
        cv_report = getattr(self, "cv_report", None)
        meta = {"feature_names": list(FEATURE_NAMES), "base": self.base,
                "operator_term_names": list(BASES[self.base]) if self.base else None,
                "sklearn_version": sklearn.__version__, "n_train": self.n_train_,
                "forest_params": self.forest_params, "forest_weight": self.forest_weight_,
                "base_floor_mj": self.base_floor_mj_,
                "setup": dict(self.setup or {}), "cv_report": asdict(cv_report) if cv_report else None,
                "feature_range": self.feature_range_}
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
            if base not in BASES:
                raise ValueError(f"{path} has an unknown base {base!r}; expected one of {list(BASES)}")
            _check_names(path, "operator term", meta.get("operator_term_names") or [], BASES[base])
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
        model.forest_, model.linear_, model.n_train_ = forest, linear, int(meta.get("n_train", 0))
        model.forest_weight_ = forest_weight
        model.base_floor_mj_ = float(meta.get("base_floor_mj", 0.0))  # saved before the floor: none
        model.feature_range_ = {f: tuple(v) for f, v in meta.get("feature_range", {}).items()} or {
            f: (0.0, math.inf) for f in RANGE_FEATURES}  # saved before ranges were kept: no check
        if meta.get("cv_report"):
            model.cv_report = AccuracyReport(**meta["cv_report"])
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
    """A model fitted on one setup's measurements, with its k-fold cross-validation report (none for
    ``folds=0``); ``model_kwargs`` go to :class:`ForestEnergyModel` (``base``, ``n_estimators``, ...)."""
    setup = check_same_setup(records)
    genomes, energy = [r.genome for r in records], [r.energy_mj for r in records]
    model = ForestEnergyModel(setup, **model_kwargs)
    if folds:
        model.cross_validate(genomes, energy, folds=folds)
    return model.fit(genomes, energy)


class EnergyExtrapolationWarning(UserWarning):
    """A network lies far outside the networks an energy model was measured on."""


#: features whose range an energy model checks, and how far beyond it (a factor) it predicts quietly
RANGE_FEATURES = ("macs", "params", "input_elements", "peak_activation_bytes", "widest_layer_channels")
EXTRAPOLATION = 2.0
