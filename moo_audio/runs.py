"""Run folders: a search's evaluations in SQLite, each written as it completes, and resuming.

A run folder holds ``run.sqlite`` with four tables:

* ``meta``: the problem file (text, path, SHA-256), algorithm and its options, seed, budget, the
  dataset's fingerprint and shape, the energy model, library versions, status;
* ``evaluations``: one row per distinct candidate (its genome's sorted JSON is unique): cheap
  objectives, error, accuracies, constraint values, learning curve, stop or failure reason, timings,
  the worker that trained it, and ``(batch, position)``, the order the optimizer asked for it;
* ``baselines``: MobileNet baselines trained by the report, cached so reports are reproducible;
* ``sessions``: each ``moo-audio search`` invocation on the folder (start, end, workers, status).

**Resuming is deterministic replay.** The algorithms are deterministic under their seed, and so is
the problem: a candidate's training seed derives from its genome, and the median-stopping history
grows between batches in request order. ``--resume`` therefore runs the algorithm again from the
start while :class:`RunStore` answers every genome it holds (:meth:`RunStore.lookup`); only new
candidates train. Rows are written by :class:`Recorder`, a picklable wrapper of the training job,
in whichever process trained the candidate, so a batch killed half way keeps what it finished.
SQLite runs in WAL mode with a busy timeout, so Dask workers and the progress display share the file
safely; a ``kill -9`` loses at most the candidates in training at that moment.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import platform
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from moo_audio.problem import Candidate, Constraints, TrainJob
from moo_audio.problem_files import ALGORITHMS, ProblemSpec, parse_problem
from moo_audio.space import Genome
from moo_audio.training import TrainResult

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- completion order
    genome_key TEXT NOT NULL UNIQUE,           -- the genome's sorted JSON
    genome_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    position INTEGER NOT NULL,
    error REAL NOT NULL,
    energy_mj REAL NOT NULL,
    memory_kb REAL NOT NULL,
    macs REAL NOT NULL,
    params REAL NOT NULL,
    val_accuracy REAL,
    test_accuracy REAL,
    epochs INTEGER NOT NULL,
    stop_reason TEXT NOT NULL,
    failed INTEGER NOT NULL,
    failure_reason TEXT,
    constraints TEXT NOT NULL,                 -- JSON {constraint: g}, g <= 0 satisfied
    result TEXT NOT NULL,                      -- JSON of the evaluation row, exactly as trained
    train_seconds REAL NOT NULL,
    started_at REAL,
    finished_at REAL NOT NULL,
    worker TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS baselines (
    key TEXT PRIMARY KEY, label TEXT NOT NULL, genome TEXT NOT NULL, result TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    workers INTEGER NOT NULL, budget INTEGER NOT NULL, status TEXT NOT NULL,
    evaluations_before INTEGER NOT NULL, evaluations_after INTEGER
);
"""


class RunError(ValueError):
    """A run folder that cannot be used as asked (missing, or made by another problem or setting)."""


def genome_id(key: str) -> str:
    """The id of a genome given its sorted JSON (same as :func:`moo_audio.energy.records.genome_id`)."""
    from moo_audio.energy.records import genome_id as _genome_id

    return _genome_id(Genome.from_json(key))


@dataclass(frozen=True)
class Evaluation:
    """One stored evaluation. ``error`` is ``1 - val_accuracy`` (1 for failed or untrained ones)."""

    id: int
    genome_id: str
    key: str
    batch: int
    position: int
    error: float
    energy_mj: float
    memory_kb: float
    macs: float
    params: float
    val_accuracy: float
    test_accuracy: float
    epochs: int
    stop_reason: str
    failed: bool
    failure_reason: str | None
    constraints: dict[str, float]
    curve: list[float]
    train_loss: list[float]
    train_seconds: float
    started_at: float | None
    finished_at: float
    worker: str

    @property
    def genome(self) -> Genome:
        return Genome.from_json(self.key)

    @property
    def feasible(self) -> bool:
        """Trained without failure and within every constraint."""
        return not self.failed and all(g <= 0 for g in self.constraints.values())

    @property
    def objectives(self) -> np.ndarray:
        return np.array([self.error, self.energy_mj, self.memory_kb])


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class RunStore:
    """The SQLite store of one run folder; an :class:`~moo_audio.problem.EvaluationStore`.

    It holds only the folder's path (every call opens its own connection), so it pickles to Dask
    workers and is safe to use from several processes and threads at once.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME

    # ---- connections ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process in WAL mode
            with con:  # one transaction, committed on success
                yield con
        finally:
            con.close()

    @classmethod
    def create(cls, folder: str | os.PathLike, meta: Mapping[str, Any]) -> RunStore:
        """A new store in ``folder`` (created if needed) with the run's metadata."""
        store = cls(folder)
        if store.path.exists():
            raise RunError(f"{store.path} already exists")
        store.folder.mkdir(parents=True, exist_ok=True)
        # built aside and renamed into place, so a reader never sees a store without its tables
        tmp = store.path.with_name(f".{DB_NAME}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(tmp)
        try:
            with con:
                con.executescript(_SCHEMA)
                con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in
                                 {"schema_version": SCHEMA_VERSION, **meta}.items()])
        finally:
            con.close()
        os.replace(tmp, store.path)
        return store

    @classmethod
    def open(cls, folder: str | os.PathLike) -> RunStore:
        """The store of an existing run folder."""
        store = cls(folder)
        if not store.path.is_file():
            raise RunError(f"{folder} is not a run folder (no {DB_NAME})")
        try:
            version = store.meta().get("schema_version")
        except sqlite3.DatabaseError as err:
            raise RunError(f"{store.path} is not a moo_audio run store ({err})") from None
        if version != SCHEMA_VERSION:
            raise RunError(f"{store.path} has run-store schema {version!r}; this version reads {SCHEMA_VERSION}")
        return store

    # ---- metadata ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        with self._connect() as con:
            return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])

    # ---- the EvaluationStore protocol ---------------------------------------------------------
    def lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored rows (as the problem made them) of those ``keys`` that have one."""
        out: dict[str, dict[str, Any]] = {}
        with self._connect() as con:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                marks = ",".join("?" * len(chunk))
                out.update((k, json.loads(r)) for k, r in con.execute(
                    f"SELECT genome_key, result FROM evaluations WHERE genome_key IN ({marks})", chunk))
        return out

    def write(self, candidate: Candidate, row: Mapping[str, Any], constraints: Constraints,
              started_at: float | None = None) -> bool:
        """Store one evaluation; ``False`` if the genome was already stored (the first row stays)."""
        accuracy = float(row["val_accuracy"])
        g = constraints.values(accuracy, candidate.energy_mj, candidate.memory_kb, candidate.macs)
        values = (candidate.key, genome_id(candidate.key), candidate.batch, candidate.position,
                  1.0 - accuracy, candidate.energy_mj, candidate.memory_kb, candidate.macs,
                  candidate.params, accuracy, row["test_accuracy"], int(row["epochs"]),
                  row["stop_reason"], int(bool(row["failed"])), row["failure_reason"],
                  json.dumps({k: float(v) for k, v in g.items()}), json.dumps(dict(row)),
                  float(row["seconds"]), started_at, time.time(), f"{socket.gethostname()}:{os.getpid()}")
        with self._connect() as con:
            cursor = con.execute(
                "INSERT OR IGNORE INTO evaluations (genome_key, genome_id, batch, position, error, "
                "energy_mj, memory_kb, macs, params, val_accuracy, test_accuracy, epochs, stop_reason, "
                "failed, failure_reason, constraints, result, train_seconds, started_at, finished_at, "
                "worker) VALUES (" + ",".join("?" * len(values)) + ")", values)
            return cursor.rowcount == 1

    def recorder(self, job_fn: Callable[[TrainJob], TrainResult], candidates: Mapping[str, Candidate],
                 constraints: Constraints) -> Recorder:
        return Recorder(str(self.folder), job_fn, dict(candidates), constraints)

    # ---- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def evaluations(self, since_id: int = 0) -> list[Evaluation]:
        """Stored evaluations with ``id > since_id``, in the order the optimizer asked for them."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, genome_id, genome_key, batch, position, error, energy_mj, memory_kb, macs, "
                "params, val_accuracy, test_accuracy, epochs, stop_reason, failed, failure_reason, "
                "constraints, result, train_seconds, started_at, finished_at, worker FROM evaluations "
                "WHERE id > ? ORDER BY batch, position, id", (since_id,)).fetchall()
        out = []
        for r in rows:
            result = json.loads(r[17])
            out.append(Evaluation(
                id=r[0], genome_id=r[1], key=r[2], batch=r[3], position=r[4], error=r[5],
                energy_mj=r[6], memory_kb=r[7], macs=r[8], params=r[9], val_accuracy=_nan(r[10]),
                test_accuracy=_nan(r[11]), epochs=r[12], stop_reason=r[13], failed=bool(r[14]),
                failure_reason=r[15], constraints=json.loads(r[16]), curve=list(result["curve"]),
                train_loss=list(result["train_loss"]), train_seconds=r[18], started_at=r[19],
                finished_at=r[20], worker=r[21]))
        return out

    # ---- baselines and sessions -----------------------------------------------------------------
    def baseline(self, key: str) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT result FROM baselines WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_baseline(self, key: str, label: str, genome: Genome, result: Mapping[str, Any]) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?)",
                        (key, label, genome.to_json(sort_keys=True), json.dumps(dict(result)), time.time()))

    def begin_session(self, workers: int, budget: int) -> int:
        with self._connect() as con:
            n = con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            return con.execute("INSERT INTO sessions (started_at, workers, budget, status, "
                               "evaluations_before) VALUES (?, ?, ?, 'running', ?)",
                               (time.time(), workers, budget, n)).lastrowid

    def end_session(self, session: int, status: str) -> None:
        with self._connect() as con:
            n = con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
            con.execute("UPDATE sessions SET finished_at = ?, status = ?, evaluations_after = ? "
                        "WHERE id = ?", (time.time(), status, n, session))

    def sessions(self) -> list[dict[str, Any]]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM sessions ORDER BY id")]


@dataclass(frozen=True)
class Recorder:
    """The training job wrapped to store its row as soon as it is trained (picklable for Dask)."""

    folder: str
    job_fn: Callable[[TrainJob], TrainResult]
    candidates: dict[str, Candidate] = field(repr=False)
    constraints: Constraints

    def __call__(self, job: TrainJob) -> TrainResult:
        from moo_audio.problem import evaluation_row

        started = time.time()
        result = self.job_fn(job)
        candidate = self.candidates[job.genome.to_json(sort_keys=True)]
        RunStore(self.folder).write(candidate, evaluation_row(result), self.constraints, started)
        return result


# ---- Pareto sets and picks ---------------------------------------------------------------------
def pareto(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """The non-dominated feasible evaluations (error, energy, memory), by increasing error."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    feasible = [e for e in evaluations if e.feasible]
    if not feasible:
        return []
    F = np.array([e.objectives for e in feasible])
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return sorted((feasible[i] for i in front), key=lambda e: (e.error, e.energy_mj, e.memory_kb))


def knee(front: Sequence[Evaluation]) -> Evaluation:
    """The balanced trade-off of a front: the smallest achievement scalarising function (pymoo
    ``ASF``) with equal weights, on objectives min-max normalised over the front."""
    from pymoo.decomposition.asf import ASF

    F = np.array([e.objectives for e in front])
    lo, span = F.min(axis=0), np.ptp(F, axis=0)
    normalised = (F - lo) / np.where(span > 0, span, 1.0)
    weights = np.full(F.shape[1], 1.0 / F.shape[1])
    return front[int(np.argmin(ASF().do(normalised, weights)))]


PICKS = ("knee", "min-energy", "min-memory")


def pick(evaluations: Sequence[Evaluation], rule: str, min_accuracy: float | None = None) -> Evaluation:
    """The evaluation ``rule`` chooses: ``knee``, ``min-energy``, ``min-memory`` (of the Pareto set
    of models reaching validation accuracy ``min_accuracy``) or a genome id (or unique prefix)."""
    if rule not in PICKS:
        matches = [e for e in evaluations if e.genome_id.startswith(rule)] if rule else []
        if len(matches) != 1:
            ids = ", ".join(e.genome_id for e in pareto(evaluations)[:5])
            what = "no evaluation" if not matches else f"{len(matches)} evaluations"
            raise RunError(f"--pick {rule!r}: {what} with that id; pick one of {PICKS} or a genome id "
                           f"(Pareto models: {ids or 'none'})")
        chosen = matches[0]
        if min_accuracy is not None and chosen.val_accuracy < min_accuracy:
            raise RunError(f"{chosen.genome_id} has validation accuracy {chosen.val_accuracy:.3f} "
                           f"< --min-accuracy {min_accuracy}")
        return chosen
    candidates = [e for e in evaluations if e.feasible
                  and (min_accuracy is None or e.val_accuracy >= min_accuracy)]
    front = pareto(candidates)
    if not front:
        best = max((e.val_accuracy for e in evaluations if e.feasible), default=math.nan)
        raise RunError(f"--pick {rule}: no feasible model" + (
            f" reaches validation accuracy {min_accuracy} (best {best:.3f})" if min_accuracy is not None else ""))
    if rule == "knee":
        return knee(front)
    column = {"min-energy": "energy_mj", "min-memory": "memory_kb"}[rule]
    return min(front, key=lambda e: (getattr(e, column), e.error))


# ---- algorithms -----------------------------------------------------------------------------------
_CLASSES = {"hybrid": "HybridSearch", "botorch": "BoTorchMOBO", "evolution": "RegularizedEvolution",
            "pso": "MOPSO", "random": "RandomSearch"}


def algorithm_class(name: str) -> type:
    """The class behind ``--algorithm name``, imported on demand (BoTorch is slow to import)."""
    if name not in ALGORITHMS:
        raise RunError(f"unknown algorithm {name!r}; expected one of {ALGORITHMS}")
    if name == "nsga2":
        from pymoo.algorithms.moo.nsga2 import NSGA2

        return NSGA2
    cls = getattr(import_module("moo_audio.algorithms"), _CLASSES[name], None)
    if cls is None:
        raise RunError(f"algorithm {name!r} is not available in this version of moo_audio "
                       f"(moo_audio.algorithms has no {_CLASSES[name]})")
    return cls


#: candidates per batch where the problem file sets none; not the worker count, so that a search
#: proposes the same candidates on any number of workers (a file sets a larger batch for more)
DEFAULT_BATCH = 4


def default_options(name: str, budget: int) -> dict[str, Any]:
    """Options sized to the budget, used where the problem file sets none: a population of about a
    third of the budget (4 to 20) and batches of :data:`DEFAULT_BATCH` candidates."""
    pop = max(4, min(20, budget // 3))
    return {"nsga2": {"pop_size": pop},
            "evolution": {"pop_size": pop, "sample_size": max(2, pop // 3), "n_offsprings": DEFAULT_BATCH},
            "pso": {"pop_size": pop},
            "random": {"batch_size": DEFAULT_BATCH},
            "botorch": {"q": DEFAULT_BATCH},
            "hybrid": {}}[name]


def _accepted(cls: type) -> set[str] | None:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy
    (pymoo's ``Algorithm`` swallows unknown keywords, so they are checked here)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return names - {"self"}


def make_algorithm(name: str, options: Mapping[str, Any], source: str = "options"):
    """An algorithm instance; ``nsga2`` gets the genome sampling and repair. ``source`` names where
    ``options`` came from in errors (e.g. ``problems/x.toml: algorithms.evolution``)."""
    cls = algorithm_class(name)
    unknown = sorted(set(options) - _accepted(cls))
    if unknown:
        raise RunError(f"{source}.{unknown[0]}: {cls.__name__} has no option {unknown[0]!r}")
    if name == "nsga2":
        from moo_audio.space import GenomeRepair, GenomeSampling

        options = {"sampling": GenomeSampling(), "repair": GenomeRepair(),
                   "eliminate_duplicates": True, **options}
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise RunError(f"{source}: {err}") from None


# ---- a search on a run folder ---------------------------------------------------------------------
def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("moo-audio", "torch", "torchaudio", "pymoo", "botorch", "scikit-learn", "numpy",
                    "onnxruntime"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def dataset_info(dataset) -> dict[str, Any]:
    return {"name": dataset.name, "fingerprint": dataset.fingerprint,
            "sample_rate": dataset.sample_rate, "clip_ms": dataset.clip_ms,
            "n_classes": dataset.n_classes, "class_names": list(dataset.class_names),
            "splits": {s: int(len(i)) for s, i in dataset.splits.items()}}


def stored_problem(meta: Mapping[str, Any]) -> ProblemSpec:
    """The problem file a run was made with, as it was then (relative paths from its old place)."""
    return parse_problem(meta["problem"]["text"], meta["problem"]["path"])


@dataclass(frozen=True)
class Settings:
    """What makes a run: replaying it needs the same problem, algorithm, options and seed."""

    algorithm: str
    options: dict[str, Any]
    seed: int
    budget: int


class Search:
    """One ``moo-audio search`` invocation on a run folder, new or resumed.

    Args:
        folder: the run folder.
        spec: the problem.
        settings: algorithm, options, seed and budget.
        resume: continue the run in ``folder`` (refused if it was made with another problem file,
            algorithm, options or seed); without it ``folder`` must not hold a run.
        workers: ``> 1`` trains on a local Dask cluster of that many single-threaded processes.
        feature_cache: where log-mel features are cached (default: the user cache).
        device: torch device candidates train on (e.g. ``"cuda"``); GPU kernels are not bitwise
            deterministic, so a resumed GPU run may propose other candidates than the first did.
    """

    def __init__(self, folder: str | os.PathLike, spec: ProblemSpec, settings: Settings, *,
                 resume: bool = False, workers: int = 1, feature_cache: str | os.PathLike | None = None,
                 device: str = "cpu"):
        self.folder, self.spec, self.settings, self.workers = Path(folder), spec, settings, workers
        self.feature_cache, self.device = feature_cache, device
        if resume:
            self.store = RunStore.open(self.folder)
            self._check_same_run(self.store.meta())
        else:
            if (self.folder / DB_NAME).exists():
                store = RunStore(self.folder)
                meta = store.meta()
                raise RunError(f"{self.folder} already holds a run ({store.count()}/{meta.get('budget')} "
                               f"evaluations, {meta.get('status')}); continue it with --resume, or "
                               "choose another --out")
            self.store = None
        self.dataset = spec.load_dataset()
        if self.store is None:
            self.store = RunStore.create(self.folder, self._meta())
        else:
            fingerprint = self.store.meta()["dataset"]["fingerprint"]
            if fingerprint != self.dataset.fingerprint:
                raise RunError(f"{self.folder} was run on other data (dataset fingerprint {fingerprint}, "
                               f"now {self.dataset.fingerprint}); resuming would mix results")
            self.store.set_meta(budget=settings.budget, status="running")

    def _meta(self) -> dict[str, Any]:
        s = self.settings
        return {"problem": {"name": self.spec.name, "path": str(self.spec.path.resolve()),
                            "sha256": self.spec.sha256, "text": self.spec.text},
                "algorithm": s.algorithm, "algorithm_options": s.options, "seed": s.seed,
                "budget": s.budget, "dataset": dataset_info(self.dataset),
                "energy_model": self.spec.energy_fingerprint(), "versions": versions(),
                "created_at": time.time(), "status": "running"}

    def _check_same_run(self, meta: Mapping[str, Any]) -> None:
        s = self.settings
        if meta["problem"]["sha256"] != self.spec.sha256:
            raise RunError(f"{self.folder} was made with another problem file ({meta['problem']['path']}, "
                           f"sha256 {meta['problem']['sha256'][:12]}); {self.spec.path} has sha256 "
                           f"{self.spec.sha256[:12]}. Resume without --problem to use the stored one")
        for key, now in (("algorithm", s.algorithm), ("seed", s.seed), ("algorithm_options", s.options),
                         ("energy_model", self.spec.energy_fingerprint())):
            if meta[key] != now:
                raise RunError(f"{self.folder} was made with {key} {meta[key]!r}, not {now!r}; "
                               "resume it with the same settings or choose another --out")

    def run(self, callback: Callable | None = None):
        """Run (or replay and continue) the search; the pymoo result."""
        from pymoo.optimize import minimize

        from moo_audio.problem import dask_runner

        runner = dask_runner(n_workers=self.workers) if self.workers > 1 else None
        session = self.store.begin_session(self.workers, self.settings.budget)
        status = "interrupted"
        try:
            problem = self.spec.make_problem(
                self.dataset, seed=self.settings.seed, store=self.store, runner=runner,
                feature_cache=self.feature_cache, device=self.device)
            algorithm = make_algorithm(self.settings.algorithm, self.settings.options,
                                       f"{self.spec.path}: algorithms.{self.settings.algorithm}")
            extra = {"callback": callback} if callback is not None else {}
            result = minimize(problem, algorithm, ("n_evals", self.settings.budget),
                              seed=self.settings.seed, verbose=False, **extra)
            self.problem = problem
            status = "finished"
            self.store.set_meta(status="finished", finished_at=time.time())
            return result
        finally:
            self.store.end_session(session, status)
            if status != "finished":
                self.store.set_meta(status=status)
            if runner is not None:
                # workers still unwinding torch threads at shutdown are killed; that is expected
                logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
                cluster = getattr(runner.client, "cluster", None)
                runner.client.close()
                if cluster is not None:
                    cluster.close()

    def unreplayed(self) -> list[str]:
        """Stored genome ids the last :meth:`run` did not ask for: non-empty only if the replay
        diverged from the run it continued (the rows stay in the store and the report)."""
        asked = set(self.problem.evaluated_keys)
        return [e.genome_id for e in self.store.evaluations() if e.key not in asked]
