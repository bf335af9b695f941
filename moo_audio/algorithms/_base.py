"""Shared machinery of the unit-cube algorithms: evaluation archive, novelty, budget, selection."""

from __future__ import annotations

import numpy as np
from pymoo.core.algorithm import Algorithm
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.core.survival import split_by_feasibility
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.termination.max_eval import MaximumFunctionCallTermination
from pymoo.util.display.multi import MultiObjectiveOutput
from pymoo.util.optimum import filter_optimum

from moo_audio.algorithms._space import UnitCube, row_keys
from moo_audio.algorithms.operators import CubeSampling

#: tries to turn a duplicate candidate into a new one: one-gene mutations of it, then uniform samples
_MUTATION_TRIES, _SAMPLE_TRIES = 5, 20


def mark_failed(pop: Population) -> None:
    """Mark evaluations with a non-finite objective or constraint violation infeasible (``CV = inf``).

    Their ``F`` stays as returned; pymoo's optimum filtering, survival and our models then treat them
    as the worst possible points instead of comparing NaNs.
    """
    F, CV = pop.get("F", "CV")
    failed = ~(np.all(np.isfinite(F), axis=1) & np.all(np.isfinite(CV), axis=1))
    for ind in pop[failed]:
        ind.CV = np.array([np.inf])


def rank_and_crowding(problem: Problem, pop: Population, n: int, rng: np.random.Generator) -> Population:
    """The ``n`` best of ``pop`` by pymoo's rank-and-crowding survival, feasible ones first.

    The feasibility split is done here rather than by the survival, which skips it on problems that
    declare no constraints, while failed evaluations (see :func:`mark_failed`) occur on any problem.
    """
    feas, infeas = split_by_feasibility(pop, sort_infeas_by_cv=True)
    best = RankAndCrowding().do(problem, pop[feas], n_survive=n, random_state=rng)
    return Population.merge(best, pop[infeas[: n - len(best)]])


class UnitCubeAlgorithm(Algorithm):
    """Base of the moo_audio algorithms: they search :class:`UnitCube` and remember every evaluation.

    Args:
        sampling: pymoo sampling of the first candidates (default :class:`CubeSampling`).
        repair: a pymoo repair applied to every candidate (default the problem's ``repair``).

    Subclasses create candidates as cube points and pass them through :meth:`_novel`, which decodes
    and repairs them, drops points already evaluated, and caps the batch at the remaining
    ``n_evals`` budget. Every individual told to the algorithm is appended to :attr:`evaluated`
    (with its cube point as attribute ``"U"``); :attr:`opt` is the non-dominated feasible subset of it.
    """

    def __init__(self, sampling: Sampling | None = None, repair: Repair | None = None, output=None, **kwargs):
        super().__init__(output=output if output is not None else MultiObjectiveOutput(), **kwargs)
        self.sampling = sampling if sampling is not None else CubeSampling()
        self.repair = repair

    def _setup(self, problem: Problem, **kwargs) -> None:
        self.space = UnitCube(problem, self.repair)
        self.evaluated = Population.empty()
        self._seen: set[bytes] = set()

    def advance(self, infills: Population | None = None, **kwargs):
        """pymoo's advance, after recording the evaluated ``infills`` (an empty batch ends the run)."""
        if infills is not None and len(infills) == 0:
            self.termination.terminate()  # no new candidate could be found: the space is exhausted
        elif infills is not None:
            self._record(infills)
        return super().advance(infills=infills, **kwargs)

    def _sample(self, n: int) -> np.ndarray:
        """``n`` cube points from the sampling operator."""
        return self.space.encode(self.sampling.do(self.problem, n, random_state=self.random_state).get("X"))

    def _mutate(self, U: np.ndarray, mutation: Mutation) -> np.ndarray:
        """Cube points moved by a (pymoo) mutation operator, which sees this algorithm."""
        if len(U) == 0:
            return U
        pop = Population.new("X", self.space.decode(U))
        return self.space.encode(mutation.do(self.problem, pop, random_state=self.random_state,
                                             algorithm=self).get("X"))

    def _record(self, pop: Population) -> None:
        mark_failed(pop)
        missing = [ind for ind in pop if ind.get("U") is None]
        if missing:
            U = self.space.encode(np.array([ind.X for ind in missing]))
            for ind, u in zip(missing, U):
                ind.set("U", u)
        self._seen.update(row_keys(pop.get("U")))
        self.evaluated = Population.merge(self.evaluated, pop)

    def _set_optimum(self) -> None:
        self.opt = filter_optimum(self.evaluated, least_infeasible=True)

    def _budget(self, n: int) -> int:
        """``n`` capped at the evaluations left under an ``("n_evals", N)`` termination."""
        if isinstance(self.termination, MaximumFunctionCallTermination):
            return int(max(0, min(n, self.termination.n_max_evals - self.evaluator.n_eval)))
        return n

    def _novel(self, U: np.ndarray) -> tuple[Population, np.ndarray]:
        """Candidates from cube points: decoded, repaired, new (not evaluated, not repeated), in budget.

        A duplicate row is replaced by one-gene mutations of itself, then by uniform samples; a row
        still duplicate after that is dropped (the space is nearly exhausted). Telling an empty
        population terminates the run.

        Returns:
            The population (``X`` and ``"U"`` set) and, for each of its members, its row in ``U``.
        """
        U = np.atleast_2d(U)[: self._budget(len(U))]
        if len(U) == 0:
            return Population.empty(), np.empty(0, dtype=int)
        seen, rows, out_X, out_U = set(self._seen), [], [None] * len(U), [None] * len(U)
        todo, pending = np.arange(len(U)), U
        tries = _MUTATION_TRIES + _SAMPLE_TRIES
        for attempt in range(tries + 1):
            X, Uc = self.space.canonical(pending)
            again = []
            for i, x, u, key in zip(todo, X, Uc, row_keys(Uc)):
                if key in seen:
                    again.append(i)
                else:
                    seen.add(key)
                    rows.append(i)
                    out_X[i], out_U[i] = x, u
            if not again or attempt == tries:
                break
            todo = np.array(again)
            if attempt < _MUTATION_TRIES:
                pending = self.space.mutate(U[todo], self.random_state)
            else:
                pending = self.space.sample(len(todo), self.random_state)
        rows = np.sort(np.array(rows, dtype=int))
        if self.space.encoder is not None:
            X = np.empty(len(rows), dtype=object)
            X[:] = [out_X[i] for i in rows]
        else:
            X = np.array([out_X[i] for i in rows]).reshape(len(rows), self.space.n_dims)
        pop = Population.new("X", X)
        if len(rows):
            pop.set("U", np.stack([out_U[i] for i in rows]))
        return pop, rows
