"""The reference work's hybrid: Bayesian optimisation first, then evolution with swarm moves."""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.indicators.hv import HV
from pymoo.termination.max_eval import MaximumFunctionCallTermination

from moo_audio.algorithms._base import UnitCubeAlgorithm
from moo_audio.algorithms.botorch_mobo import BoTorchMOBO, default_n_init
from moo_audio.algorithms.evolution import RegularizedEvolution
from moo_audio.algorithms.operators import SwarmMutation


class HybridSearch(UnitCubeAlgorithm):
    """Bayesian optimisation, then (from the switch on) evolution with swarm moves.

    Runs ``bo`` until ``switch_at`` evaluations have been spent (a fraction of an ``("n_evals", N)``
    budget when below 1, else an absolute count) or, if ``stall_iters`` is set, until the hypervolume
    of the evaluations (in ``bo``'s objective frame, log-scaled objectives on a log scale) has not
    improved over ``stall_iters`` BO iterations; then ``evolution``
    continues with *everything evaluated so far* as its population (aging from there on). Both
    phases are the ordinary algorithms, driven through ask/tell and sharing this run's evaluator.

    Unless ``bo.n_init`` is set, the initial design is at most half of the BO phase (so that a short
    phase, e.g. 0.3 of 60 evaluations, still has BO iterations). The stall hypervolume uses
    ``bo.ref_point`` or, failing that, a reference point inferred once
    from the feasible evaluations of the initial design (:func:`inferred_reference_point`).

    Args:
        bo: the first phase; default ``BoTorchMOBO()``.
        evolution: the second phase; default ``RegularizedEvolution(mutation=SwarmMutation())``:
            evolution whose mutation is, half of the time, a swarm step toward a leader.
        switch_at: when to switch (fraction of the budget, or number of evaluations).
        stall_iters: switch early after this many BO iterations without hypervolume gain (None: never).
    """

    def __init__(
        self,
        bo: BoTorchMOBO | None = None,
        evolution: RegularizedEvolution | None = None,
        switch_at: float = 0.3,
        stall_iters: int | None = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if switch_at <= 0:
            raise ValueError(f"switch_at must be positive, got {switch_at}")
        if stall_iters is not None and stall_iters < 1:
            raise ValueError(f"stall_iters must be >= 1 or None, got {stall_iters}")
        self.bo = bo if bo is not None else BoTorchMOBO()
        self.evolution = evolution if evolution is not None else RegularizedEvolution(mutation=SwarmMutation())
        self.switch_at, self.stall_iters = switch_at, stall_iters

    def _setup(self, problem: Problem, **kwargs) -> None:
        super()._setup(problem, **kwargs)
        if self.switch_at < 1:
            if not isinstance(self.termination, MaximumFunctionCallTermination):
                raise ValueError(
                    "switch_at below 1 is a fraction of the evaluation budget: use an ('n_evals', N) "
                    "termination, or give switch_at as a number of evaluations"
                )
            self._switch_evals = self.switch_at * self.termination.n_max_evals
        else:
            self._switch_evals = self.switch_at
        if self.bo.n_init is None:  # leave at least half of the BO phase to BO iterations
            self.bo.n_init = max(2, min(default_n_init(self.space.n_dims), int(self._switch_evals) // 2))
        self._start(self.bo)
        self.phase: UnitCubeAlgorithm = self.bo
        self._hv_ref: np.ndarray | None = None
        self._hv_trace: list[float] = []

    def _start(self, phase: UnitCubeAlgorithm) -> None:
        phase.setup(self.problem, termination=NoTermination(), evaluator=self.evaluator,
                    seed=int(self.random_state.integers(2**31)))

    def _initialize_infill(self) -> Population:
        return self._infill()

    def _infill(self) -> Population:
        pop = self.phase.ask()
        return pop[: self._budget(len(pop))]

    def _initialize_advance(self, infills: Population | None = None, **kwargs) -> None:
        self._advance(infills)

    def _advance(self, infills: Population | None = None, **kwargs) -> None:
        if len(infills) == 0:
            return  # exhausted space: this run terminates (see UnitCubeAlgorithm.advance)
        self.phase.tell(infills=infills)
        if self.phase is self.bo and (self.evaluator.n_eval >= self._switch_evals or self._stalled()):
            self._start(self.evolution)
            self.evolution.tell(infills=self.evaluated)
            self.phase = self.evolution
        self.pop = self.phase.pop

    def _stalled(self) -> bool:
        """Whether the hypervolume of the evaluations has not grown over ``stall_iters`` BO iterations."""
        if self.stall_iters is None:
            return False
        F = self.bo.scale(self.evaluated.get("F")[self.evaluated.get("FEAS")[:, 0]])  # BO's objective frame
        if len(F) == 0:
            return False
        if self._hv_ref is None:
            self._hv_ref = self.bo.reference_point(F)
        self._hv_trace.append(HV(ref_point=self._hv_ref)(F))
        k = self.stall_iters
        return len(self._hv_trace) > k and self._hv_trace[-1] <= self._hv_trace[-1 - k]
