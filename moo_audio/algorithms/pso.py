"""Multi-objective particle swarm optimisation over the unit-cube view.

Why not pymoo's ``MOPSO_CD``: it evaluates a first swarm inside ``_setup`` and then samples and
evaluates a second one in ``_initialize_infill`` (two initial swarms, the first outside ask/tell and
the ``n_evals`` budget), ignores constraints and the problem's repair, and moves in the ``xl``/``xu``
box only (no mixed variables). This class keeps the same scheme (crowding-distance leaders, a
bounded non-dominated archive) on the unit-cube view, built from pymoo's crowding function,
rank-and-crowding survival and dominance relation, with the swarm move and leader choice shared
with :class:`~moo_audio.algorithms.operators.SwarmMutation`.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.util.dominator import get_relation
from pymoo.util.optimum import filter_optimum

from moo_audio.algorithms._base import UnitCubeAlgorithm, rank_and_crowding
from moo_audio.algorithms.operators import OneGeneMutation, select_leaders, swarm_step


class MOPSO(UnitCubeAlgorithm):
    """Multi-objective particle swarm (Coello Coello et al., 2004) in the unit cube.

    Particles move with inertia ``w`` toward their personal best (``c1``) and a leader (``c2``) drawn
    from an external archive of non-dominated evaluations, bounded to ``archive_size`` by
    rank-and-crowding truncation and sampled by crowding distance (sparse regions preferred). With
    probability ``turbulence`` a particle's new position is also mutated (``mutation``, by default
    :class:`~moo_audio.algorithms.operators.OneGeneMutation`). A personal
    best is replaced by a new position that dominates it, kept if it dominates the new one, and
    replaced with probability 1/2 otherwise (constraint violation counts first).

    Args:
        pop_size: number of particles (candidates per iteration).
        w: inertia weight.
        c1: cognitive (personal best) coefficient.
        c2: social (leader) coefficient.
        v_max: bound on each velocity component, in cube units.
        archive_size: bound on the leader archive.
        turbulence: probability of a mutation per particle and move.
        sampling, mutation, repair: pymoo operators of the initial swarm, the turbulence and every
            candidate.
    """

    def __init__(
        self,
        pop_size: int = 10,
        w: float = 0.4,
        c1: float = 1.5,
        c2: float = 1.5,
        v_max: float = 0.5,
        archive_size: int = 100,
        turbulence: float = 0.1,
        mutation: Mutation | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pop_size < 1 or archive_size < 1:
            raise ValueError("pop_size and archive_size must be >= 1")
        if not 0.0 <= turbulence <= 1.0:
            raise ValueError(f"turbulence must be a probability, got {turbulence}")
        self.pop_size, self.w, self.c1, self.c2, self.v_max = pop_size, w, c1, c2, v_max
        self.archive_size, self.turbulence = archive_size, turbulence
        self.mutation = mutation if mutation is not None else OneGeneMutation()

    def _initialize_infill(self) -> Population:
        pop, _ = self._novel(self._sample(self.pop_size))
        return pop

    def _initialize_advance(self, infills: Population | None = None, **kwargs) -> None:
        self.pbest = infills.copy()
        self.velocity = np.zeros((len(infills), self.space.n_dims))
        self.leaders = self._archive(infills)

    def _infill(self) -> Population:
        X, V = swarm_step(
            self.pop.get("U"), self.velocity, self.pbest.get("U"),
            select_leaders(self.leaders, len(self.pop), self.random_state).get("U"),
            self.random_state, self.w, self.c1, self.c2, self.v_max,
        )
        turbulent = self.random_state.random(len(X)) < self.turbulence
        X[turbulent] = self._mutate(X[turbulent], self.mutation)
        off, rows = self._novel(X)
        off.set("particle", rows)
        self.velocity = V
        return off

    def _advance(self, infills: Population | None = None, **kwargs) -> None:
        for ind in infills:
            i = ind.get("particle")
            relation = get_relation(ind, self.pbest[i])
            if relation == 1 or (relation == 0 and self.random_state.random() < 0.5):
                self.pbest[i] = ind
            self.pop[i] = ind
        self.leaders = self._archive(Population.merge(self.leaders, infills))

    def _archive(self, pop: Population) -> Population:
        """Non-dominated feasible members of ``pop`` (the least infeasible if none), at most
        ``archive_size`` of them."""
        front = filter_optimum(pop, least_infeasible=True)
        return rank_and_crowding(self.problem, front, self.archive_size, self.random_state)
