"""``AudioNASProblem``: the architecture search as one pymoo multi-objective problem.

Objectives (all minimised, :data:`~moo_audio.objectives.OBJECTIVES`): classification error (1 - best
validation accuracy of an early-stopped training run), energy per inference (mJ, from a pluggable
energy model) and memory (KB: int8 weights + int8 peak activation arena). Optional constraints:
maximum memory, energy and MACs, minimum accuracy.

The design matrix is either unit-cube rows (``NSGA2``, particle swarms, Bayesian optimisation)
or dicts of pymoo mixed variables (``MixedVariableGA``): the problem declares both ``xl``/``xu``
and ``vars``, and decodes whichever it receives. Candidates are trained by a runner
(:mod:`moo_audio.parallel`: in this process or on Dask workers). An optional
:class:`EvaluationStore` keeps every evaluation, written by this process (the driver) as each
training finishes, and answers genomes it already holds, which is how a killed search resumes
(:mod:`moo_audio.search`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from pymoo.core.problem import Problem

from moo_audio.costs import DEFAULT_DTYPE, network_cost
from moo_audio.data import AudioDataset, FeatureCache, FeatureSet, load_dataset
from moo_audio.energy import EnergyModel
from moo_audio.energy.packaged import default_model
from moo_audio.jobs import TrainJob, evaluation_row, fold_row, training_seed
from moo_audio.objectives import CHEAP_OBJECTIVES, LOG_OBJECTIVES, OBJECTIVES, objective_matrix
from moo_audio.parallel import EpochReport, InProcessRunner, Runner
from moo_audio.space import FrontEnd, Genome, GenomeRepair, SearchSpace
from moo_audio.training import DEFAULT_STOPPING, CurveHistory, TrainBudget, TrainResult, check_rule_names


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

    def cheap_feasible(self, energy_mj, memory_kb, macs) -> np.ndarray:
        """Per candidate (arrays of equal length), whether it meets every constraint that needs no
        training."""
        violations = self.cheap_violations(np.asarray(energy_mj, float), np.asarray(memory_kb, float),
                                           np.asarray(macs, float))
        return np.all([v <= 0 for v in violations.values()], axis=0) if violations \
            else np.ones(np.shape(energy_mj), dtype=bool)

    def values(self, accuracy, energy_mj, memory_kb, macs) -> dict[str, Any]:
        """pymoo's ``g`` (``<= 0`` satisfied) of every active constraint, normalised by its limit.

        Works on scalars and on arrays alike (one entry per candidate).
        """
        measured = {"max_memory_kb": memory_kb, "max_energy_mj": energy_mj, "max_macs": macs}
        return {name: 1 - accuracy / limit if name == "min_accuracy" else measured[name] / limit - 1
                for name, limit in self.active().items()}


@dataclass(frozen=True)
class Costs:
    """What a network costs, known without training: the record shared by candidates, stored
    evaluations and baselines."""

    energy_mj: float    # energy per inference, from the energy model
    memory_kb: float    # int8 weights + int8 peak activation arena
    macs: float
    params: float


COST_FIELDS = tuple(f.name for f in fields(Costs))


def cheap_values(genomes: Sequence[Genome], energy_model: EnergyModel) -> list[Costs]:
    """The :class:`Costs` of genomes: energy from ``energy_model``, the rest from the cost model."""
    energy = np.asarray(energy_model.predict_mj(genomes), dtype=float)
    costs = [network_cost(g) for g in genomes]
    return [Costs(float(e), c.memory_bytes(DEFAULT_DTYPE) / 1024, float(c.macs), float(c.params))
            for e, c in zip(energy, costs)]


def cost_columns(costs: Sequence[Costs]) -> dict[str, np.ndarray]:
    """The :class:`Costs` of many networks as one array per field."""
    return {name: np.array([getattr(c, name) for c in costs], dtype=float) for name in COST_FIELDS}


#: the front-end genes of :func:`frontend_genes`, in order
FRONTEND_GENES = ("n_mels", "hop_ms", "win_ms", "clip_ms", "representation_1d", "n_blocks")
#: what :func:`architecture_features` holds per network, in order
ARCHITECTURE_FEATURES = ("log10_macs", "log10_params", "log10_peak_activation_bytes", *FRONTEND_GENES)


def frontend_genes(genome: Genome) -> list[float]:
    """The genome's front-end genes and depth as numbers (:data:`FRONTEND_GENES`)."""
    fe = genome.frontend
    return [fe.n_mels, fe.hop_ms, fe.win_ms, fe.clip_ms, float(fe.representation == "1d"), len(genome.blocks)]


def architecture_features(genomes: Sequence[Genome]) -> np.ndarray:
    """Exact, cheap quantities of networks that a model of their error can read instead of (or beside)
    the genome's encoding (:data:`ARCHITECTURE_FEATURES`): MACs, parameters and peak activation bytes on
    a log scale, then :func:`frontend_genes`. Unlike the encoding they ignore genes of unused blocks and
    say how much capacity the blocks add up to; shape ``(len(genomes), len(ARCHITECTURE_FEATURES))``."""
    rows = []
    for genome in genomes:
        cost = network_cost(genome)
        sizes = [cost.macs, cost.params, cost.peak_activation_bytes()]
        rows.append([*np.log10(np.maximum(sizes, 1)), *frontend_genes(genome)])
    return np.array(rows, dtype=float).reshape(len(genomes), len(ARCHITECTURE_FEATURES))


@dataclass(frozen=True)
class Candidate(Costs):
    """What the problem knows of a candidate before it is trained, as an evaluation store keeps it.

    ``batch`` counts the problem's ``_evaluate`` calls from 0 and ``position`` is the candidate's row
    in that call, so ``(batch, position)`` is the order in which the optimizer asked for it.
    """

    key: str            # the genome's sorted JSON (Genome.key), the identity of a candidate
    batch: int
    position: int


@runtime_checkable
class EvaluationStore(Protocol):
    """Where evaluations persist beyond the problem (e.g. :class:`moo_audio.store.RunStore`).

    The problem asks the store first (:meth:`lookup`) and trains only what it does not hold; it
    writes every other row (trained, failed or skipped) with :meth:`write` as soon as it has it.
    Rows are dicts as :func:`~moo_audio.jobs.evaluation_row` makes them.
    """

    def lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def write(self, candidate: Candidate, row: Mapping[str, Any], constraints: Constraints,
              worker: str = "") -> bool: ...


class TrainingEvents(Protocol):
    """What a progress display hears from the problem (all calls come from this process)."""

    def started(self, candidates: Sequence[Candidate], max_epochs: int) -> None: ...

    def epoch(self, key: str, epoch: int, accuracy: float) -> None: ...

    def finished(self, candidate: Candidate, row: Mapping[str, Any]) -> None: ...


class CheapQuantities:
    """What an audio NAS problem knows of a design without training it, for the optimizers that read it
    (``BoTorchMOBO``'s exact cheap objectives, ``gp_inputs`` and log-scaled objectives,
    ``CheapSpreadSampling``); needs ``space``, ``energy_model`` and ``constraints``."""

    cheap_objectives = CHEAP_OBJECTIVES
    log_objectives = LOG_OBJECTIVES

    def evaluate_cheap(self, X: np.ndarray) -> np.ndarray:
        """The cheap objectives (energy, memory) of a design matrix."""
        columns = cost_columns(cheap_values(self.space.from_x(X), self.energy_model))
        return objective_matrix(columns, CHEAP_OBJECTIVES)

    def architecture_features(self, X: np.ndarray) -> np.ndarray:
        """:func:`architecture_features` of a design matrix."""
        return architecture_features(self.space.from_x(X))

    def cheap_feasible(self, X: np.ndarray) -> np.ndarray:
        """Whether each design meets every constraint that needs no training (those it breaks are
        never trained)."""
        columns = cost_columns(cheap_values(self.space.from_x(X), self.energy_model))
        return self.constraints.cheap_feasible(columns["energy_mj"], columns["memory_kb"], columns["macs"])


class AudioNASProblem(CheapQuantities, Problem):
    """Multi-objective architecture search for an always-on audio classifier.

    Args:
        dataset: an :class:`~moo_audio.data.AudioDataset` or a registered dataset name.
        space: the search space; by default one matched to the dataset's rate and classes.
        energy_model: predicts energy per inference (mJ); default the packaged forest fitted to
            measured energy (:func:`moo_audio.energy.packaged.default_model`).
        budget: training budget of each candidate.
        stopping: early-stopping rules by name (:data:`~moo_audio.training.STOPPING_RULES`).
        constraints: optional limits on memory, energy, MACs and accuracy.
        feature_cache: where log-mel features are cached (a :class:`FeatureCache` or a folder).
        runner: where candidates train (:mod:`moo_audio.parallel`); default this process.
        threads: torch threads of every training job, whether it runs in this process or in a Dask
            worker: results depend on the thread count, so fixing it makes them independent of the
            runner and the worker count (default 1: always-on networks are small, and parallel work
            is best spread over workers rather than threads).
        device: torch device candidates train on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        folds: ``k > 1`` trains each candidate on ``k`` speaker-grouped folds of the train and
            validation splits pooled and scores it by their mean validation accuracy (small data:
            several validation speakers rather than one); needs a dataset with groups.
        seed: base seed; each candidate's training seed derives from it and its genome.
        store: an :class:`EvaluationStore` consulted before training and written as each candidate
            completes (``None``: evaluations live in this object only).
        events: a :class:`TrainingEvents` listener (e.g. the search's progress display).
        dataset_options: options for :func:`~moo_audio.data.load_dataset` when ``dataset`` is a name.
    """

    def __init__(self, dataset: AudioDataset | str = "builtin", space: SearchSpace | None = None,
                 energy_model: EnergyModel | None = None, budget: TrainBudget = TrainBudget(),
                 stopping: Sequence[str] = DEFAULT_STOPPING, constraints: Constraints = Constraints(),
                 feature_cache: FeatureCache | str | Path | None = None, runner: Runner | None = None,
                 threads: int = 1, seed: int = 0, store: EvaluationStore | None = None, device: str = "cpu",
                 events: TrainingEvents | None = None, folds: int = 1, **dataset_options: Any):
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
        check_rule_names(stopping)
        self.energy_model = energy_model or default_model()
        if not isinstance(self.energy_model, EnergyModel):
            raise TypeError("energy_model needs a name and predict_mj(genomes)")
        self.budget, self.stopping, self.constraints = budget, tuple(stopping), constraints
        self.feature_cache = feature_cache if isinstance(feature_cache, FeatureCache) \
            else FeatureCache(feature_cache)
        self.runner = runner or InProcessRunner()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads, self.seed = int(threads), seed
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 1:
            raise ValueError(f"folds must be an integer >= 1, got {folds!r}")
        if folds > 1 and self.dataset.groups is None:
            raise ValueError(f"folds={folds}: dataset {self.dataset.name!r} has no groups (speakers) to fold by")
        self.folds = int(folds)
        self.device = str(torch.device(device))  # a clear error for a malformed device string now
        if store is not None and not isinstance(store, EvaluationStore):
            raise TypeError("store needs lookup(keys) and write(candidate, row, constraints)")
        self.store, self.events = store, events
        self.n_batches = 0  # _evaluate calls so far: the batch index of the next candidates
        self.history = CurveHistory()
        self.repair = GenomeRepair()
        self._results: dict[str, dict[str, Any]] = {}  # genome key -> evaluation, per problem
        self._features: dict[tuple, FeatureSet] = {}  # feature key -> the features, one object each
        n = self.space.n_var
        super().__init__(n_var=n, n_obj=len(OBJECTIVES), n_ieq_constr=len(constraints.active()),
                         xl=np.zeros(n), xu=np.ones(n), vars=self.space.pymoo_vars())

    # ---- cheap objectives (known exactly, no training) ---------------------------------------
    def cheap_values(self, genomes: Sequence[Genome]) -> list[Costs]:
        """The :class:`Costs` of genomes, without training."""
        return cheap_values(genomes, self.energy_model)

    @property
    def evaluated_keys(self) -> list[str]:
        """Keys of every genome this problem has answered (trained, stored or skipped)."""
        return list(self._results)

    # ---- training jobs -------------------------------------------------------------------------
    def features(self, frontend: FrontEnd) -> FeatureSet:
        """The dataset's log-mel features under ``frontend``, without the test split, which a search
        never reads (one object per feature key, so a runner sends each set to its workers once)."""
        key = frontend.feature_key()
        if key not in self._features:
            self._features[key] = self.feature_cache.get(self.dataset, frontend).held_out()
        return self._features[key]

    def job(self, genome: Genome, stopping: Sequence[str] | None = None,
            history: CurveHistory | None = None) -> TrainJob:
        """The training job of ``genome``: the problem's budget, seed, threads and device.

        Args:
            stopping: rule names (default the problem's); ``()`` trains the whole budget.
            history: curves the median and halving rules compare with (default the search's).
        """
        if stopping is not None:
            check_rule_names(stopping)
        history = self.history if history is None else history
        return TrainJob(genome, training_seed(genome, self.seed), self.budget,
                        self.stopping if stopping is None else tuple(stopping),
                        tuple(tuple(c) for c in history.to_list()), self.threads, self.device)

    def train(self, jobs: Sequence[TrainJob], on_epoch: EpochReport | None = None
              ) -> Iterator[tuple[int, TrainResult, str]]:
        """Train jobs on the runner, with this problem's features; yields ``(index, result, worker)``
        as each finishes."""
        yield from self.runner.run(jobs, [self.features(job.genome.frontend) for job in jobs], on_epoch)

    # ---- evaluation -------------------------------------------------------------------------
    def _evaluate(self, X, out, *args, **kwargs):
        genomes = self.space.from_x(X)
        costs = self.cheap_values(genomes)
        keys = [g.key for g in genomes]
        batch, self.n_batches = self.n_batches, self.n_batches + 1
        fresh: dict[str, Candidate] = {}  # first time this problem sees them, in request order
        for i, (key, c) in enumerate(zip(keys, costs)):
            if key not in self._results and key not in fresh:
                fresh[key] = Candidate(**vars(c), key=key, batch=batch, position=i)
        stored = self.store.lookup(list(fresh)) if self.store is not None and fresh else {}
        todo: list[str] = []
        for key, c in fresh.items():
            if key in stored:
                self._results[key] = stored[key]
                continue
            violations = self.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs)
            if any(v > 0 for v in violations.values()):
                broken = ", ".join(k for k, v in violations.items() if v > 0)
                self._record(c, evaluation_row(TrainResult.failure(f"not trained: violates {broken}",
                                                                   stop_reason="skipped")), "")
            else:
                todo.append(key)
        self._train_all([fresh[k] for k in todo], [genomes[fresh[k].position] for k in todo])
        # Curves join the history after the batch, in request order, whether trained now or read
        # from the store: the same history for any worker count and for a resumed run.
        for key in fresh:
            if (key in stored or key in todo) and not self._results[key]["failed"]:
                self.history.add(self._results[key]["curve"])

        rows = [self._results[k] for k in keys]
        columns = cost_columns(costs)
        accuracy = np.array([r["val_accuracy"] for r in rows])
        out["F"] = objective_matrix({**columns, "error": 1.0 - accuracy})
        g = self.constraints.values(accuracy, columns["energy_mj"], columns["memory_kb"], columns["macs"])
        if g:
            out["G"] = np.column_stack(list(g.values()))
        out.update(columns)
        for name in ("val_accuracy", "epochs", "seconds"):
            out[name] = np.array([r[name] for r in rows], dtype=float)
        for name in ("curve", "stop_reason", "failure_reason", "genome"):
            column = np.empty(len(rows), dtype=object)
            column[:] = [r[name] if name != "genome" else k for r, k in zip(rows, keys)]
            out[name] = column

    def _train_all(self, candidates: Sequence[Candidate], genomes: Sequence[Genome]) -> None:
        """Train the candidates on the runner, recording each result as it arrives."""
        if not candidates:
            return
        if self.events is not None:
            self.events.started(candidates, self.budget.max_epochs)
        on_epoch = None if self.events is None else (
            lambda i, epoch, accuracy: self.events.epoch(candidates[i].key, epoch, accuracy))
        for i, row, worker in self.train_rows([self.job(g) for g in genomes], on_epoch):
            self._record(candidates[i], row, worker)

    def train_rows(self, jobs: Sequence[TrainJob], on_epoch: EpochReport | None = None
                   ) -> Iterator[tuple[int, dict[str, Any], str]]:
        """Train jobs as the problem evaluates a candidate, on each of its :attr:`folds`; yields
        ``(index, evaluation row, worker)`` as all folds of a job finish (the folds' mean row, see
        :func:`~moo_audio.jobs.fold_row`); ``on_epoch`` gets the job's index."""
        k = self.folds
        if k > 1:  # fold f of job j is fold job j * k + f
            jobs = [replace(job, fold=(f, k)) for job in jobs for f in range(k)]
        report = None if on_epoch is None else (lambda i, epoch, accuracy: on_epoch(i // k, epoch, accuracy))
        folds: dict[int, dict[int, dict[str, Any]]] = {}
        for i, result, worker in self.train(jobs, report):
            j, f = divmod(i, k)
            folds.setdefault(j, {})[f] = evaluation_row(result)
            if len(folds[j]) == k:
                finished = folds.pop(j)
                rows = [finished[f] for f in range(k)]
                yield j, rows[0] if k == 1 else fold_row(rows), worker

    def _record(self, candidate: Candidate, row: dict[str, Any], worker: str) -> None:
        self._results[candidate.key] = row
        if self.store is not None:
            self.store.write(candidate, row, self.constraints, worker)
        if self.events is not None:
            self.events.finished(candidate, row)

    def __getstate__(self):
        # runners hold clients and listeners hold displays; pickles (e.g. pymoo's history copies)
        # carry neither
        state = self.__dict__.copy()
        state["runner"], state["events"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.runner = self.runner or InProcessRunner()

