"""Multi-objective Bayesian optimisation with BoTorch, as a pymoo Algorithm.

One Gaussian process per expensive objective (``SingleTaskGP``, or ``MixedSingleTaskGP`` when the
space has unordered choices), plus one for feasibility when some evaluation failed or violated a
constraint, in a ``ModelListGP``. Objectives a problem declares cheap (``cheap_objectives`` +
``evaluate_cheap``) are not modelled: the acquisition reads their exact values (see
:class:`BoTorchMOBO`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from botorch.acquisition import qLogNoisyExpectedImprovement, qUpperConfidenceBound
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.acquisition.multi_objective import (
    qExpectedHypervolumeImprovement,
    qLogNoisyExpectedHypervolumeImprovement,
    qNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.acquisition.utils import get_infeasible_cost
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, ModelListGP, SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from botorch.models.transforms.input import ChainedInputTransform, InputTransform
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.optim import optimize_acqf, optimize_acqf_discrete, optimize_acqf_mixed_alternating
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions import (
    FastNondominatedPartitioning,
    NondominatedPartitioning,
)
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
from botorch.utils.objective import apply_constraints
from botorch.utils.sampling import sample_simplex
from gpytorch.kernels import ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from moo_audio.algorithms._base import UnitCubeAlgorithm
from moo_audio.algorithms._space import UnitCube, row_keys
from moo_audio.algorithms.operators import OneGeneMutation, SobolSampling

Acquisition = Literal["qLogNEHVI", "qNEHVI", "qEHVI", "qNParEGO", "rs-UCB"]
ACQUISITIONS: tuple[str, ...] = ("qLogNEHVI", "qNEHVI", "qEHVI", "qNParEGO", "rs-UCB")
GPInputs = Literal["encoding", "features", "encoding+features", "additive"]
GP_INPUTS: tuple[str, ...] = ("encoding", "features", "encoding+features", "additive")
_DTYPE = torch.float64
#: L-BFGS iterations of a GP fit; the single-task GPs here converge in ~150, the mixed (categorical)
#: GP's flat likelihood otherwise keeps L-BFGS going for several hundred (3x the time, same fit)
_FIT_MAXITER = 200
#: candidates per acquisition call of the prescreen (bounds its memory)
_SCREEN_BATCH = 256


def default_n_init(n_dims: int) -> int:
    """Default size of the initial Sobol design: ``2 (d + 1)``, at most 20."""
    return min(2 * (n_dims + 1), 20)


def inferred_reference_point(F: np.ndarray) -> np.ndarray:
    """Reference point (minimisation frame) from observed objectives: the nadir of their Pareto
    front pushed out by 10% of its range (BoTorch's ``infer_reference_point``)."""
    front = F[NonDominatedSorting().do(F, only_non_dominated_front=True)]
    return -infer_reference_point(-torch.as_tensor(front, dtype=_DTYPE)).numpy()


class PointValues:
    """Exact values of a function of a problem's design matrix at cube points.

    Each distinct point is computed once, in batch (``function`` of the decoded and repaired candidates,
    ``width`` columns), and then looked up, so acquisition functions and GP input transforms can call it
    freely (values carry no gradients). ``width=None``: whatever the first call returns.
    """

    def __init__(self, space: UnitCube, function: Callable[[np.ndarray], np.ndarray], width: int | None,
                 name: str):
        self.space, self.function, self.width, self.name = space, function, width, name
        self._values: dict[bytes, np.ndarray] = {}

    def remember(self, U: np.ndarray, values: np.ndarray) -> None:
        """Store values already known at cube points ``U``."""
        self._values.update(zip(row_keys(U), values))

    def compute(self, U: np.ndarray) -> np.ndarray:
        """Values at cube points ``(n, d)``; computes the unknown ones."""
        keys = row_keys(U)
        todo = {key: u for key, u in zip(keys, U) if key not in self._values}
        if todo:
            X, _ = self.space.canonical(np.array(list(todo.values())))
            values = np.asarray(self.function(X), dtype=float)
            if self.width is None and values.ndim == 2:
                self.width = values.shape[1]
            if values.shape != (len(todo), self.width):
                expected = f"({len(todo)}, {'k' if self.width is None else self.width})"
                raise ValueError(f"{self.name} returned shape {values.shape} for {len(todo)} candidates, "
                                 f"expected {expected}")
            self._values.update(zip(todo, values))
        return np.stack([self._values[key] for key in keys]).reshape(len(keys), self.width)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        flat = X.detach().reshape(-1, X.shape[-1]).cpu().numpy()
        return torch.as_tensor(self.compute(flat), dtype=X.dtype).reshape(*X.shape[:-1], self.width)


class ObjectiveScale:
    """The frame the GPs and the hypervolume acquisitions see: the problem's objectives (minimisation)
    with those at ``log_indices`` replaced by their natural logarithm.

    An objective that spans decades (energy, memory) improves as much from 0.01 to 0.001 as from 10
    to 1 for its user, and on a log scale the hypervolume improvement says so; on the linear scale the
    cheap end of the front is worth almost nothing to the acquisition. Dominance is unchanged. (BoTorch's
    ``Log`` outcome transform would not do: the posterior is returned on the original scale, so the
    hypervolume stays linear; and exact cheap objectives are not modelled at all.)
    """

    def __init__(self, log_indices: tuple[int, ...]):
        self.log_indices = log_indices

    def __call__(self, F: np.ndarray, columns: tuple[int, ...] | None = None) -> np.ndarray:
        """``F`` (rows; the objectives at ``columns``, default all) in this frame; NaN stays NaN."""
        F = np.array(F, dtype=float)
        columns = tuple(range(F.shape[1])) if columns is None else columns
        for k, j in enumerate(columns):
            if j in self.log_indices:
                values = F[:, k]
                if np.any(values[np.isfinite(values)] <= 0):
                    raise ValueError(f"objective {j} is on a log scale (log_objectives) but has a value <= 0: "
                                     f"{values[np.isfinite(values)].min():g}")
                F[:, k] = np.log(values)
        return F


class CheapObjectives(PointValues):
    """Exact values of a problem's cheap objectives at cube points, in BoTorch's maximisation frame
    (``problem.evaluate_cheap``, one column per cheap objective, through ``scale``)."""

    def __init__(self, problem: Problem, space: UnitCube, indices: tuple[int, ...],
                 scale: ObjectiveScale | None = None):
        scale = scale if scale is not None else ObjectiveScale(())
        super().__init__(space, lambda X: -scale(problem.evaluate_cheap(X), indices), len(indices),
                         "evaluate_cheap (one column per cheap objective)")
        self.indices = indices

    def remember(self, U: np.ndarray, F: np.ndarray) -> None:
        """Store values already known (``F`` all objectives, minimisation, in the ``scale`` frame)."""
        super().remember(U, -F[:, self.indices])


class AppendPointValues(InputTransform):
    """GP input transform: cube points with exact :class:`PointValues` appended (or replaced by them).

    Written here because BoTorch's ``AppendFeatures`` is made for risk measures: it is one-to-many
    (each point expanded over a set of environmental features), where here each point has its own.
    """

    def __init__(self, values: PointValues, keep_encoding: bool):
        super().__init__()
        self.values, self.keep_encoding = values, keep_encoding
        self.transform_on_train = self.transform_on_eval = self.transform_on_fantasize = True

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        features = self.values(X)
        return torch.cat([X, features], dim=-1) if self.keep_encoding else features


class BoTorchMOBO(UnitCubeAlgorithm):
    """Multi-objective Bayesian optimisation over the unit-cube view of any pymoo problem.

    A scrambled Sobol design of ``n_init`` points, then batches of ``q`` candidates maximising the
    chosen acquisition (BoTorch maximises, so objectives enter negated):

    * ``"qLogNEHVI"`` (default), ``"qNEHVI"``: noisy expected hypervolume improvement (Daulton et al.
      2021; the log version, Ament et al. 2023, is numerically better behaved);
    * ``"qEHVI"``: expected hypervolume improvement over the observed front (Daulton et al. 2020);
    * ``"qNParEGO"``: noisy log-EI of a random augmented Chebyshev scalarisation per candidate
      (Knowles 2006, as in BoTorch);
    * ``"rs-UCB"``: UCB of a random Chebyshev scalarisation per candidate (Paria et al. 2019).

    Failed evaluations (non-finite objectives) are left out of the objective GPs; when any
    evaluation failed or was infeasible, a further GP fitted to a feasibility label (-1 feasible,
    +1 infeasible or failed) is passed as a BoTorch outcome constraint, so the acquisition steers
    away from such regions. Hypervolume reference: ``ref_point`` (minimisation frame) or, by default,
    inferred each iteration from the feasible observations (:func:`inferred_reference_point`).

    Acquisition optimisation (``acqf_optimizer``):

    * ``"discrete"`` (default): ``optimize_acqf_discrete`` over ``n_candidates`` candidates, one third
      Sobol points and the rest perturbations of the current Pareto set (Gaussian, sd 0.1, and
      one-gene mutations), all already decoded, repaired, re-encoded and new, so the acquisition
      scores exactly what would be evaluated; with exact cheap objectives it is the only choice
      (their function need not be differentiable) and their values are computed once, in batch.
    * ``"continuous"``: gradient-based, BoTorch's ``optimize_acqf`` (multi-start L-BFGS over the cube)
      on continuous spaces and ``optimize_acqf_mixed_alternating`` (L-BFGS on the real dimensions
      alternating with local search over the canonical values of integer/choice dimensions)
      otherwise; the optimum is then decoded, repaired and deduplicated, so coordinates relaxed
      through a problem's own ``repair`` are rounded only there.

    The discrete optimiser is the default because it was both better and faster in the measurements
    of ``docs/algorithms.md``: in 10-D, L-BFGS drives the acquisition to the cube's corners, where
    the GP is most uncertain (DTLZ2, optimum at the centre: median hypervolume at 60 evaluations
    0.060 discrete vs 0.026 continuous; ZDT1 equal).

    Args:
        acquisition: one of :data:`ACQUISITIONS`.
        q: candidates per iteration (batch size).
        n_init: size of the initial Sobol design; default :func:`default_n_init`.
        ref_point: hypervolume reference point, minimisation frame, one value per objective (on the
            objectives' own scale; log-scaled ones are converted).
        exact_cheap_objectives: model only the expensive objectives and use the problem's exact cheap
            ones; default: whenever the problem declares ``cheap_objectives``.
        acqf_optimizer: ``"discrete"`` or ``"continuous"`` (see above).
        num_restarts: L-BFGS restarts of the continuous optimiser.
        raw_samples: raw samples to pick the restarts from.
        mc_samples: quasi-Monte-Carlo samples of the acquisition.
        n_candidates: size of the candidate set of the discrete optimiser.
        ucb_beta: exploration weight of ``"rs-UCB"``.
        maxiter_alternating: alternating steps of the continuous optimiser on mixed spaces.
        gp_inputs: what the GPs read: ``"encoding"`` (the cube point, default), ``"features"`` (the
            problem's exact ``architecture_features(X)``, e.g. MACs, parameters and front-end genes of a
            network), ``"encoding+features"`` (both, one kernel) or ``"additive"`` (both, the sum of a
            kernel on each; not with categorical dimensions); features need the discrete optimiser. On
            the audio NAS surrogate the features ranked held-out real trainings better, yet only
            ``"additive"`` matched the encoding's hypervolume after 100 evaluations (ahead at 50,
            intervals overlapping), hence the default (docs/algorithms.md).
        log_objectives: indices of the objectives that the GPs and the acquisition read on a log scale
            (:class:`ObjectiveScale`); default: the problem's ``log_objectives`` (none if it declares
            none), ``()``: every objective linear. On the audio NAS surrogate the log scale of energy
            and memory reached NSGA-II's 200-evaluation hypervolume in fewer evaluations
            (docs/benchmarks.md, "The objectives' scale").
        sampling: pymoo sampling of the initial design (default :class:`SobolSampling`).
        mutation: pymoo mutation of the candidate set's local moves (default :class:`OneGeneMutation`).
        partitioning_alpha: BoTorch's approximation level of the hypervolume box decompositions
            (0: exact). With 3 objectives and 100 observations the exact decompositions take about
            half of a qLogNEHVI step; ``0.01`` with ``mc_samples=16`` and ``n_candidates=512`` makes
            the step several times faster (docs/algorithms.md).
        prescreen: with the discrete optimiser and ``q > 1``, keep only the ``prescreen`` candidates
            of highest single-point acquisition for the greedy batch (whose later picks are scored
            jointly with the earlier ones, at a cost growing as ``2^q``); ``None``: all candidates.
        max_iep: BoTorch's ``max_iep`` of the noisy hypervolume acquisitions: up to this many pending
            points of the greedy batch are scored jointly with each candidate instead of re-partitioning
            the box decompositions after every pick (0: re-partition).
        warm_start_maxiter: L-BFGS iterations of a GP fit that starts from the GP's hyperparameters
            of the previous step (``None``: every fit from BoTorch's initial values, up to 200). It
            lost hypervolume on DTLZ2 in ``benchmarks/algorithms_smoke.py`` (the fits stay near the
            first fits' hyperparameters), so it is not recommended.
        The defaults ``prescreen=64, max_iep=4, mc_samples=16`` make a step about 4x cheaper than the
        exact greedy batch (``prescreen=None, max_iep=0, mc_samples=32``), level with it on ZDT1 and
        7% below it in median hypervolume after 100 evaluations on DTLZ2 (docs/algorithms.md).
    """

    def __init__(
        self,
        acquisition: Acquisition = "qLogNEHVI",
        q: int = 4,
        n_init: int | None = None,
        ref_point: np.ndarray | None = None,
        exact_cheap_objectives: bool | None = None,
        acqf_optimizer: Literal["discrete", "continuous"] = "discrete",
        num_restarts: int = 4,
        raw_samples: int = 128,
        mc_samples: int = 16,
        n_candidates: int = 1024,
        ucb_beta: float = 0.2,
        maxiter_alternating: int = 8,
        partitioning_alpha: float = 0.0,
        prescreen: int | None = 64,
        max_iep: int = 4,
        warm_start_maxiter: int | None = None,
        gp_inputs: GPInputs = "encoding",
        log_objectives: tuple[int, ...] | None = None,
        sampling: Sampling | None = None,
        mutation: Mutation | None = None,
        **kwargs,
    ):
        super().__init__(sampling=sampling if sampling is not None else SobolSampling(), **kwargs)
        self.mutation = mutation if mutation is not None else OneGeneMutation()
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acquisition!r}; choose one of {ACQUISITIONS}")
        if acqf_optimizer not in ("discrete", "continuous"):
            raise ValueError(f"acqf_optimizer must be 'discrete' or 'continuous', got {acqf_optimizer!r}")
        sizes = {"q": q, "num_restarts": num_restarts, "raw_samples": raw_samples, "mc_samples": mc_samples,
                 "n_candidates": n_candidates}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if n_init is not None and n_init < 1:
            raise ValueError(f"n_init must be >= 1, got {n_init}")
        self.acquisition, self.q, self.n_init, self.ref_point = acquisition, q, n_init, ref_point
        self.exact_cheap_objectives, self.acqf_optimizer = exact_cheap_objectives, acqf_optimizer
        self.num_restarts, self.raw_samples, self.mc_samples = num_restarts, raw_samples, mc_samples
        self.n_candidates, self.ucb_beta = n_candidates, ucb_beta
        if not 0.0 <= partitioning_alpha < 1.0:
            raise ValueError(f"partitioning_alpha must be in [0, 1), got {partitioning_alpha}")
        self.partitioning_alpha = partitioning_alpha
        self.maxiter_alternating = maxiter_alternating
        if prescreen is not None and prescreen < q:
            raise ValueError(f"prescreen must be at least q = {q}, got {prescreen}")
        self.prescreen = prescreen
        if max_iep < 0 or (warm_start_maxiter is not None and warm_start_maxiter < 1):
            raise ValueError(f"max_iep must be >= 0 and warm_start_maxiter >= 1, got {max_iep}, {warm_start_maxiter}")
        self.max_iep, self.warm_start_maxiter = max_iep, warm_start_maxiter
        if gp_inputs not in GP_INPUTS:
            raise ValueError(f"unknown gp_inputs {gp_inputs!r}; choose one of {GP_INPUTS}")
        self.gp_inputs = gp_inputs
        self.log_objectives = log_objectives

    # ------------------------------------------------------------------ setup and pymoo hooks

    def _setup(self, problem: Problem, **kwargs) -> None:
        super()._setup(problem, **kwargs)
        self._hyperparameters: dict[int | str, dict[str, torch.Tensor]] = {}  # of the last GP fits
        if problem.n_obj < 2:
            raise ValueError("BoTorchMOBO is multi-objective: the problem needs at least two objectives")
        if self.ref_point is not None and np.shape(self.ref_point) != (problem.n_obj,):
            raise ValueError(f"ref_point needs {problem.n_obj} values, got shape {np.shape(self.ref_point)}")
        declared = tuple(int(j) for j in getattr(problem, "cheap_objectives", ()) or ())
        use_cheap = bool(declared) if self.exact_cheap_objectives is None else self.exact_cheap_objectives
        if use_cheap and not (declared and callable(getattr(problem, "evaluate_cheap", None))):
            raise ValueError(
                "exact_cheap_objectives needs a problem with `cheap_objectives` and `evaluate_cheap`")
        self.cheap = declared if use_cheap else ()
        if any(not 0 <= j < problem.n_obj for j in self.cheap) or len(set(self.cheap)) != len(self.cheap):
            raise ValueError(
                f"cheap_objectives {self.cheap} must be distinct objective indices < {problem.n_obj}")
        self.expensive = [j for j in range(problem.n_obj) if j not in self.cheap]
        if not self.expensive:
            raise ValueError("all objectives are declared cheap: nothing for Bayesian optimisation to model")
        if self.cheap and self.acqf_optimizer != "discrete":
            raise ValueError("exact cheap objectives need acqf_optimizer='discrete' (they have no gradients)")
        logs = getattr(problem, "log_objectives", ()) if self.log_objectives is None else self.log_objectives
        logs = tuple(int(j) for j in logs or ())
        if any(not 0 <= j < problem.n_obj for j in logs):
            raise ValueError(f"log_objectives {logs} must be objective indices < {problem.n_obj}")
        self.scale = ObjectiveScale(logs)
        self.features = None
        if self.gp_inputs != "encoding":
            if not callable(getattr(problem, "architecture_features", None)):
                raise ValueError(f"gp_inputs={self.gp_inputs!r} needs a problem with `architecture_features(X)`")
            if self.acqf_optimizer != "discrete":
                raise ValueError(
                    f"gp_inputs={self.gp_inputs!r} needs acqf_optimizer='discrete' (features have no gradients)")
            if self.gp_inputs == "additive" and self.space.categorical:
                raise ValueError("gp_inputs='additive' needs a space without categorical dimensions")
            self.features = PointValues(self.space, problem.architecture_features, None, "architecture_features")

    def _initialize_infill(self) -> Population:
        n = self.n_init if self.n_init is not None else default_n_init(self.space.n_dims)
        return self._novel(self._sample(n))[0]

    def _infill(self) -> Population:
        q = self._budget(self.q)
        with torch.random.fork_rng():
            torch.manual_seed(int(self.random_state.integers(2**31)))
            U = self.propose(q)
        return self._novel(U)[0]

    def _initialize_advance(self, infills=None, **kwargs) -> None:
        self.pop = self.evaluated

    def _advance(self, infills=None, **kwargs) -> None:
        self.pop = self.evaluated

    # ------------------------------------------------------------------ model

    def _training_data(self):
        """Cube points, expensive objectives (max frame, NaN where failed), feasibility labels."""
        U = torch.as_tensor(self.evaluated.get("U"), dtype=_DTYPE)
        F = self.scale(self.evaluated.get("F"))
        feasible = self.evaluated.get("FEAS")[:, 0]
        Y = torch.as_tensor(-F[:, self.expensive], dtype=_DTYPE)
        label = None
        if not feasible.all():
            label = torch.as_tensor(np.where(feasible, -1.0, 1.0)[:, None], dtype=_DTYPE)
        return U, Y, label

    def _gp(self, X: torch.Tensor, Y: torch.Tensor):
        # the cube is the known domain: fixed bounds, as learned ones blow up a dimension the data
        # happen not to vary; features are scaled to the range of the GP's training points
        bounds = torch.as_tensor(self.space.bounds, dtype=_DTYPE)
        input_transform = Normalize(d=X.shape[-1], bounds=bounds)
        keep_encoding = self.gp_inputs != "features"
        if self.features is not None:
            values = self.features(X)
            low, high = values.min(dim=0).values, values.max(dim=0).values
            scale = torch.stack([low, torch.where(high > low, high, low + 1.0)])
            scale = torch.cat([bounds, scale], dim=-1) if keep_encoding else scale
            input_transform = ChainedInputTransform(
                features=AppendPointValues(self.features, keep_encoding),
                normalize=Normalize(d=scale.shape[-1], bounds=scale))
        transforms = {"input_transform": input_transform, "outcome_transform": Standardize(m=1)}
        if self.gp_inputs == "additive":
            d, k = self.space.n_dims, self.features.width
            encoding, features = (ScaleKernel(get_covar_module_with_dim_scaled_prior(
                ard_num_dims=len(dims), active_dims=dims)) for dims in (list(range(d)), list(range(d, d + k))))
            return SingleTaskGP(X, Y, covar_module=encoding + features, **transforms)
        if self.space.categorical and keep_encoding:
            return MixedSingleTaskGP(X, Y, cat_dims=sorted(self.space.categorical), **transforms)
        return SingleTaskGP(X, Y, **transforms)

    def fit_gp(self, U: torch.Tensor, Y: torch.Tensor, previous: dict[str, torch.Tensor] | None = None):
        """One GP as the algorithm fits it, to cube points ``U`` and one outcome column ``Y`` (maximisation
        frame); with ``previous`` hyperparameters it starts from them for ``warm_start_maxiter``
        L-BFGS iterations. The problem must be set up (``setup`` or a run)."""
        gp, maxiter = self._gp(U, Y), _FIT_MAXITER
        if previous is not None:  # parameters only: the transforms' buffers belong to the new data
            for name, parameter in gp.named_parameters():
                parameter.data.copy_(previous[name])
            maxiter = self.warm_start_maxiter
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp),
                         optimizer_kwargs={"options": {"maxiter": maxiter}})
        return gp

    def fit_surrogate(self) -> ModelListGP:
        """Fit the GPs to everything evaluated: one per expensive objective (on its finite values),
        then one on the feasibility label when some evaluation was infeasible or failed. With
        ``warm_start_maxiter``, a GP fitted before starts from its previous hyperparameters."""
        U, Y, label = self._training_data()
        data = {k: (U[ok], Y[ok, k : k + 1]) for k in range(Y.shape[1]) for ok in [torch.isfinite(Y[:, k])]}
        if label is not None:
            data["feasibility"] = (U, label)
        previous = self._hyperparameters if self.warm_start_maxiter else {}
        models = {key: self.fit_gp(X, y, previous.get(key)) for key, (X, y) in data.items()}
        self._hyperparameters = {key: {name: p.detach().clone() for name, p in gp.named_parameters()}
                                 for key, gp in models.items()}
        return ModelListGP(*models.values())

    # ------------------------------------------------------------------ proposal

    def propose(self, q: int) -> np.ndarray:
        """``q`` cube points maximising the acquisition (a Sobol batch while the data cannot support a
        model: fewer than two usable values of an objective, or no feasible evaluation)."""
        F, feasible = self.scale(self.evaluated.get("F")), self.evaluated.get("FEAS")[:, 0]
        usable = feasible & np.all(np.isfinite(F), axis=1)
        counts = np.isfinite(F[:, self.expensive]).sum(axis=0)
        if not usable.any() or counts.min() < 2:
            return self.space.sobol(q, self.random_state)
        try:
            model = self.fit_surrogate()
        except ModelFittingError as error:
            warnings.warn(f"GP fitting failed ({error}); proposing a Sobol batch instead", stacklevel=2)
            return self.space.sobol(q, self.random_state)

        U_obs = self.evaluated.get("U")[usable]
        F_obs = F[usable]
        cheap = None
        if self.cheap:
            cheap = CheapObjectives(self.problem, self.space, self.cheap, self.scale)
            cheap.remember(U_obs, F_obs)
        choices = self._candidate_set(U_obs, F_obs, cheap) if self.acqf_optimizer == "discrete" else None
        if choices is not None and len(choices) == 0:
            return self.space.sobol(q, self.random_state)

        ref = self.reference_point(F_obs)
        feasibility = len(self.expensive)  # index of the feasibility GP's output, if there is one
        context = _Context(
            model=model,
            objective=self._multi_objective(cheap),
            constraints=[lambda Z: Z[..., feasibility]] if len(model.models) > feasibility else None,
            X_baseline=torch.as_tensor(U_obs, dtype=_DTYPE),
            Y_obs=torch.as_tensor(-F_obs, dtype=_DTYPE),
            ref_point=torch.as_tensor(-ref, dtype=_DTYPE),
            sampler=SobolQMCNormalSampler(torch.Size([self.mc_samples])),
        )
        if self.acquisition in ("qNParEGO", "rs-UCB"):
            return self._scalarized_batch(context, q, choices)
        return self._optimize(self._hypervolume_acqf(context), q, choices)

    def reference_point(self, F: np.ndarray) -> np.ndarray:
        """The hypervolume reference in this algorithm's objective frame: ``ref_point`` converted by
        :attr:`scale`, else inferred from ``F`` (feasible objectives, already in that frame)."""
        return inferred_reference_point(F) if self.ref_point is None else self.scale(np.atleast_2d(self.ref_point))[0]

    def _multi_objective(self, cheap: CheapObjectives | None) -> GenericMCMultiOutputObjective:
        """Model outcomes -> all objectives (max frame), inserting the exact cheap ones at their index."""
        n_exp, order = len(self.expensive), np.argsort(self.expensive + list(self.cheap))

        def objectives(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
            Z = samples[..., :n_exp]
            if cheap is None:
                return Z
            exact = cheap(X).expand(*Z.shape[:-1], len(self.cheap))
            return torch.cat([Z, exact], dim=-1)[..., order]

        return GenericMCMultiOutputObjective(objectives)

    def _hypervolume_acqf(self, c: _Context) -> AcquisitionFunction:
        common = {"model": c.model, "ref_point": c.ref_point, "sampler": c.sampler, "objective": c.objective,
                  "constraints": c.constraints}
        if self.acquisition == "qEHVI":
            partitioning = (FastNondominatedPartitioning(ref_point=c.ref_point, Y=c.Y_obs)
                            if self.partitioning_alpha == 0 else NondominatedPartitioning(
                                ref_point=c.ref_point, Y=c.Y_obs, alpha=self.partitioning_alpha))
            return qExpectedHypervolumeImprovement(partitioning=partitioning, **common)
        nehvi = qLogNoisyExpectedHypervolumeImprovement if self.acquisition == "qLogNEHVI" else (
            qNoisyExpectedHypervolumeImprovement)
        return nehvi(X_baseline=c.X_baseline, prune_baseline=True, alpha=self.partitioning_alpha,
                     max_iep=self.max_iep, **common)

    def _scalarized_batch(self, c: _Context, q: int, choices: torch.Tensor | None) -> np.ndarray:
        """Sequential greedy batch, one random Chebyshev scalarisation per candidate."""
        picked: list[np.ndarray] = []
        seed = int(self.random_state.integers(2**31))
        for weights in sample_simplex(c.Y_obs.shape[1], n=q, dtype=_DTYPE, seed=seed):
            scalarize = get_chebyshev_scalarization(weights, c.Y_obs)
            objective = GenericMCObjective(lambda Z, X=None, s=scalarize: s(c.objective(Z, X), X))
            pending = torch.as_tensor(np.array(picked), dtype=_DTYPE) if picked else None
            if self.acquisition == "qNParEGO":
                acqf = qLogNoisyExpectedImprovement(
                    c.model, c.X_baseline, sampler=c.sampler, objective=objective, constraints=c.constraints,
                    X_pending=pending,
                )
            else:
                if c.constraints is not None:
                    # BoTorch's ConstrainedMCObjective calls its objective without X, which the exact
                    # cheap objectives need; apply_constraints does the same weighting with X passed on
                    cost = get_infeasible_cost(c.X_baseline, c.model, objective)
                    objective = GenericMCObjective(
                        lambda Z, X=None, o=objective, cost=cost: apply_constraints(
                            obj=o(Z, X), constraints=c.constraints, samples=Z, infeasible_cost=cost))
                acqf = qUpperConfidenceBound(c.model, self.ucb_beta, sampler=c.sampler, objective=objective,
                                             X_pending=pending)
            picked.append(self._optimize(acqf, 1, choices)[0])
        return np.array(picked)

    def _optimize(self, acqf: AcquisitionFunction, q: int, choices: torch.Tensor | None) -> np.ndarray:
        bounds = torch.as_tensor(self.space.bounds, dtype=_DTYPE)
        if choices is not None:
            if self.prescreen is not None and q > 1 and len(choices) > self.prescreen:
                with torch.no_grad():
                    single = torch.cat([acqf(chunk.unsqueeze(-2)) for chunk in choices.split(_SCREEN_BATCH)])
                choices = choices[single.topk(self.prescreen).indices]
            X, _ = optimize_acqf_discrete(acqf, q=q, choices=choices)
        elif self.space.discrete:
            X, _ = optimize_acqf_mixed_alternating(
                acqf,
                bounds=bounds,
                discrete_dims={j: v.tolist() for j, v in self.space.ordinal.items()},
                cat_dims={j: v.tolist() for j, v in self.space.categorical.items()},
                q=q,
                num_restarts=self.num_restarts,
                raw_samples=self.raw_samples,
                options={"maxiter_alternating": self.maxiter_alternating},
            )
        else:
            X, _ = optimize_acqf(
                acqf, bounds=bounds, q=q, num_restarts=self.num_restarts, raw_samples=self.raw_samples,
                sequential=True,
            )
        return X.detach().numpy()

    def _candidate_set(
        self, U_obs: np.ndarray, F_obs: np.ndarray, cheap: CheapObjectives | None
    ) -> torch.Tensor:
        """Canonical, not yet evaluated candidates: Sobol points and perturbations of the Pareto set
        (Gaussian, sd 0.1, and one-gene mutations); with cheap objectives, those with finite values."""
        rng, n = self.random_state, self.n_candidates
        pareto = U_obs[NonDominatedSorting().do(F_obs, only_non_dominated_front=True)]
        n_local = (n - n // 3) // 2
        near = pareto[rng.integers(len(pareto), size=n_local)]
        U = np.concatenate([
            self.space.sobol(n - 2 * n_local, rng),
            np.clip(near + rng.normal(0.0, 0.1, near.shape), 0.0, 1.0),
            self._mutate(pareto[rng.integers(len(pareto), size=n_local)], self.mutation),
        ])
        _, U = self.space.canonical(U)
        keep, taken = [], set(self._seen)
        for i, key in enumerate(row_keys(U)):
            if key not in taken:
                taken.add(key)
                keep.append(i)
        U = U[keep]
        if cheap is not None and len(U):
            U = U[np.all(np.isfinite(cheap.compute(U)), axis=1)]
        return torch.as_tensor(U, dtype=_DTYPE)


@dataclass
class _Context:
    """What every acquisition of one iteration shares (tensors in BoTorch's maximisation frame)."""

    model: ModelListGP
    objective: GenericMCMultiOutputObjective
    constraints: list[Callable[[torch.Tensor], torch.Tensor]] | None
    X_baseline: torch.Tensor
    Y_obs: torch.Tensor
    ref_point: torch.Tensor
    sampler: SobolQMCNormalSampler
