"""The reference work's hybrid: Bayesian optimisation first, then evolution with swarm moves."""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.indicators.hv import HV
from pymoo.termination.max_eval import MaximumFunctionCallTermination

from moo_audio.algorithms._base import UnitCubeAlgorithm
from moo_audio.algorithms.botorch_mobo import BoTorchMOBO, default_n_init, inferred_reference_point
from moo_audio.algorithms.evolution import RegularizedEvolution
from moo_audio.algorithms.pso import select_leaders, swarm_step


class SwarmEvolution(RegularizedEvolution):
    """Regularized evolution whose mutation is, with probability ``pso_prob``, a particle-swarm step
    from the parent toward a leader of the non-dominated archive (:func:`select_leaders`), and a
    one-gene mutation otherwise.

    A child has no velocity or personal best of its own, so the step is the social term of
    :func:`swarm_step` alone: ``x + c2 r (leader - x)``, each component clamped to ``v_max``.

    Args:
        pso_prob: probability of a swarm step instead of a one-gene mutation.
        c2: social coefficient of the swarm step.
        v_max: bound on each component of the step, in cube units.
        **kwargs: :class:`RegularizedEvolution` arguments.
    """

    def __init__(self, pso_prob: float = 0.5, c2: float = 1.5, v_max: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= pso_prob <= 1.0:
            raise ValueError(f"pso_prob must be a probability, got {pso_prob}")
        self.pso_prob, self.c2, self.v_max = pso_prob, c2, v_max

    def _mutate(self, U: np.ndarray) -> np.ndarray:
        U = U.copy()
        swarm = self.random_state.random(len(U)) < self.pso_prob
        U[~swarm] = self.space.mutate(U[~swarm], self.random_state)
        if swarm.any():
            leaders = select_leaders(self.opt, int(swarm.sum()), self.random_state).get("U")
            U[swarm], _ = swarm_step(U[swarm], np.zeros_like(U[swarm]), U[swarm], leaders, self.random_state,
                                     w=0.0, c1=0.0, c2=self.c2, v_max=self.v_max)
        return U


class HybridSearch(UnitCubeAlgorithm):
    """Bayesian optimisation, then (from the switch on) evolution with swarm moves.

    Runs ``bo`` until ``switch_at`` evaluations have been spent (a fraction of an ``("n_evals", N)``
    budget when below 1, else an absolute count) or, if ``stall_iters`` is set, until the hypervolume
    of the evaluations has not improved over ``stall_iters`` BO iterations; then ``evolution``
    continues with *everything evaluated so far* as its population (aging from there on). Both
    phases are the ordinary algorithms, driven through ask/tell and sharing this run's evaluator.

    Unless ``bo.n_init`` is set, the initial design is at most half of the BO phase (so that a short
    phase, e.g. 0.3 of 60 evaluations, still has BO iterations). The stall hypervolume uses
    ``bo.ref_point`` or, failing that, a reference point inferred once
    from the feasible evaluations of the initial design (:func:`inferred_reference_point`).

    Args:
        bo: the first phase; default ``BoTorchMOBO()``.
        evolution: the second phase; default ``SwarmEvolution()``.
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
        self.evolution = evolution if evolution is not None else SwarmEvolution()
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
        F = self.evaluated.get("F")[self.evaluated.get("FEAS")[:, 0]]
        if len(F) == 0:
            return False
        if self._hv_ref is None:
            self._hv_ref = np.asarray(self.bo.ref_point if self.bo.ref_point is not None
                                      else inferred_reference_point(F), dtype=float)
        self._hv_trace.append(HV(ref_point=self._hv_ref)(F))
        k = self.stall_iters
        return len(self._hv_trace) > k and self._hv_trace[-1] <= self._hv_trace[-1 - k]
