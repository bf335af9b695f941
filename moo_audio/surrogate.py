"""``SurrogateAudioNASProblem``: the audio NAS problem answered in milliseconds from real trainings.

A *table* holds architectures sampled from a problem file's search space and trained for its whole
budget, some with several seeds (``benchmarks/build_surrogate.py``, :mod:`moo_audio.table_build`;
the tables of ``problems/builtin.toml``, ``problems/fsdd.toml`` and ``problems/speech_commands_12.toml``
ship in ``moo_audio/tables``; a table of an unfinished build loads with a :class:`PartialTableWarning`).
The surrogate answers any genome of that space: its error curve by a model fitted to the table over
the architecture features of :func:`architecture_matrix` (cross-validated in
:attr:`error_model_report`, beside the :func:`seed_noise_ceiling` of the table), the training seconds
of any number of epochs, and energy and memory exactly, as :class:`~moo_audio.problem.AudioNASProblem` does. Objectives,
constraints, variables and the exact cheap objectives are those of the real problem, so every
optimizer runs on it unchanged and a 200-evaluation run takes seconds.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.core.problem import Problem
from scipy.stats import kendalltau, spearmanr
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.multioutput import MultiOutputRegressor
from sklearn.preprocessing import StandardScaler

from moo_audio.energy import EnergyModel
from moo_audio.energy.features import feature_matrix
from moo_audio.energy.packaged import default_model
from moo_audio.objectives import OBJECTIVES, objective_matrix
from moo_audio.problem import CheapQuantities, Constraints, cheap_values, cost_columns, frontend_genes
from moo_audio.seed_noise import MIN_ARCHITECTURES, SeedNoise
from moo_audio.space import Genome, GenomeRepair, SearchSpace

#: tables shipped with the package, by name
TABLES = ("builtin", "fsdd", "speech_commands_12")


class PartialTableWarning(UserWarning):
    """The table holds only part of its build's planned trainings (a build in progress)."""


@dataclass(frozen=True)
class SurrogateTable:
    """Real trainings: ``meta`` (problem, budget, constraints, space, machine) and one row per
    architecture (``genome`` JSON, ``kind`` sample or baseline, ``val_accuracy``, ``curve``, ...)."""

    meta: dict[str, Any]
    rows: tuple[dict[str, Any], ...]

    @property
    def space(self) -> SearchSpace:
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.meta["space"].items()}
        return SearchSpace(**options)

    @property
    def constraints(self) -> Constraints:
        return Constraints(**self.meta["constraints"])

    @property
    def complete(self) -> bool:
        """Whether the table holds all of its build's planned trainings (tables without a plan count as complete)."""
        return self.meta.get("trainings", 0) >= self.meta.get("planned_trainings", 0)

    def trained(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Rows whose training did not fail, optionally of one ``kind``."""
        return [r for r in self.rows if not r["failed"] and (kind is None or r["kind"] == kind)]

    def genomes(self, rows: Sequence[dict[str, Any]]) -> list[Genome]:
        return [Genome.from_json(r["genome"]) for r in rows]


def load_table(table: str | os.PathLike) -> SurrogateTable:
    """A shipped table by name (:data:`TABLES`) or a table file (``.json.gz``).

    Raises:
        ValueError: unknown name, or a file that is not a table (naming what is missing).
    """
    if isinstance(table, str) and table in TABLES:
        source = resources.files("moo_audio") / "tables" / f"{table}.json.gz"
    elif Path(table).is_file():
        source = Path(table)
    else:
        raise ValueError(f"unknown surrogate table {str(table)!r}: give one of {TABLES} or a table file "
                         "from benchmarks/build_surrogate.py")
    try:
        with source.open("rb") as raw, gzip.open(raw, "rt") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: not a gzip JSON surrogate table ({error})") from None
    missing = [k for k in ("meta", "rows") if k not in data]
    missing += [k for k in ("space", "constraints", "problem") if k not in data.get("meta", {})]
    if missing:
        raise ValueError(f"{source}: not a surrogate table, missing {missing}")
    loaded = SurrogateTable(data["meta"], tuple(data["rows"]))
    if not loaded.complete:
        meta = loaded.meta
        warnings.warn(f"surrogate table {str(table)!r} of problem {meta['problem']!r} holds {meta['trainings']:,} of "
                      f"its build's {meta['planned_trainings']:,} planned trainings (a build in progress): its "
                      "quality report is of this snapshot", PartialTableWarning, stacklevel=2)
    return loaded


def run_error_curves(row: dict[str, Any]) -> np.ndarray:
    """An architecture's classification error after each epoch with its best epoch restored (one minus
    the running maximum of the validation curve), one row per run (seed) that did not fail, cut to
    the shortest run."""
    runs = [r for r in row.get("runs", [row]) if not r["failed"]]
    epochs = min(len(r["curve"]) for r in runs)
    return np.array([1.0 - np.maximum.accumulate(r["curve"][:epochs]) for r in runs])


def error_curves(row: dict[str, Any]) -> np.ndarray:
    """:func:`run_error_curves` averaged over the runs."""
    return run_error_curves(row).mean(axis=0)


def best_quartile(quality: np.ndarray) -> np.ndarray:
    """The mask of the quarter of architectures with the lowest ``quality`` (error): where optimizers differ."""
    quality = np.asarray(quality, float)
    return quality <= np.quantile(quality, 0.25)


@dataclass(frozen=True)
class Agreement:
    """How well predicted errors match target errors: overall, and among the best quarter of the
    architectures (``top_*``: the quarter with the lowest ``quality``, the target by default), where
    optimizers differ."""

    n: int
    spearman: float
    kendall: float
    r2: float
    mae: float        # mean absolute error of the classification error
    top_spearman: float
    top_kendall: float
    top_mae: float

    @classmethod
    def of(cls, predicted: np.ndarray, target: np.ndarray, quality: np.ndarray | None = None) -> Agreement:
        predicted, target = np.asarray(predicted, float), np.asarray(target, float)
        top = best_quartile(target if quality is None else quality)
        return cls(n=len(target), spearman=float(spearmanr(predicted, target).statistic),
                   kendall=float(kendalltau(predicted, target).statistic), r2=float(r2_score(target, predicted)),
                   mae=float(mean_absolute_error(target, predicted)),
                   top_spearman=float(spearmanr(predicted[top], target[top]).statistic),
                   top_kendall=float(kendalltau(predicted[top], target[top]).statistic),
                   top_mae=float(mean_absolute_error(target[top], predicted[top])))

    @classmethod
    def mean(cls, agreements: Sequence[Agreement]) -> Agreement:
        """Field-wise mean (``n`` of the first)."""
        values = {f.name: float(np.mean([getattr(a, f.name) for a in agreements])) for f in fields(cls)}
        return cls(**{**values, "n": agreements[0].n})

    def __str__(self) -> str:
        return (f"n={self.n}: Spearman {self.spearman:.3f}, Kendall {self.kendall:.3f}, R2 {self.r2:.3f}, "
                f"MAE {self.mae:.3f}; best quartile Spearman {self.top_spearman:.3f}, Kendall "
                f"{self.top_kendall:.3f}, MAE {self.top_mae:.3f}")


def seed_noise_ceiling(table: SurrogateTable) -> Agreement | None:
    """How well one training run of an architecture predicts another run with another seed: the
    :class:`Agreement` of run ``a``'s error with run ``b``'s, averaged over seed pairs, over the
    architectures trained with several seeds (best quartile by their mean error). ``None`` with fewer
    than 8 such architectures. No model can predict a single run better than this, on average."""
    rows = [r for r in table.trained() if sum(not run["failed"] for run in r.get("runs", ())) >= 2]
    if len(rows) < 8:
        return None
    errors = [{run["seed"]: 1.0 - run["val_accuracy"] for run in r["runs"] if not run["failed"]} for r in rows]
    seeds = sorted({s for e in errors for s in e})
    pairs = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            both = [e for e in errors if a in e and b in e]
            if len(both) >= 8:
                pairs.append(Agreement.of([e[a] for e in both], [e[b] for e in both],
                                          [np.mean(list(e.values())) for e in both]))
    return Agreement.mean(pairs) if pairs else None


#: what each stage of :func:`stage_encoding` says about its blocks
STAGE_FIELDS = ("blocks", "log2_channels", "kernel_max", "downsampling", "skip", "conv", "dsconv", "mbconv",
                "expansion")


def stage_encoding(genome: Genome, stages: int) -> list[float]:
    """The genome's front-end genes and its blocks in ``stages`` equal-depth stages (:data:`STAGE_FIELDS`
    of each, zeros for an empty one). With at most ``stages`` blocks a stage is one block position, so
    the encoding of a search space's genome is positional; a deeper network (a baseline) is summarised
    per stage. The space's own unit-cube encoding cannot serve: baselines lie outside the space."""
    values = frontend_genes(genome)
    for chunk in np.array_split(np.arange(len(genome.blocks)), stages):
        blocks = [genome.blocks[i] for i in chunk]
        if not blocks:
            values += [0.0] * len(STAGE_FIELDS)
            continue
        values += [len(blocks), np.mean([np.log2(b.channels) for b in blocks]),
                   max(max(np.atleast_1d(b.kernel)) for b in blocks),
                   np.prod([max(np.atleast_1d(b.stride)) * (2 if b.pool else 1) for b in blocks]),
                   np.mean([b.skip for b in blocks]),
                   *(np.mean([b.type == kind for b in blocks]) for kind in ("conv", "dsconv", "mbconv")),
                   np.mean([b.expansion for b in blocks])]
    return values


def architecture_matrix(genomes: Sequence[Genome], stages: int) -> np.ndarray:
    """The error models' inputs: the cost features of :mod:`moo_audio.energy.features` (MACs, parameters,
    activation sizes, ...) beside the :func:`stage_encoding` of each genome."""
    return np.hstack([feature_matrix(genomes), np.array([stage_encoding(g, stages) for g in genomes], float)])


class CurveBasisRegressor(RegressorMixin, BaseEstimator):
    """Error curves predicted in a low-dimensional curve basis; subclasses predict the coefficients.

    The log of each error curve is projected on its first ``components`` principal components (learning
    curves are smooth: a few hold nearly all of their variance); a prediction is the reconstructed curve,
    made non-increasing (the error with the best epoch restored never grows). The log scale spends the
    model's resolution on the low errors, where optimizers compare architectures. Neither scikit-learn
    nor BoTorch fits curves in a basis, hence these small estimators.
    """

    components: int
    random_state: int | None

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> CurveBasisRegressor:
        """Fit the basis, then the coefficients' model; ``sample_weight`` weighs each curve (e.g. by its
        number of runs: a mean of three seeds is a less noisy target) where the subclass can."""
        Y = np.log(np.clip(np.asarray(y, float).reshape(len(y), -1), 1e-3, 1.0))
        self.vector_ = np.ndim(y) == 1
        # a one-epoch curve is its own basis
        self.pca_ = (PCA(min(self.components, Y.shape[1]), random_state=self.random_state).fit(Y)
                     if Y.shape[1] > 1 else None)
        self._fit_coefficients(np.asarray(X, float), Y if self.pca_ is None else self.pca_.transform(Y), sample_weight)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = self._predict_coefficients(np.asarray(X, float))
        curves = np.minimum.accumulate(np.exp(Z if self.pca_ is None else self.pca_.inverse_transform(Z)), axis=1)
        return curves[:, 0] if self.vector_ else curves

    def _fit_coefficients(self, X: np.ndarray, Z: np.ndarray, sample_weight: np.ndarray | None) -> None:
        raise NotImplementedError

    def _predict_coefficients(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class CurveBoosting(CurveBasisRegressor):
    """Error curves by gradient boosting in the curve basis: one boosted-tree regressor per component."""

    def __init__(self, components: int = 3, max_iter: int = 300, learning_rate: float = 0.06,
                 max_leaf_nodes: int = 20, min_samples_leaf: int = 10, l2_regularization: float = 1.0,
                 random_state: int | None = None):
        self.components, self.max_iter, self.learning_rate = components, max_iter, learning_rate
        self.max_leaf_nodes, self.min_samples_leaf = max_leaf_nodes, min_samples_leaf
        self.l2_regularization, self.random_state = l2_regularization, random_state

    def _fit_coefficients(self, X: np.ndarray, Z: np.ndarray, sample_weight: np.ndarray | None) -> None:
        self.regressors_ = [HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            random_state=self.random_state).fit(X, z, sample_weight=sample_weight) for z in Z.T]

    def _predict_coefficients(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([r.predict(X) for r in self.regressors_])


class CurveGP(CurveBasisRegressor):
    """Error curves by Gaussian processes in the curve basis: per component, scikit-learn's
    ``GaussianProcessRegressor`` on the standardised inputs with a Matern-``nu`` kernel (a single
    length scale) plus white noise, its hyperparameters fitted by marginal likelihood (each component
    its own: the curve's level and its shape vary on different scales and with different noise).
    Smooth where the trees are piecewise constant, so its errors differ from theirs (see
    :class:`CurveBlend`). A GP weighs every curve alike: it takes no ``sample_weight``."""

    def __init__(self, components: int = 3, nu: float = 2.5, random_state: int | None = None):
        self.components, self.nu, self.random_state = components, nu, random_state

    def _fit_coefficients(self, X: np.ndarray, Z: np.ndarray, sample_weight: np.ndarray | None) -> None:
        if sample_weight is not None:
            raise ValueError("CurveGP weighs every curve alike: fit it without sample_weight")
        self.scaler_ = StandardScaler().fit(X)
        kernel = ConstantKernel() * Matern(length_scale=3.0, length_scale_bounds=(1e-2, 1e3), nu=self.nu) \
            + WhiteKernel(0.1, (1e-4, 1.0))
        self.regressors_ = [GaussianProcessRegressor(kernel, normalize_y=True, random_state=self.random_state)
                            .fit(self.scaler_.transform(X), z) for z in Z.T]

    def _predict_coefficients(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([r.predict(self.scaler_.transform(X)) for r in self.regressors_])


class CurveBlend(RegressorMixin, BaseEstimator):
    """The geometric mean of several curve models' predicted curves (each fitted as given; a mean of
    non-increasing curves stays non-increasing). scikit-learn's ``VotingRegressor`` takes one output
    and averages arithmetically, hence this one."""

    def __init__(self, estimators: Sequence[BaseEstimator] = ()):
        self.estimators = estimators

    def fit(self, X: np.ndarray, y: np.ndarray) -> CurveBlend:
        if not self.estimators:
            raise ValueError("CurveBlend needs at least one estimator")
        self.estimators_ = [clone(e).fit(X, y) for e in self.estimators]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        logs = [np.log(np.clip(e.predict(X), 1e-6, None)) for e in self.estimators_]
        return np.exp(np.mean(logs, axis=0))


def fitting_data(table: SurrogateTable) -> tuple[np.ndarray, np.ndarray]:
    """What an error model is fitted to: the :func:`architecture_matrix` of the table's trained
    architectures and their :func:`error_curves`, cut to the shortest curve."""
    rows = table.trained()
    curves = [error_curves(r) for r in rows]
    epochs = min(len(c) for c in curves)
    return (architecture_matrix(table.genomes(rows), table.space.max_blocks),
            np.array([c[:epochs] for c in curves]))


#: the error models a table can be fitted with, by name (each maps :func:`architecture_matrix` to the
#: error curve); ``benchmarks/surrogate_report.py`` compares them by cross-validation, and the default
#: of :class:`SurrogateAudioNASProblem` is the best there
ERROR_MODELS: dict[str, Callable[[int, int], Any]] = {
    "curve_boosting": lambda trees, seed: CurveBoosting(max_iter=trees, random_state=seed),
    "curve_gp": lambda trees, seed: CurveGP(random_state=seed),
    "curve_blend": lambda trees, seed: CurveBlend([CurveBoosting(max_iter=trees, random_state=seed),
                                                   CurveGP(random_state=seed)]),
    "forest": lambda trees, seed: RandomForestRegressor(n_estimators=trees, min_samples_leaf=2,
                                                        random_state=seed, n_jobs=1),
    "extra_trees": lambda trees, seed: ExtraTreesRegressor(n_estimators=trees, min_samples_leaf=2,
                                                           random_state=seed, n_jobs=1),
    "boosting": lambda trees, seed: MultiOutputRegressor(HistGradientBoostingRegressor(
        max_iter=trees, learning_rate=0.05, random_state=seed)),
}


@dataclass(frozen=True)
class ErrorModelReport(Agreement):
    """k-fold cross-validated :class:`Agreement` of the error model with the table, at the full budget."""

    folds: int

    def __str__(self) -> str:
        return f"{self.folds}-fold, {super().__str__()}"


class SurrogateAudioNASProblem(CheapQuantities, Problem):
    """The audio NAS problem of a table's problem file, with a fitted model in place of training.

    The error model maps the architecture features of :mod:`moo_audio.energy.features` to the whole
    error curve (:func:`error_curves`), so the problem answers at any number of epochs up to the
    table's budget: ``problem.evaluate(X, epochs=5)`` is the error a 5-epoch training of the table's
    schedule would reach, and ``out["train_seconds"]`` what that training costs (a second forest,
    fitted to the table's wall seconds per epoch, on the table's machine).

    Args:
        table: a shipped table name (:data:`TABLES`), a table file, or a loaded :class:`SurrogateTable`.
        energy_model: predicts energy per inference (mJ); default the packaged forest (as the real problem).
        constraints: default the table's (those of its problem file); breaking a cheap one gives the
            error of an untrained candidate (1.0), as the real problem does.
        error_model: a name of :data:`ERROR_MODELS`.
        n_estimators: trees (boosting iterations per output) of the error model (a GP has none).
        folds: folds of the cross-validation in :attr:`error_model_report` (0: none, the report is ``None``).
        seed: seed of the models and of the cross-validation split.
        seed_noise: answer as one training run does rather than as the mean of runs: every evaluation
            adds a real run's deviation from its architecture's mean (:class:`~moo_audio.seed_noise.SeedNoise`,
            from the table's architectures trained with several seeds), so evaluating a genome twice
            gives two answers, as training it twice does. :meth:`predict_error` stays the mean.
        noise_seed: seed of the noise's draws (one generator for the problem's life).
    """

    def __init__(self, table: str | os.PathLike | SurrogateTable = "builtin",
                 energy_model: EnergyModel | None = None, constraints: Constraints | None = None,
                 error_model: str = "curve_boosting", n_estimators: int = 300, folds: int = 5, seed: int = 0,
                 seed_noise: bool = False, noise_seed: int = 0):
        if error_model not in ERROR_MODELS:
            raise ValueError(f"unknown error_model {error_model!r}: give one of {sorted(ERROR_MODELS)}")
        self.table = table if isinstance(table, SurrogateTable) else load_table(table)
        self.space = self.table.space
        self.energy_model = energy_model or default_model()
        self.constraints = constraints if constraints is not None else self.table.constraints
        self.repair = GenomeRepair()
        rows = self.table.trained()
        if len(rows) < max(2, 2 * folds):
            raise ValueError(f"surrogate table of {self.table.meta['problem']!r} has {len(rows)} trained "
                             f"architectures; at least {2 * folds} are needed")
        X, Y = fitting_data(self.table)
        self.max_epochs = Y.shape[1]
        y = Y if self.max_epochs > 1 else Y[:, 0]  # scikit-learn wants one output as a vector
        self.error_model = ERROR_MODELS[error_model](n_estimators, seed)
        #: the table's error curves, and the error model's cross-validated predictions of them
        self.trained_curves, self.cv_curves = Y, None
        self.error_model_report: ErrorModelReport | None = None
        if folds:
            cv = cross_val_predict(self.error_model, X, y, cv=KFold(folds, shuffle=True, random_state=seed))
            self.cv_curves = cv.reshape(len(Y), -1)
            self.error_model_report = ErrorModelReport(**vars(Agreement.of(self.cv_curves[:, -1], Y[:, -1])),
                                                       folds=folds)
        self.error_model.fit(X, y)
        per_epoch = np.array([r["seconds"] / max(1, r["epochs"]) for r in rows])
        self.seconds_model = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)
        self.seconds_model.fit(X, np.log(per_epoch))
        #: what ``seed_noise=True`` adds to each evaluation (``None``: the mean of runs is answered)
        self.seed_noise: SeedNoise | None = None
        if seed_noise:
            repeated = [c[:, :self.max_epochs] for c in map(run_error_curves, rows) if len(c) >= 2]
            if len(repeated) < MIN_ARCHITECTURES:
                raise ValueError(f"seed_noise=True needs at least {MIN_ARCHITECTURES} architectures trained with "
                                 f"several seeds; the table of {self.table.meta['problem']!r} has {len(repeated)}")
            self.seed_noise = SeedNoise.from_runs(repeated)
            #: the generator of the noise's draws (replace it to restart them, e.g. once per benchmark run)
            self.noise_rng = np.random.default_rng(noise_seed)
        n = self.space.n_var
        super().__init__(n_var=n, n_obj=len(OBJECTIVES), n_ieq_constr=len(self.constraints.active()),
                         xl=np.zeros(n), xu=np.ones(n), vars=self.space.pymoo_vars(),
                         requires_kwargs=True)  # evaluate(X, epochs=...) reaches _evaluate

    def _inputs(self, genomes: Sequence[Genome]) -> np.ndarray:
        return architecture_matrix(genomes, self.space.max_blocks)

    def _epochs(self, epochs: int | None) -> int:
        if epochs is None:
            return self.max_epochs
        whole = isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool)
        if not whole or not 1 <= epochs <= self.max_epochs:
            raise ValueError(f"epochs must be an integer in 1..{self.max_epochs} (the table's budget), got {epochs!r}")
        return int(epochs)

    def predict_error(self, genomes: Sequence[Genome], epochs: int | None = None) -> np.ndarray:
        """The model's classification error of each genome after ``epochs`` (default the whole
        budget), clipped to ``[0, 1]``."""
        return self._error(self._inputs(genomes), epochs)

    def predict_train_seconds(self, genomes: Sequence[Genome], epochs: int | None = None) -> np.ndarray:
        """Wall seconds a training of each genome for ``epochs`` (default the whole budget) took on the
        table's machine, predicted."""
        return self._seconds(self._inputs(genomes), epochs)

    def _error(self, inputs: np.ndarray, epochs: int | None, noisy: bool = False) -> np.ndarray:
        column = self._epochs(epochs) - 1  # checked before the noise draws anything
        curves = np.clip(self.error_model.predict(inputs).reshape(len(inputs), -1), 0.0, 1.0)
        if noisy and self.seed_noise is not None:
            curves = self.seed_noise.sample(curves, self.noise_rng)
        return curves[:, column]

    def _seconds(self, inputs: np.ndarray, epochs: int | None) -> np.ndarray:
        return self._epochs(epochs) * np.exp(self.seconds_model.predict(inputs))

    def _evaluate(self, X, out, *args, epochs: int | None = None, **kwargs):
        genomes = self.space.from_x(X)
        columns = cost_columns(cheap_values(genomes, self.energy_model))
        energy, memory, macs = columns["energy_mj"], columns["memory_kb"], columns["macs"]
        inputs = self._inputs(genomes)  # once for both models: it walks every network's layers
        error, seconds = self._error(inputs, epochs, noisy=True), self._seconds(inputs, epochs)
        skipped = ~self.constraints.cheap_feasible(energy, memory, macs)
        error[skipped] = 1.0  # the real problem does not train these: accuracy 0, no training time
        seconds[skipped] = 0.0
        out["F"] = objective_matrix({**columns, "error": error})
        g = self.constraints.values(1.0 - error, energy, memory, macs)
        if g:
            out["G"] = np.column_stack(list(g.values()))
        out.update(columns)
        out["val_accuracy"] = 1.0 - error
        out["train_seconds"] = seconds
