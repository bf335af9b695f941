"""Choosing models from a run: its Pareto set, the knee, and the picks of ``moo-audio export``.

Every choice reads validation results only (``error`` is ``1 - validation accuracy``): the test
split is for the final, held-out evaluation (``moo-audio evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from moo_audio.store import Evaluation, RunError

PICKS = ("knee", "min-energy", "min-memory")


def pareto(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """The non-dominated feasible evaluations (error, energy, memory), by increasing error."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    feasible = [e for e in evaluations if e.feasible]
    if not feasible:
        return []
    F = np.array([e.objectives for e in feasible])
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return sorted((feasible[i] for i in front), key=lambda e: tuple(e.objectives))


def knee(front: Sequence[Evaluation]) -> Evaluation:
    """The balanced trade-off of a front: the smallest achievement scalarising function (pymoo
    ``ASF``) with equal weights, on objectives min-max normalised over the front."""
    from pymoo.decomposition.asf import ASF

    F = np.array([e.objectives for e in front])
    lo, span = F.min(axis=0), np.ptp(F, axis=0)
    normalised = (F - lo) / np.where(span > 0, span, 1.0)
    weights = np.full(F.shape[1], 1.0 / F.shape[1])
    return front[int(np.argmin(ASF().do(normalised, weights)))]


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
