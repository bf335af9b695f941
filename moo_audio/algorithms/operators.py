"""The operators of moo_audio's algorithms, as pymoo operators any pymoo algorithm takes.

They act on a problem's design matrix through its unit-cube view
(:class:`~moo_audio.algorithms._space.UnitCube`), so they work on numeric ``xl``/``xu`` problems and on
mixed-variable (``vars``) problems alike, and on :class:`~moo_audio.problem.AudioNASProblem` they move
between architectures:

* :class:`CubeSampling`: uniform points of the cube (every value of a discrete variable equally
  likely); on a numeric problem the same draws as pymoo's ``FloatRandomSampling``;
* :class:`SobolSampling`: a scrambled Sobol design of the cube (BoTorch's initial design);
* :class:`CheapSpreadSampling`: designs spread evenly over a cheap objective (energy), picked from a
  Sobol pool by what a problem knows without training (``evaluate_cheap``, ``cheap_feasible``);
* :class:`OneGeneMutation`: the architecture mutation of regularized evolution (Real et al. 2019):
  one variable per child changes, a discrete one to a different value;
* :class:`SwarmMutation`: with probability ``pso_prob`` a particle-swarm step toward a leader drawn
  from the algorithm's non-dominated set (the swarm move of the reference work's hybrid), else a
  :class:`OneGeneMutation`.

pymoo's own mutations (``PM``, ``BitflipMutation``, ``ChoiceRandomMutation``) change every variable
with some probability; none changes exactly one gene, which is what aging evolution needs, hence
these. ``NSGA2(sampling=GenomeSampling(), mutation=OneGeneMutation(), repair=GenomeRepair())`` on
the audio problem is tested.
"""

from __future__ import annotations

import numpy as np
import torch
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util import default_random_state

from moo_audio.algorithms._space import UnitCube


class _OnCube:
    """The unit-cube view of the problem an operator last acted on (built once per problem)."""

    _cube: UnitCube | None = None

    def cube(self, problem: Problem) -> UnitCube:
        if self._cube is None or self._cube.problem is not problem:
            self._cube = UnitCube(problem)
        return self._cube


class CubeSampling(_OnCube, Sampling):
    """Uniform points of the unit-cube view, as the problem's design matrix."""

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        cube = self.cube(problem)
        return cube.decode(random_state.random((n_samples, cube.n_dims)))


class SobolSampling(_OnCube, Sampling):
    """A scrambled Sobol design of the unit-cube view (seeded from the random state)."""

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        cube = self.cube(problem)
        engine = torch.quasirandom.SobolEngine(cube.n_dims, scramble=True, seed=int(random_state.integers(2**31)))
        return cube.decode(engine.draw(n_samples, dtype=torch.float64).numpy())


class CheapSpreadSampling(SobolSampling):
    """An initial design spread evenly over the log of a cheap objective (by default energy).

    Draws a Sobol pool of ``pool`` x ``n_samples`` designs, keeps those that meet the problem's
    constraints that need no training (``cheap_feasible``; all of the pool if fewer than
    ``n_samples`` do), and takes for each of ``n_samples`` evenly spaced quantiles of the log cheap
    objective the nearest design not yet taken. Every cost level of the front then has a trained
    design from the start, and none is spent on a design the problem would not train. Needs a
    problem with exact cheap objectives (:class:`~moo_audio.problem.CheapQuantities`).

    Written here because pymoo's and BoTorch's initial designs are space-filling in the inputs only;
    none reads a problem's exact objectives. On the audio NAS surrogate, with BoTorchMOBO
    (``n_init=10``), it was ahead on the seeds it was chosen on and not on fresh ones
    (docs/benchmarks.md), so it is an option, not a default.
    """

    def __init__(self, pool: int = 32, objective: int = 0):
        super().__init__()
        if pool < 1 or objective < 0:
            raise ValueError(f"pool must be >= 1 and objective >= 0, got {pool}, {objective}")
        self.pool, self.objective = pool, objective

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        if not all(callable(getattr(problem, name, None)) for name in ("evaluate_cheap", "cheap_feasible")):
            raise ValueError("CheapSpreadSampling needs a problem with `evaluate_cheap` and `cheap_feasible` "
                             "(e.g. AudioNASProblem or SurrogateAudioNASProblem)")
        X = super()._do(problem, n_samples * self.pool, random_state=random_state)
        feasible = problem.cheap_feasible(X)
        X = X[feasible] if feasible.sum() >= n_samples else X
        F = problem.evaluate_cheap(X)
        if self.objective >= F.shape[1]:
            raise ValueError(f"objective {self.objective}: the problem has {F.shape[1]} cheap objective(s)")
        cost = np.log(F[:, self.objective])
        order = np.argsort(cost, kind="stable")
        targets = np.quantile(cost, (np.arange(n_samples) + 0.5) / n_samples)
        free, picked = np.ones(len(X), dtype=bool), []
        for target in targets:
            candidates = order[free[order]]
            best = candidates[np.argmin(np.abs(cost[candidates] - target))]
            free[best] = False
            picked.append(best)
        return X[picked]


class _CubeMutation(_OnCube, Mutation):
    """A mutation of every row (``prob`` 1): no per-row draw decides whether a row mutates."""

    def __init__(self, **kwargs):
        super().__init__(prob=1.0, **kwargs)

    @default_random_state
    def do(self, problem, pop, inplace=True, *args, random_state=None, **kwargs):
        if not inplace:
            pop = pop.copy()
        if len(pop):
            pop.set("X", self._do(problem, pop.get("X"), *args, random_state=random_state, **kwargs))
        return pop

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        cube = self.cube(problem)
        return cube.decode(self.move(cube, cube.encode(X), random_state, **kwargs))

    def move(self, cube: UnitCube, U: np.ndarray, rng: np.random.Generator, **kwargs) -> np.ndarray:
        raise NotImplementedError


class OneGeneMutation(_CubeMutation):
    """Each row changes in exactly one variable: a real one is resampled uniformly, a discrete one
    moves to a different value."""

    def move(self, cube: UnitCube, U: np.ndarray, rng: np.random.Generator, **kwargs) -> np.ndarray:
        return cube.mutate(U, rng)


def select_leaders(archive: Population, n: int, rng: np.random.Generator) -> Population:
    """``n`` leaders from an archive of non-dominated points: binary tournaments on crowding distance,
    so particles are drawn to sparse regions of the front (as in MOPSO-CD)."""
    crowding = get_crowding_function("cd").do(archive.get("F"))
    a, b = rng.integers(len(archive), size=(2, n))
    return archive[np.where(crowding[a] >= crowding[b], a, b)]


def swarm_step(X: np.ndarray, V: np.ndarray, best: np.ndarray, leaders: np.ndarray, rng: np.random.Generator,
               w: float, c1: float, c2: float, v_max: float) -> tuple[np.ndarray, np.ndarray]:
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


class SwarmMutation(_CubeMutation):
    """With probability ``pso_prob`` a swarm step from the parent toward a leader of the algorithm's
    non-dominated set (``algorithm.opt``, :func:`select_leaders`), else a one-gene mutation.

    A child has no velocity or personal best of its own, so the step is the social term of
    :func:`swarm_step` alone: ``x + c2 r (leader - x)``, each component clamped to ``v_max``. Without
    an algorithm (or an empty non-dominated set) every row gets the one-gene mutation.

    Args:
        pso_prob: probability of a swarm step instead of a one-gene mutation.
        c2: social coefficient of the swarm step.
        v_max: bound on each component of the step, in cube units.
    """

    def __init__(self, pso_prob: float = 0.5, c2: float = 1.5, v_max: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= pso_prob <= 1.0:
            raise ValueError(f"pso_prob must be a probability, got {pso_prob}")
        self.pso_prob, self.c2, self.v_max = pso_prob, c2, v_max

    def move(self, cube: UnitCube, U: np.ndarray, rng: np.random.Generator, algorithm=None, **kwargs) -> np.ndarray:
        U = U.copy()
        swarm = rng.random(len(U)) < self.pso_prob
        opt = getattr(algorithm, "opt", None)
        if opt is None or len(opt) == 0:
            swarm[:] = False
        U[~swarm] = cube.mutate(U[~swarm], rng)
        if swarm.any():
            leaders = select_leaders(opt, int(swarm.sum()), rng)
            U[swarm], _ = swarm_step(U[swarm], np.zeros_like(U[swarm]), U[swarm], cube.encode(leaders.get("X")), rng,
                                     w=0.0, c1=0.0, c2=self.c2, v_max=self.v_max)
        return U
