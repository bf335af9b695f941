"""Regularized (aging) evolution, multi-objective, over the unit-cube view."""

from __future__ import annotations

import numpy as np
from moocore import hv_contributions
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from moo_audio.algorithms._base import UnitCubeAlgorithm
from moo_audio.algorithms.operators import OneGeneMutation


class RegularizedEvolution(UnitCubeAlgorithm):
    """Aging evolution (Real et al., 2019) with Pareto tournaments.

    Each step samples ``sample_size`` members of the population per child, takes as parent the
    sample's non-dominated member with the largest hypervolume contribution (in the sample's
    normalised objectives, reference 1.1; feasible members first), mutates it (``mutation``, by
    default one gene), evaluates the children and removes as many of the *oldest* members as
    children were added. Hypervolume contribution rather than crowding distance: crowding gives every
    extreme point an infinite score, so with three objectives most tournaments pick an extreme,
    unconverged point (measured on DTLZ2, see ``docs/algorithms.md``). :attr:`opt` is the
    non-dominated set of everything evaluated, not only of the (aging) population.

    Args:
        pop_size: population size ``P`` (the initial sample).
        sample_size: tournament size ``S``.
        n_offsprings: children per step, evaluated as one batch.
        sampling: pymoo sampling of the initial population (default uniform over the cube).
        mutation: pymoo mutation of each child (default :class:`OneGeneMutation`).
        crossover: an optional pymoo crossover of two tournament winners before the mutation (aging
            evolution has none; with one, each child is the first offspring of a crossover).
        repair: a pymoo repair (default the problem's own ``repair``).
    """

    def __init__(self, pop_size: int = 20, sample_size: int = 10, n_offsprings: int = 1,
                 mutation: Mutation | None = None, crossover: Crossover | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= sample_size <= pop_size:
            raise ValueError(f"need 1 <= sample_size <= pop_size, got {sample_size} and {pop_size}")
        if n_offsprings < 1:
            raise ValueError(f"n_offsprings must be >= 1, got {n_offsprings}")
        if crossover is not None and crossover.n_parents != 2:
            raise ValueError(f"crossover must take 2 parents, {type(crossover).__name__} takes {crossover.n_parents}")
        self.pop_size, self.sample_size, self.n_offsprings = pop_size, sample_size, n_offsprings
        self.mutation = mutation if mutation is not None else OneGeneMutation()
        self.crossover = crossover

    def _initialize_infill(self) -> Population:
        return self._novel(self._sample(self.pop_size))[0]

    def _infill(self) -> Population:
        parents = np.stack([self._tournament() for _ in range(self.n_offsprings)])
        if self.crossover is not None:
            parents = self._cross(parents, np.stack([self._tournament() for _ in range(self.n_offsprings)]))
        return self._novel(self._mutate(parents, self.mutation))[0]

    def _cross(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The first offspring of crossing each pair of parents (cube points)."""
        pop = Population.new("X", self.space.decode(np.concatenate([first, second])))
        pairs = np.column_stack([np.arange(len(first)), len(first) + np.arange(len(first))])
        off = self.crossover.do(self.problem, pop, pairs, random_state=self.random_state, algorithm=self)
        return self.space.encode(off.get("X"))[: len(first)]

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

    def _advance(self, infills: Population | None = None, **kwargs) -> None:
        # aging: the children push out as many of the oldest members (the population keeps its size)
        self.pop = Population.merge(self.pop, infills)[len(infills):]
