"""``AudioNASProblem``: the architecture search as one pymoo multi-objective problem.

Objectives (all minimised): classification error (1 - best validation accuracy of an
early-stopped training run), energy per inference (mJ, from a pluggable energy model) and
memory (KB: int8 weights + int8 peak activation arena). Optional constraints: maximum memory,
energy and MACs, minimum accuracy.

The design matrix is either unit-cube rows (``NSGA2``, particle swarms, Bayesian optimisation)
or dicts of pymoo mixed variables (``MixedVariableGA``): the problem declares both ``xl``/``xu``
and ``vars``, and decodes whichever it receives. Candidates are trained through a pymoo-style
runner (``runner(f, jobs)``), e.g. :class:`pymoo.parallelization.dask.DaskParallelization`.
An optional :class:`EvaluationStore` keeps every evaluation as it completes and answers genomes it
already holds, which is how a killed search resumes (:mod:`moo_audio.runs`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from pymoo.core.problem import LoopedElementwiseEvaluation, Problem

from moo_audio.costs import network_cost
from moo_audio.data import AudioDataset, FeatureCache, FeatureSet, load_dataset
from moo_audio.energy import AnalyticEnergyModel, EnergyModel
from moo_audio.nets import AudioNet, build
from moo_audio.space import FrontEnd, Genome, GenomeRepair, SearchSpace
from moo_audio.training import (
    CurveHistory,
    MedianStopping,
    Patience,
    StoppingRule,
    SuccessiveHalving,
    TrainBudget,
    TrainData,
    TrainResult,
    train_candidate,
)

OBJECTIVES = ("error", "energy_mj", "memory_kb")
STOPPING_RULES = ("patience", "median", "halving")


@dataclass(frozen=True)
class Constraints:
    """Optional limits; each one set adds an inequality constraint ``g <= 0``."""

    max_memory_kb: float | None = None
    max_energy_mj: float | None = None
    max_macs: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self):
        for name, value in self.active().items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"constraint {name} must be a positive number, got {value}")
        if self.min_accuracy is not None and not 0 < self.min_accuracy <= 1:
            raise ValueError(f"constraint min_accuracy must be in (0, 1], got {self.min_accuracy}")

    def active(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def cheap_violations(self, energy_mj: float, memory_kb: float, macs: float) -> dict[str, float]:
        """Normalised violation of every constraint that needs no training (> 0: violated)."""
        values = {"max_memory_kb": memory_kb, "max_energy_mj": energy_mj, "max_macs": macs}
        return {k: values[k] / v - 1 for k, v in self.active().items() if k in values}

    def values(self, accuracy, energy_mj, memory_kb, macs) -> dict[str, Any]:
        """pymoo's ``g`` (``<= 0`` satisfied) of every active constraint, normalised by its limit.

        Works on scalars and on arrays alike (one entry per candidate).
        """
        measured = {"max_memory_kb": memory_kb, "max_energy_mj": energy_mj, "max_macs": macs}
        return {name: 1 - accuracy / limit if name == "min_accuracy" else measured[name] / limit - 1
                for name, limit in self.active().items()}


@dataclass(frozen=True)
class Candidate:
    """What the problem knows of a candidate before it is trained, as an evaluation store keeps it.

    ``batch`` counts the problem's ``_evaluate`` calls from 0 and ``position`` is the candidate's row
    in that call, so ``(batch, position)`` is the order in which the optimizer asked for it.
    """

    key: str            # the genome's sorted JSON, the identity of a candidate
    batch: int
    position: int
    energy_mj: float
    memory_kb: float
    macs: float
    params: float


@runtime_checkable
class EvaluationStore(Protocol):
    """Where evaluations persist beyond the problem (e.g. :class:`moo_audio.runs.RunStore`).

    The problem asks the store first (:meth:`lookup`) and trains only what it does not hold;
    untrained rows (candidates that break a cheap constraint) are written with :meth:`write`, and
    training jobs run through :meth:`recorder`, a picklable wrapper of the job function that writes
    each row in whichever process trained it, as soon as it is trained.
    Rows are dicts as :func:`evaluation_row` makes them.
    """

    def lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def write(self, candidate: Candidate, row: Mapping[str, Any], constraints: Constraints) -> None: ...

    def recorder(self, job_fn: Callable[[TrainJob], TrainResult], candidates: Mapping[str, Candidate],
                 constraints: Constraints) -> Callable[[TrainJob], TrainResult]: ...


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs to train one candidate; small enough to ship to Dask."""

    genome: Genome
    seed: int
    features_path: str
    budget: TrainBudget
    rules: tuple[str, ...]
    history: tuple[tuple[float, ...], ...]
    threads: int
    device: str = "cpu"


_FEATURES: dict[str, FeatureSet] = {}  # per-process memo of feature files


def _features(path: str) -> FeatureSet:
    if path not in _FEATURES:
        _FEATURES[path] = FeatureCache.load_file(path)
    return _FEATURES[path]


def _check_rule_names(names: Sequence[str]) -> None:
    unknown = [s for s in names if s not in STOPPING_RULES]
    if unknown:
        raise ValueError(f"unknown stopping rule(s) {unknown}; expected some of {STOPPING_RULES}")


def _rules(names: Sequence[str], history: CurveHistory) -> list[StoppingRule]:
    factories: dict[str, Callable[[], StoppingRule]] = {
        "patience": Patience, "median": lambda: MedianStopping(history),
        "halving": lambda: SuccessiveHalving(history)}
    return [factories[n]() for n in names]


def cheap_values(genomes: Sequence[Genome], energy_model: EnergyModel
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy (mJ, from ``energy_model``), memory (KB, int8 weights + arena) and MACs of genomes."""
    energy = np.asarray(energy_model.predict_mj(genomes), dtype=float)
    costs = [network_cost(g) for g in genomes]
    memory = np.array([c.memory_bytes("int8") / 1024 for c in costs])
    macs = np.array([c.macs for c in costs], dtype=float)
    return energy, memory, macs


def train_model(job: TrainJob) -> tuple[AudioNet, TrainResult]:
    """Train one candidate: the module (restored to its best validation epoch) and the result."""
    features = _features(job.features_path)
    x_train, y_train = features.split("train")
    x_val, y_val = features.split("val")
    x_test, y_test = features.split("test")
    data = TrainData(x_train, y_train, x_val, y_val, x_test, y_test, n_classes=features.n_classes)
    torch.manual_seed(job.seed)
    model = build(job.genome).to(job.device)
    history = CurveHistory(job.history)
    result = train_candidate(model, data, job.genome.frontend.input_shape, job.budget,
                             _rules(job.rules, history), seed=job.seed, threads=job.threads)
    return model, result


def train_job(job: TrainJob) -> TrainResult:
    """Train one candidate (runs in the worker)."""
    return train_model(job)[1]


def training_seed(genome: Genome, seed: int) -> int:
    """Seed of a candidate's training: a function of the genome, not of the worker or order."""
    digest = hashlib.blake2b(f"{seed}:{genome.to_json(sort_keys=True)}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


class AudioNASProblem(Problem):
    """Multi-objective architecture search for an always-on audio classifier.

    Args:
        dataset: an :class:`~moo_audio.data.AudioDataset` or a registered dataset name.
        space: the search space; by default one matched to the dataset's rate and classes.
        energy_model: predicts energy per inference (mJ); default the analytic proxy.
        budget: training budget of each candidate.
        stopping: early-stopping rules by name, from ``patience``, ``median``, ``halving``.
        constraints: optional limits on memory, energy, MACs and accuracy.
        feature_cache: where log-mel features are cached (a :class:`FeatureCache` or a folder).
        runner: pymoo-style parallel map ``runner(f, jobs)``; default sequential.
        threads: torch threads of every training job, whether it runs in this process or in a Dask
            worker: results depend on the thread count, so fixing it makes them independent of the
            runner and the worker count (default 1: always-on networks are small, and parallel work
            is best spread over workers rather than threads).
        device: torch device candidates train on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        seed: base seed; each candidate's training seed derives from it and its genome.
        store: an :class:`EvaluationStore` consulted before training and written as each candidate
            completes (``None``: evaluations live in this object only).
        dataset_options: options for :func:`~moo_audio.data.load_dataset` when ``dataset`` is a name.
    """

    def __init__(self, dataset: AudioDataset | str = "builtin", space: SearchSpace | None = None,
                 energy_model: EnergyModel | None = None,
                 budget: TrainBudget = TrainBudget(max_epochs=12),
                 stopping: Sequence[str] = ("patience", "median"),
                 constraints: Constraints = Constraints(),
                 feature_cache: FeatureCache | str | Path | None = None,
                 runner: Callable | None = None, threads: int = 1, seed: int = 0,
                 store: EvaluationStore | None = None, device: str = "cpu", **dataset_options: Any):
        self.dataset = load_dataset(dataset, **dataset_options) if isinstance(dataset, str) else dataset
        self.space = space or SearchSpace(sample_rate=self.dataset.sample_rate,
                                          n_classes=self.dataset.n_classes,
                                          clip_ms=(self.dataset.clip_ms,))
        if (self.space.sample_rate, self.space.n_classes) != (self.dataset.sample_rate,
                                                                self.dataset.n_classes):
            raise ValueError(
                f"search space ({self.space.sample_rate} Hz, {self.space.n_classes} classes) does "
                f"not match dataset {self.dataset.name!r} ({self.dataset.sample_rate} Hz, "
                f"{self.dataset.n_classes} classes)")
        _check_rule_names(stopping)
        self.energy_model = energy_model or AnalyticEnergyModel()
        if not isinstance(self.energy_model, EnergyModel):
            raise TypeError("energy_model needs a name and predict_mj(genomes)")
        self.budget, self.stopping, self.constraints = budget, tuple(stopping), constraints
        self.feature_cache = feature_cache if isinstance(feature_cache, FeatureCache) \
            else FeatureCache(feature_cache)
        self.runner = runner or LoopedElementwiseEvaluation()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads, self.seed = int(threads), seed
        self.device = str(torch.device(device))  # a clear error for a malformed device string now
        if store is not None and not isinstance(store, EvaluationStore):
            raise TypeError("store needs lookup(keys), write(candidate, row, constraints) and "
                            "recorder(job_fn, candidates, constraints)")
        self.store = store
        self.n_batches = 0  # _evaluate calls so far: the batch index of the next candidates
        self.history = CurveHistory()
        self.repair = GenomeRepair()
        self._results: dict[str, dict[str, Any]] = {}  # genome JSON -> evaluation, per problem
        n = self.space.n_var
        super().__init__(n_var=n, n_obj=len(OBJECTIVES), n_ieq_constr=len(constraints.active()),
                         xl=np.zeros(n), xu=np.ones(n), vars=self.space.pymoo_vars())

    # ---- cheap objectives (known exactly, no training) ---------------------------------------
    cheap_objectives = (1, 2)

    def cheap_values(self, genomes: Sequence[Genome]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Energy (mJ), memory (KB, int8) and MACs of genomes, without training."""
        return cheap_values(genomes, self.energy_model)

    def evaluate_cheap(self, X: np.ndarray) -> np.ndarray:
        """The cheap objectives (energy, memory) of a design matrix."""
        energy, memory, _ = self.cheap_values(self.space.from_x(X))
        return np.column_stack([energy, memory])

    @property
    def evaluated_keys(self) -> list[str]:
        """Sorted JSON of every genome this problem has answered (trained, stored or skipped)."""
        return list(self._results)

    # ---- evaluation -------------------------------------------------------------------------
    def job(self, genome: Genome, stopping: Sequence[str] | None = None,
            history: CurveHistory | None = None) -> TrainJob:
        """The training job of ``genome``: the problem's data, budget, seed and threads.

        Args:
            stopping: rule names (default the problem's); ``()`` trains the whole budget.
            history: curves the median and halving rules compare with (default the search's).
        """
        fe: FrontEnd = genome.frontend
        path = str(self.feature_cache.path(self.dataset, fe))
        _FEATURES.setdefault(path, self.feature_cache.get(self.dataset, fe))  # once, on disk too
        if stopping is not None:
            _check_rule_names(stopping)
        history = self.history if history is None else history
        return TrainJob(genome, training_seed(genome, self.seed), path, self.budget,
                        self.stopping if stopping is None else tuple(stopping),
                        tuple(tuple(c) for c in history.to_list()), self.threads, self.device)

    def _evaluate(self, X, out, *args, **kwargs):
        genomes = self.space.from_x(X)
        energy, memory, macs = self.cheap_values(genomes)
        params = np.array([network_cost(gn).params for gn in genomes], dtype=float)
        keys = [g.to_json(sort_keys=True) for g in genomes]
        batch, self.n_batches = self.n_batches, self.n_batches + 1
        fresh: dict[str, Candidate] = {}  # first time this problem sees them, in request order
        for i, key in enumerate(keys):
            if key not in self._results and key not in fresh:
                fresh[key] = Candidate(key, batch, i, float(energy[i]), float(memory[i]),
                                       float(macs[i]), float(params[i]))
        stored = self.store.lookup(list(fresh)) if self.store is not None and fresh else {}
        todo: dict[str, int] = {}
        for key, c in fresh.items():
            if key in stored:
                self._results[key] = stored[key]
                continue
            violations = self.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs)
            if any(v > 0 for v in violations.values()):
                self._results[key] = _skipped(violations)
                if self.store is not None:
                    self.store.write(c, self._results[key], self.constraints)
            else:
                todo[key] = c.position
        jobs = [self.job(genomes[i]) for i in todo.values()]
        job_fn = train_job if self.store is None else self.store.recorder(
            train_job, {k: fresh[k] for k in todo}, self.constraints)
        started = time.perf_counter()
        results = self.runner(job_fn, jobs) if jobs else []
        for key, result in zip(todo, results):
            self._results[key] = evaluation_row(result)
        # Curves join the history after the batch, in request order, whether trained now or read
        # from the store: the same history for any worker count and for a resumed run.
        for key in fresh:
            if key in todo or key in stored:
                row = self._results[key]
                if not row["failed"]:
                    self.history.add(row["curve"])
        self.last_batch_seconds = time.perf_counter() - started

        rows = [self._results[k] for k in keys]
        accuracy = np.array([r["val_accuracy"] for r in rows])
        out["F"] = np.column_stack([1.0 - accuracy, energy, memory])
        g = self.constraints.values(accuracy, energy, memory, macs)
        if g:
            out["G"] = np.column_stack(list(g.values()))
        out["macs"], out["memory_kb"], out["energy_mj"], out["params"] = macs, memory, energy, params
        for name in ("val_accuracy", "test_accuracy", "epochs", "seconds"):
            out[name] = np.array([r[name] for r in rows], dtype=float)
        for name in ("curve", "stop_reason", "failure_reason", "genome"):
            column = np.empty(len(rows), dtype=object)
            column[:] = [r[name] if name != "genome" else k for r, k in zip(rows, keys)]
            out[name] = column

    def __getstate__(self):
        # Workers receive jobs, not the problem; keep pickles (e.g. pymoo's history copies) light.
        state = self.__dict__.copy()
        state["runner"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.runner = self.runner or LoopedElementwiseEvaluation()


def evaluation_row(result: TrainResult) -> dict[str, Any]:
    """A training result as one evaluation row; failed runs get the worst error (a finite penalty)."""
    row = result.to_dict()
    if result.failed:
        row["val_accuracy"] = 0.0
    return row


def _skipped(violations: dict[str, float]) -> dict[str, Any]:
    """Row of a candidate not trained because it breaks a constraint known before training."""
    broken = ", ".join(k for k, v in violations.items() if v > 0)
    return {"val_accuracy": 0.0, "test_accuracy": float("nan"), "curve": [], "train_loss": [],
            "epochs": 0, "stop_reason": "skipped", "seconds": 0.0, "failed": True,
            "failure_reason": f"not trained: violates {broken}"}


def dask_runner(address: str | None = None, n_workers: int = 2):
    """A pymoo Dask runner on a scheduler ``address``, or on a local cluster of ``n_workers``
    single-task processes (each training job sets its own torch threads, the problem's ``threads``)."""
    from dask.distributed import Client, LocalCluster
    from pymoo.parallelization.dask import DaskParallelization

    if address:
        client = Client(address)
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    return DaskParallelization(client)

