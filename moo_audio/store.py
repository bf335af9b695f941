"""The run store: a search's evaluations in one SQLite file, written by the driver alone.

A run folder holds ``run.sqlite`` with four tables:

* ``meta``: the problem file (text, path, SHA-256), algorithm and its options, seed, budget, the
  dataset's fingerprint and shape, the energy model, library versions, status;
* ``evaluations``: one row per distinct candidate (its genome key is unique): costs, error,
  accuracies, constraint values, learning curve, stop or failure reason, timings, the worker that
  trained it, and ``(batch, position)``, the order the optimizer asked for it;
* ``baselines``: baselines trained by the report or the evaluation, cached so both are reproducible;
* ``sessions``: each ``moo-audio search`` invocation on the folder (start, end, workers, status).

**One writer.** Only the search's driver process writes (:meth:`RunStore.write`), each row the moment
its training result reaches it, so workers need no access to the file (they may run on other
machines) and a ``kill -9`` of the driver loses only the candidates in training at that moment.
While a search runs the file is in WAL mode; when its session ends it is checkpointed back to a
single file. Readers (:meth:`RunStore.open` with ``readonly=True``: reports, exports, benchmarks)
open it read-only and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moo_audio.objectives import OBJECTIVE_NAMES
from moo_audio.problem import COST_FIELDS, Candidate, Constraints, Costs
from moo_audio.space import Genome

DB_NAME = "run.sqlite"
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- completion order
    genome_key TEXT NOT NULL UNIQUE,           -- Genome.key
    genome_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    position INTEGER NOT NULL,
    error REAL NOT NULL,
    energy_mj REAL NOT NULL,
    memory_kb REAL NOT NULL,
    macs REAL NOT NULL,
    params REAL NOT NULL,
    val_accuracy REAL,
    test_accuracy REAL,                        -- NULL: a search never reads the test split
    epochs INTEGER NOT NULL,
    stop_reason TEXT NOT NULL,
    failed INTEGER NOT NULL,
    failure_reason TEXT,
    constraints TEXT NOT NULL,                 -- JSON {constraint: g}, g <= 0 satisfied
    result TEXT NOT NULL,                      -- JSON of the evaluation row, exactly as trained
    train_seconds REAL NOT NULL,
    started_at REAL,                           -- finished_at - train_seconds
    finished_at REAL NOT NULL,                 -- when the driver received the result
    worker TEXT NOT NULL                       -- host:pid of the process that trained it
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
_EVALUATION_COLUMNS = ("id", "genome_id", "genome_key", "batch", "position", "error", "energy_mj",
                       "memory_kb", "macs", "params", "val_accuracy", "test_accuracy", "epochs",
                       "stop_reason", "failed", "failure_reason", "constraints", "result", "train_seconds",
                       "started_at", "finished_at", "worker")


class RunError(ValueError):
    """A run folder that cannot be used as asked (missing, or made by another problem or setting)."""


def genome_id(key: str) -> str:
    """The id of a genome given its key (the same as :func:`moo_audio.energy.records.genome_id`)."""
    from moo_audio.energy.records import genome_id as _genome_id

    return _genome_id(Genome.from_json(key))


@dataclass(frozen=True)
class Evaluation(Costs):
    """One stored evaluation. ``error`` is ``1 - val_accuracy`` (1 for failed or untrained ones)."""

    id: int
    genome_id: str
    key: str
    batch: int
    position: int
    error: float
    val_accuracy: float
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
        return np.array([getattr(self, name) for name in OBJECTIVE_NAMES])


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class RunStore:
    """The SQLite store of one run folder; an :class:`~moo_audio.problem.EvaluationStore`.

    Every call opens its own short connection. Use one instance to write (the search's driver) and
    any number of read-only ones (``RunStore.open(folder, readonly=True)``) to read.
    """

    def __init__(self, folder: str | os.PathLike, readonly: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.readonly = readonly

    # ---- connections ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        else:
            con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        try:
            con.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            if not self.readonly:
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
    def open(cls, folder: str | os.PathLike, readonly: bool = False) -> RunStore:
        """The store of an existing run folder (``readonly``: for reading only, leaving no file behind)."""
        store = cls(folder, readonly=readonly)
        if not store.path.is_file():
            raise RunError(f"{folder} is not a run folder (no {DB_NAME})")
        try:
            version = store.meta().get("schema_version")
        except sqlite3.DatabaseError as err:
            raise RunError(f"{store.path} is not a moo_audio run store ({err})") from None
        if version != SCHEMA_VERSION:
            raise RunError(f"{store.path} has run-store schema {version!r}; this version reads {SCHEMA_VERSION}")
        return store

    def _journal(self, mode: str) -> None:
        con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        try:
            con.execute(f"PRAGMA journal_mode={mode}")
        finally:
            con.close()

    def close(self) -> None:
        """Fold the write-ahead log of a search back into the file: a run at rest is one file."""
        self._journal("DELETE")

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
              worker: str = "") -> bool:
        """Store one evaluation; ``False`` if the genome was already stored (the first row stays)."""
        accuracy = float(row["val_accuracy"])
        g = constraints.values(accuracy, candidate.energy_mj, candidate.memory_kb, candidate.macs)
        finished = time.time()
        values = {
            "genome_id": genome_id(candidate.key), "genome_key": candidate.key, "batch": candidate.batch,
            "position": candidate.position, "error": 1.0 - accuracy,
            **{name: getattr(candidate, name) for name in COST_FIELDS},
            "val_accuracy": accuracy, "test_accuracy": None, "epochs": int(row["epochs"]),
            "stop_reason": row["stop_reason"], "failed": int(bool(row["failed"])),
            "failure_reason": row["failure_reason"], "constraints": json.dumps({k: float(v) for k, v in g.items()}),
            "result": json.dumps(dict(row)), "train_seconds": float(row["seconds"]),
            "started_at": finished - float(row["seconds"]), "finished_at": finished, "worker": worker}
        with self._connect() as con:
            cursor = con.execute(f"INSERT OR IGNORE INTO evaluations ({', '.join(values)}) VALUES "
                                 f"({','.join('?' * len(values))})", tuple(values.values()))
            return cursor.rowcount == 1

    # ---- reading -------------------------------------------------------------------------------
    def count(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def evaluations(self, since_id: int = 0) -> list[Evaluation]:
        """Stored evaluations with ``id > since_id``, in the order the optimizer asked for them."""
        with self._connect() as con:
            rows = con.execute(f"SELECT {', '.join(_EVALUATION_COLUMNS)} FROM evaluations WHERE id > ? "
                               "ORDER BY batch, position, id", (since_id,)).fetchall()
        out = []
        for values in rows:
            r = dict(zip(_EVALUATION_COLUMNS, values))
            result = json.loads(r.pop("result"))
            out.append(Evaluation(
                **{k: r[k] for k in ("id", "genome_id", "batch", "position", "error", *COST_FIELDS, "epochs",
                                      "stop_reason", "failure_reason", "train_seconds", "started_at",
                                      "finished_at", "worker")},
                key=r["genome_key"], val_accuracy=_nan(r["val_accuracy"]),
                failed=bool(r["failed"]),
                constraints=json.loads(r["constraints"]), curve=list(result["curve"]),
                train_loss=list(result["train_loss"])))
        return out

    # ---- baselines and sessions -----------------------------------------------------------------
    def baseline(self, key: str) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT result FROM baselines WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_baseline(self, key: str, label: str, genome: Genome, result: Mapping[str, Any]) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?)",
                        (key, label, genome.key, json.dumps(dict(result)), time.time()))

    def begin_session(self, workers: int, budget: int) -> int:
        """Record a search session; the store is in WAL mode until :meth:`close`, so that readers
        (reports, a second terminal) may look while the search writes."""
        self._journal("WAL")
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

    def search_seconds(self) -> float:
        """Wall seconds of the run's finished search sessions together (a resumed or extended run has several)."""
        return sum(s["finished_at"] - s["started_at"] for s in self.sessions() if s["finished_at"] is not None)
