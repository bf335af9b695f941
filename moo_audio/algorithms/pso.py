"""Multi-objective particle swarm optimisation over the unit-cube view.

pymoo's own ``MOPSO_CD`` works in the problem's ``xl/xu`` box only (no mixed variables, no repair,
no budget capping), hence this implementation on :class:`~moo_audio.algorithms._space.UnitCube`.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.dominator import get_relation
from pymoo.util.optimum import filter_optimum

from moo_audio.algorithms._base import UnitCubeAlgorithm, rank_and_crowding


def select_leaders(archive: Population, n: int, rng: np.random.Generator) -> Population:
    """``n`` leaders from an archive of non-dominated points: binary tournaments on crowding distance,
    so particles are drawn to sparse regions of the front (as in MOPSO-CD)."""
    crowding = get_crowding_function("cd").do(archive.get("F"))
    a, b = rng.integers(len(archive), size=(2, n))
    return archive[np.where(crowding[a] >= crowding[b], a, b)]


def swarm_step(
    X: np.ndarray,
    V: np.ndarray,
    best: np.ndarray,
    leaders: np.ndarray,
    rng: np.random.Generator,
    w: float,
    c1: float,
    c2: float,
    v_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One PSO move in the unit cube: ``v = w v + c1 r1 (best - x) + c2 r2 (leader - x)``, clamped to
    ``v_max``; positions leaving the cube stop at the wall and their velocity component flips.

    Returns:
        The new positions and velocities.
    """
    r1, r2 = rng.random(X.shape), rng.random(X.shape)
    V = np.clip(w * V + c1 * r1 * (best - X) + c2 * r2 * (leaders - X), -v_max, v_max)
    X = X + V
    outside = (X < 0.0) | (X > 1.0)
    return np.clip(X, 0.0, 1.0), np.where(outside, -V, V)


class MOPSO(UnitCubeAlgorithm):
    """Multi-objective particle swarm (Coello Coello et al., 2004) in the unit cube.

    Particles move with inertia ``w`` toward their personal best (``c1``) and a leader (``c2``) drawn
    from an external archive of non-dominated evaluations, bounded to ``archive_size`` by
    rank-and-crowding truncation and sampled by crowding distance (sparse regions preferred). With
    probability ``turbulence`` a particle's new position also gets a one-gene mutation. A personal
    best is replaced by a new position that dominates it, kept if it dominates the new one, and
    replaced with probability 1/2 otherwise (constraint violation counts first).

    Args:
        pop_size: number of particles (candidates per iteration).
        w: inertia weight.
        c1: cognitive (personal best) coefficient.
        c2: social (leader) coefficient.
        v_max: bound on each velocity component, in cube units.
        archive_size: bound on the leader archive.
        turbulence: probability of a one-gene mutation per particle and move.
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pop_size < 1 or archive_size < 1:
            raise ValueError("pop_size and archive_size must be >= 1")
        if not 0.0 <= turbulence <= 1.0:
            raise ValueError(f"turbulence must be a probability, got {turbulence}")
        self.pop_size, self.w, self.c1, self.c2, self.v_max = pop_size, w, c1, c2, v_max
        self.archive_size, self.turbulence = archive_size, turbulence

    def _initialize_infill(self) -> Population:
        pop, _ = self._novel(self.space.sample(self.pop_size, self.random_state))
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
        X[turbulent] = self.space.mutate(X[turbulent], self.random_state)
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
