"""Multi-fidelity search: asynchronous successive halving around any moo_audio proposer."""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.util.optimum import filter_optimum

from moo_audio.algorithms._base import UnitCubeAlgorithm, rank_and_crowding
from moo_audio.algorithms.evolution import RegularizedEvolution


def rung_epochs(min_epochs: int, eta: int, max_epochs: int) -> tuple[int, ...]:
    """The epochs of each rung: ``min_epochs * eta**k`` below ``max_epochs``, then ``max_epochs``."""
    if not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"need 1 <= min_epochs <= max_epochs, got {min_epochs} and {max_epochs}")
    rungs = [min_epochs]
    while rungs[-1] < max_epochs:
        rungs.append(min(rungs[-1] * eta, max_epochs))
    return tuple(rungs)


class SuccessiveHalvingSearch(UnitCubeAlgorithm):
    """Asynchronous successive halving (ASHA, Li et al. 2020), multi-objective, around a proposer.

    Candidates come from ``proposer`` (any :class:`UnitCubeAlgorithm`, driven through ask/tell) and
    are first trained for ``min_epochs``. The rungs are ``min_epochs * eta**k`` epochs, the last one
    the problem's whole budget (:func:`rung_epochs`). A candidate is promoted to the next rung as soon
    as it is among the best ``1/eta`` of the results at its rung (pymoo's rank and crowding on the
    rung's objectives, feasible first; only feasible ones are promoted), as ASHA does; each step
    evaluates one batch, the promotions if there are any (highest rung first), else a new batch from
    the proposer. A promotion is a fresh training for the next rung's epochs, of the same schedule.

    The proposer is told every candidate once, with its first-rung result; with ``tell_promotions``
    its copy is then updated in place to each higher rung's result, so that its model (or population)
    holds the best estimate of every candidate. :attr:`evaluated` holds every evaluation, each with
    its ``"epochs"``; :attr:`opt` is the non-dominated feasible set of the whole-budget evaluations
    (the only ones whose objectives are the problem's).

    The problem must answer ``evaluate(X, epochs=e)`` for ``e`` up to its ``max_epochs``, as
    :class:`~moo_audio.surrogate.SurrogateAudioNASProblem` does. Under ask/tell, evaluate each asked
    batch at its individuals' ``"epochs"`` (one value per batch); ``minimize`` does so by itself.
    An ``("n_evals", N)`` termination counts evaluations at every rung.

    Args:
        proposer: where candidates come from; default ``RegularizedEvolution()``.
        min_epochs: epochs of the first rung.
        eta: promotion rate ``1/eta`` and growth of the epochs between rungs.
        batch_size: candidates per batch (promotions or proposals); default the proposer's own batch.
        tell_promotions: update the proposer's copy of a candidate with each higher rung's result.
    """

    def __init__(self, proposer: UnitCubeAlgorithm | None = None, min_epochs: int = 2, eta: int = 3,
                 batch_size: int | None = None, tell_promotions: bool = True, **kwargs):
        super().__init__(**kwargs)
        if eta < 2:
            raise ValueError(f"eta must be >= 2, got {eta}")
        if min_epochs < 1:
            raise ValueError(f"min_epochs must be >= 1, got {min_epochs}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.proposer = proposer if proposer is not None else RegularizedEvolution()
        self.min_epochs, self.eta, self.batch_size = min_epochs, eta, batch_size
        self.tell_promotions = tell_promotions

    def _setup(self, problem: Problem, **kwargs) -> None:
        max_epochs = getattr(problem, "max_epochs", None)
        if not isinstance(max_epochs, (int, np.integer)) or not getattr(problem, "requires_kwargs", False):
            raise ValueError(
                f"{type(self).__name__} needs a problem that trains for a chosen number of epochs, "
                f"evaluate(X, epochs=e) up to its max_epochs (as SurrogateAudioNASProblem); "
                f"{type(problem).__name__} has no such fidelity (on AudioNASProblem, the 'halving' "
                "stopping rule of [training] stops candidates inside training instead)")
        super()._setup(problem, **kwargs)
        self.rungs = rung_epochs(self.min_epochs, self.eta, int(max_epochs))
        self.proposer.setup(problem, termination=NoTermination(), evaluator=self.evaluator,
                            seed=int(self.random_state.integers(2**31)))
        #: per rung, the evaluations made there; per candidate (its index in rung 0), the proposer's copy
        self._at_rung: list[list] = [[] for _ in self.rungs]
        self._told: list = []
        self._promoted: list[set[int]] = [set() for _ in self.rungs]

    def next(self) -> None:
        """pymoo's step, evaluating the batch at its rung's epochs (one rung per batch)."""
        infills = self.infill()
        if infills is not None:
            epochs = int(infills[0].get("epochs")) if len(infills) else self.rungs[0]
            self.evaluator.eval(self.problem, infills, algorithm=self, epochs=epochs)
            self.advance(infills=infills)
        else:
            self.advance()

    def _initialize_infill(self) -> Population:
        return self._infill()

    def _infill(self) -> Population:
        for rung in reversed(range(len(self.rungs) - 1)):
            ready = self._promotable(rung)
            if ready:
                ready = ready[: self._budget(self.batch_size or len(ready))]
                self._promoted[rung].update(ready)
                parents = [self._at_rung[rung][i] for i in ready]
                pop = Population.new("X", np.array([p.X for p in parents]),
                                     "U", np.array([p.get("U") for p in parents]))
                return self._tag(pop, rung + 1, [p.get("candidate") for p in parents])
        pop = self.proposer.ask()
        pop = pop[: self._budget(self.batch_size or len(pop))]
        first = len(self._told)
        return self._tag(Population.new("X", pop.get("X"), "U", pop.get("U")), 0,
                         list(range(first, first + len(pop))))

    def _tag(self, pop: Population, rung: int, candidates: list[int]) -> Population:
        pop.set("epochs", self.rungs[rung])
        if len(pop):
            pop.set("candidate", np.array(candidates))
        return pop

    def _promotable(self, rung: int) -> list[int]:
        """Indices (at ``rung``) of the feasible results in its best ``1/eta`` not yet promoted."""
        results = Population.create(*self._at_rung[rung])
        n_top = len(results) // self.eta
        if n_top == 0:
            return []
        best = rank_and_crowding(self.problem, results, n_top, self.random_state)
        index = {id(ind): i for i, ind in enumerate(results)}
        return [index[id(ind)] for ind in best if ind.feas and index[id(ind)] not in self._promoted[rung]]

    def _initialize_advance(self, infills: Population | None = None, **kwargs) -> None:
        self._advance(infills)

    def _advance(self, infills: Population | None = None, **kwargs) -> None:
        if len(infills) == 0:
            return  # exhausted space: this run terminates (see UnitCubeAlgorithm.advance)
        rung = self.rungs.index(int(infills[0].get("epochs")))
        self._at_rung[rung].extend(infills)
        if rung == 0:
            copies = Population.new("X", infills.get("X"), "U", infills.get("U"), "F", infills.get("F"))
            if self.problem.n_ieq_constr:
                copies.set("G", infills.get("G"))
            self._told.extend(copies)
            self.proposer.tell(infills=copies)
        elif self.tell_promotions:
            for ind in infills:
                told = self._told[ind.get("candidate")]
                told.F, told.G, told.CV = ind.F, ind.G, ind.CV
        self.pop = Population.create(*self._at_rung[-1]) if self._at_rung[-1] else self.evaluated

    def _set_optimum(self) -> None:
        final = self.evaluated[self.evaluated.get("epochs") == self.rungs[-1]] if len(self.evaluated) else []
        self.opt = filter_optimum(final, least_infeasible=True) if len(final) else None
