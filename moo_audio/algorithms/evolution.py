"""Regularized (aging) evolution, multi-objective, over the unit-cube view."""

from __future__ import annotations

import numpy as np
from moocore import hv_contributions
from pymoo.core.population import Population
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from moo_audio.algorithms._base import UnitCubeAlgorithm


class RegularizedEvolution(UnitCubeAlgorithm):
    """Aging evolution (Real et al., 2019) with Pareto tournaments.

    Each step samples ``sample_size`` members of the population per child, takes as parent the
    sample's non-dominated member with the largest hypervolume contribution (in the sample's
    normalised objectives, reference 1.1; feasible members first), mutates one gene (:meth:`_mutate`),
    evaluates the children and removes as many of the *oldest* members as children were added.
    Hypervolume contribution rather than crowding distance: crowding gives every extreme point an
    infinite score, so with three objectives most tournaments pick an extreme, unconverged point
    (measured on DTLZ2, see ``docs/algorithms.md``). :attr:`opt` is the non-dominated set of
    everything evaluated, not only of the (aging) population.

    Args:
        pop_size: population size ``P`` (the initial uniform random sample).
        sample_size: tournament size ``S``.
        n_offsprings: children per step, evaluated as one batch.
    """

    def __init__(self, pop_size: int = 20, sample_size: int = 10, n_offsprings: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= sample_size <= pop_size:
            raise ValueError(f"need 1 <= sample_size <= pop_size, got {sample_size} and {pop_size}")
        if n_offsprings < 1:
            raise ValueError(f"n_offsprings must be >= 1, got {n_offsprings}")
        self.pop_size, self.sample_size, self.n_offsprings = pop_size, sample_size, n_offsprings

    def _initialize_infill(self) -> Population:
        return self._novel(self.space.sample(self.pop_size, self.random_state))[0]

    def _infill(self) -> Population:
        parents = np.stack([self._tournament() for _ in range(self.n_offsprings)])
        return self._novel(self._mutate(parents))[0]

    def _tournament(self) -> np.ndarray:
        """Cube point of the best of a random sample: feasible first (least violation if none), then
        non-dominated, then largest hypervolume contribution in the sample's normalised objectives."""
        n = min(self.sample_size, len(self.pop))
        sample = self.pop[self.random_state.choice(len(self.pop), n, replace=False)]
        feasible = sample[sample.get("FEAS")[:, 0]]
        if len(feasible) == 0:
            return sample[np.argmin(sample.get("CV")[:, 0])].get("U")
        F = feasible.get("F")
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        F = F[front]
        span = F.max(axis=0) - F.min(axis=0)
        F = (F - F.min(axis=0)) / np.where(span > 0, span, 1.0)
        return feasible[front[np.argmax(hv_contributions(F, ref=np.full(F.shape[1], 1.1)))]].get("U")

    def _mutate(self, U: np.ndarray) -> np.ndarray:
        """Children's cube points from the parents' (one-gene mutation)."""
        return self.space.mutate(U, self.random_state)

    def _advance(self, infills: Population | None = None, **kwargs) -> None:
        # aging: the children push out as many of the oldest members (the population keeps its size)
        self.pop = Population.merge(self.pop, infills)[len(infills):]
