"""``SurrogateAudioNASProblem``: the audio NAS problem answered in milliseconds from real trainings.

A *table* holds architectures sampled from a problem file's search space and trained for its whole
budget (``benchmarks/build_surrogate.py``; the tables of ``problems/builtin.toml`` and
``problems/fsdd.toml`` ship in ``moo_audio/tables``). The surrogate answers any genome of that
space: its error by a random forest fitted to the table over the generic architecture features of
:mod:`moo_audio.energy.features` (cross-validated accuracy in :attr:`error_model_report`), its
energy and memory exactly, as :class:`~moo_audio.problem.AudioNASProblem` does. Objectives,
constraints, variables and the exact cheap objectives are those of the real problem, so every
optimizer runs on it unchanged and a 200-evaluation run takes seconds.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pymoo.core.problem import Problem
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import KFold, cross_val_predict

from moo_audio.energy import EnergyModel
from moo_audio.energy.features import feature_matrix
from moo_audio.energy.packaged import default_model
from moo_audio.objectives import CHEAP_OBJECTIVES, OBJECTIVES
from moo_audio.problem import Constraints, cheap_values, cost_columns
from moo_audio.space import Genome, GenomeRepair, SearchSpace

#: tables shipped with the package, by name
TABLES = ("builtin", "fsdd")


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
    return SurrogateTable(data["meta"], tuple(data["rows"]))


@dataclass(frozen=True)
class ErrorModelReport:
    """k-fold cross-validated accuracy of the error forest on the table."""

    n: int
    folds: int
    mae: float        # mean absolute error of the predicted classification error
    spearman: float   # rank correlation of predicted and trained error
    r2: float

    def __str__(self) -> str:
        return (f"n={self.n}, {self.folds}-fold: MAE {self.mae:.3f}, Spearman {self.spearman:.3f}, "
                f"R2 {self.r2:.3f}")


class SurrogateAudioNASProblem(Problem):
    """The audio NAS problem of a table's problem file, with a fitted forest in place of training.

    Args:
        table: a shipped table name (:data:`TABLES`), a table file, or a loaded :class:`SurrogateTable`.
        energy_model: predicts energy per inference (mJ); default the packaged forest (as the real problem).
        constraints: default the table's (those of its problem file); breaking a cheap one gives the
            error of an untrained candidate (1.0), as the real problem does.
        n_estimators: trees of the error forest.
        folds: folds of the cross-validation in :attr:`error_model_report`.
        seed: seed of the forest and of the cross-validation split.
    """

    cheap_objectives = CHEAP_OBJECTIVES

    def __init__(self, table: str | os.PathLike | SurrogateTable = "builtin",
                 energy_model: EnergyModel | None = None, constraints: Constraints | None = None,
                 n_estimators: int = 300, folds: int = 5, seed: int = 0):
        self.table = table if isinstance(table, SurrogateTable) else load_table(table)
        self.space = self.table.space
        self.energy_model = energy_model or default_model()
        self.constraints = constraints if constraints is not None else self.table.constraints
        self.repair = GenomeRepair()
        rows = self.table.trained()
        if len(rows) < 2 * folds:
            raise ValueError(f"surrogate table of {self.table.meta['problem']!r} has {len(rows)} trained "
                             f"architectures; at least {2 * folds} are needed")
        X = feature_matrix(self.table.genomes(rows))
        y = 1.0 - np.array([r["val_accuracy"] for r in rows])
        self.forest = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2,
                                            random_state=seed, n_jobs=1)
        cv = cross_val_predict(self.forest, X, y, cv=KFold(folds, shuffle=True, random_state=seed))
        self.error_model_report = ErrorModelReport(
            n=len(y), folds=folds, mae=float(mean_absolute_error(y, cv)),
            spearman=float(spearmanr(cv, y).statistic), r2=float(r2_score(y, cv)))
        self.forest.fit(X, y)
        n = self.space.n_var
        super().__init__(n_var=n, n_obj=len(OBJECTIVES), n_ieq_constr=len(self.constraints.active()),
                         xl=np.zeros(n), xu=np.ones(n), vars=self.space.pymoo_vars())

    def predict_error(self, genomes: Sequence[Genome]) -> np.ndarray:
        """The forest's classification error of each genome, clipped to ``[0, 1]``."""
        return np.clip(self.forest.predict(feature_matrix(genomes)), 0.0, 1.0)

    def evaluate_cheap(self, X: np.ndarray) -> np.ndarray:
        """The cheap objectives (energy, memory) of a design matrix."""
        columns = cost_columns(cheap_values(self.space.from_x(X), self.energy_model))
        return np.column_stack([columns[OBJECTIVES[j].name] for j in CHEAP_OBJECTIVES])

    def _evaluate(self, X, out, *args, **kwargs):
        genomes = self.space.from_x(X)
        columns = cost_columns(cheap_values(genomes, self.energy_model))
        energy, memory, macs = columns["energy_mj"], columns["memory_kb"], columns["macs"]
        error = self.predict_error(genomes)
        skipped = np.array([any(v > 0 for v in self.constraints.cheap_violations(e, m, c).values())
                            for e, m, c in zip(energy, memory, macs)], dtype=bool)
        error[skipped] = 1.0  # the real problem does not train these: accuracy 0
        out["F"] = np.column_stack([error, energy, memory])
        g = self.constraints.values(1.0 - error, energy, memory, macs)
        if g:
            out["G"] = np.column_stack(list(g.values()))
        out.update(columns)
        out["val_accuracy"] = 1.0 - error
