"""The objectives every moo_audio problem minimises, and the hypervolume of a run.

One definition of their order, names, labels and scales, read by the problems
(:class:`~moo_audio.problem.AudioNASProblem`, :class:`~moo_audio.surrogate.SurrogateAudioNASProblem`),
the problem files, the run store, the report and the benchmarks.

Hypervolume (:func:`hypervolume_curve`): only feasible evaluations count; each objective is
normalised by a :class:`HypervolumeScale` — the error divided by its reference
(:data:`ERROR_REFERENCE`), energy and memory, which span decades, on a *log* scale from ``lo`` (0) to
``ref`` (1) — and pymoo's ``HV`` is taken with reference point ``(1, 1, 1)``, so it lies in
``[0, ~1]`` and points beyond the reference add nothing. A scale is fixed once, from a set of points
(:meth:`HypervolumeScale.around`: a run's feasible evaluations, or a surrogate table's), so that
curves measured against the same scale compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Objective:
    """One minimised objective.

    Attributes:
        name: the attribute and column name (``error``, ``energy_mj``, ``memory_kb``).
        label: an axis label.
        log: it spans decades, so plots and the hypervolume scale use its logarithm.
        cheap: known exactly without training (the energy model and the cost model).
    """

    name: str
    label: str
    log: bool
    cheap: bool


OBJECTIVES = (
    Objective("error", "error (1 - validation accuracy)", log=False, cheap=False),
    Objective("energy_mj", "energy per inference (mJ)", log=True, cheap=True),
    Objective("memory_kb", "memory (KB: int8 weights + peak activation arena)", log=True, cheap=True),
)
OBJECTIVE_NAMES = tuple(o.name for o in OBJECTIVES)
#: indices of the objectives known without training (pymoo problems' ``cheap_objectives``)
CHEAP_OBJECTIVES = tuple(i for i, o in enumerate(OBJECTIVES) if o.cheap)
#: indices of the objectives that span decades (pymoo problems' ``log_objectives``)
LOG_OBJECTIVES = tuple(i for i, o in enumerate(OBJECTIVES) if o.log)
_LOG = np.array([o.log for o in OBJECTIVES])


def objective_matrix(columns: Mapping[str, np.ndarray], indices: Sequence[int] | None = None) -> np.ndarray:
    """The objective matrix (rows: designs; columns in ``OBJECTIVES`` order, or the objectives at
    ``indices``) from columns named by :data:`OBJECTIVE_NAMES`."""
    names = [OBJECTIVES[j].name for j in (range(len(OBJECTIVES)) if indices is None else indices)]
    missing = [n for n in names if n not in columns]
    if missing:
        raise KeyError(f"objective columns missing: {missing} (have {sorted(columns)})")
    return np.column_stack([np.asarray(columns[n], dtype=float) for n in names])

#: the hypervolume reference of the classification error (its worst value)
ERROR_REFERENCE = 1.0
#: log-scaled objectives are normalised between their minimum / MARGIN and MARGIN x their maximum
MARGIN = 1.1


@dataclass(frozen=True)
class HypervolumeScale:
    """Normalisation of objective vectors (rows of ``OBJECTIVES`` order) for the hypervolume.

    A linear objective is divided by its ``ref``; a log one is mapped from ``lo`` (0) to ``ref`` (1)
    on a log scale. The hypervolume's reference point is then ``(1, 1, 1)``.
    """

    lo: tuple[float, ...]
    ref: tuple[float, ...]

    @classmethod
    def around(cls, F: np.ndarray) -> HypervolumeScale:
        """The scale of a set of feasible objective vectors: error reference :data:`ERROR_REFERENCE`,
        log objectives from their minimum / :data:`MARGIN` to :data:`MARGIN` x their maximum."""
        F = np.atleast_2d(np.asarray(F, dtype=float))
        if not len(F) or not np.all(np.isfinite(F)) or np.any(F[:, _LOG] <= 0):
            raise ValueError("a hypervolume scale needs at least one point with finite objectives "
                             "(positive energy and memory)")
        lo = np.where(_LOG, F.min(axis=0) / MARGIN, 0.0)
        ref = np.where(_LOG, F.max(axis=0) * MARGIN, ERROR_REFERENCE)
        return cls(tuple(lo.tolist()), tuple(ref.tolist()))

    def normalise(self, F: np.ndarray) -> np.ndarray:
        F = np.atleast_2d(np.asarray(F, dtype=float))
        lo, ref = np.array(self.lo), np.array(self.ref)
        out = F / ref
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, _LOG] = np.log(F[:, _LOG] / lo[_LOG]) / np.log(ref[_LOG] / lo[_LOG])
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"lo": list(self.lo), "ref": list(self.ref)}


def hypervolume_curve(F: np.ndarray, feasible: np.ndarray, scale: HypervolumeScale,
                      budget: int | None = None,
                      judged: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Normalised hypervolume of the non-dominated feasible evaluations among the first ``k``, for
    every ``k`` up to ``budget`` (default: all); a run that stopped early keeps its last value.

    Args:
        F: objectives ``(evaluations, 3)`` in the order the optimizer asked for them.
        feasible: whether each evaluation is feasible (trained, finite, every constraint met).
        scale: the normalisation (:meth:`HypervolumeScale.around`).
        judged: ``(F, feasible)`` of the same evaluations to score the front by, e.g. the noise-free
            values of noisy evaluations: the front is still the one ``F`` shows (what an optimizer that
            sees only ``F`` reports), and its hypervolume is that of its members' judged values (judged
            infeasible ones count nothing). That curve can fall: an evaluation that looks better than
            it is can push a truly better one off the front.
    """
    from pymoo.indicators.hv import HV

    F, feasible = np.asarray(F, dtype=float), np.asarray(feasible, dtype=bool)
    budget = len(F) if budget is None else budget
    F, feasible = scale.normalise(F[:budget]) if len(F) else np.empty((0, len(OBJECTIVES))), feasible[:budget]
    if judged is None:
        scored, counts = F, feasible
    else:
        scored = scale.normalise(np.asarray(judged[0], dtype=float)[:budget]) if len(F) else F
        counts = np.asarray(judged[1], dtype=bool)[:budget] & np.all(scored < 1.0, axis=1)
    indicator = HV(ref_point=np.ones(len(OBJECTIVES)))
    curve = np.zeros(budget)
    front: list[int] = []  # rows of the front F shows
    value = 0.0
    for i, f in enumerate(F):
        if feasible[i] and np.all(f < 1.0) and not np.any(np.all(F[front] <= f, axis=1)):
            front = [j for j in front if not np.all(f <= F[j])] + [i]
            members = [j for j in front if counts[j]]
            value = float(indicator(scored[members])) if members else 0.0
        curve[i] = value
    curve[len(F):] = value
    return curve
