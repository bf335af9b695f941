"""Tests of moo_audio.algorithms.multi_fidelity: the rungs, promotion, what the proposer sees, and
the training time successive halving saves on the surrogate benchmark."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from pymoo.problems.multi.zdt import ZDT1

from moo_audio.algorithms import RandomSearch, RegularizedEvolution, SuccessiveHalvingSearch
from moo_audio.algorithms.multi_fidelity import rung_epochs

pytestmark = pytest.mark.filterwarnings("ignore")


class CurvedZDT1(Problem):
    """ZDT1 whose first objective is learnt over epochs: ``f1 + 1 / epochs`` (the whole budget's value
    at ``max_epochs``), charged ``epochs * (1 + x0)`` training seconds; records the epochs of each call."""

    max_epochs = 9

    def __init__(self):
        super().__init__(n_var=4, n_obj=2, xl=0.0, xu=1.0, requires_kwargs=True)
        self.zdt, self.calls = ZDT1(n_var=4), []

    def _evaluate(self, X, out, *args, epochs=None, **kwargs):
        epochs = self.max_epochs if epochs is None else epochs
        self.calls.append((epochs, len(X)))
        F = self.zdt.evaluate(X)
        F[:, 0] += 1.0 / epochs - 1.0 / self.max_epochs
        out["F"], out["train_seconds"] = F, epochs * (1 + X[:, 0])


def test_rungs_grow_by_eta_up_to_the_whole_budget():
    assert rung_epochs(2, 3, 15) == (2, 6, 15)
    assert rung_epochs(1, 3, 15) == (1, 3, 9, 15)
    assert rung_epochs(15, 3, 15) == (15,)
    with pytest.raises(ValueError, match="min_epochs <= max_epochs"):
        rung_epochs(16, 3, 15)


def run(tell_promotions: bool = True):
    problem = CurvedZDT1()
    res = minimize(problem, SuccessiveHalvingSearch(RandomSearch(batch_size=6), min_epochs=1, eta=3,
                                                    tell_promotions=tell_promotions), ("n_evals", 90), seed=0)
    return problem, res.algorithm, res


def test_promotes_the_best_of_each_rung_to_a_longer_training():
    problem, algorithm, res = run()
    ev = algorithm.evaluated
    epochs = ev.get("epochs").astype(int)
    rung = np.searchsorted(algorithm.rungs, epochs)
    assert algorithm.rungs == (1, 3, 9) and len(ev) == 90
    # every batch was evaluated at its individuals' epochs, one rung per batch
    assert sum(n for _, n in problem.calls) == 90 and {e for e, _ in problem.calls} == {1, 3, 9}
    assert set(epochs) == set(algorithm.rungs)
    counts = np.bincount(rung)
    assert counts[0] > counts[1] > counts[2] > 0
    # a promoted candidate was trained at the rung below
    for r in (1, 2):
        below = {x.tobytes(): i for i, x in enumerate(ev.get("X")[rung == r - 1])}
        assert all(x.tobytes() in below for x in ev.get("X")[rung == r])
    # the result holds whole-budget evaluations only: the problem's own objectives
    whole = ev[rung == 2]
    assert len(res.F) and all(any(np.allclose(f, g) for g in whole.get("F")) for f in res.F)


@pytest.mark.parametrize("tell", [True, False])
def test_the_proposer_holds_each_candidates_latest_or_first_result(tell):
    _, algorithm, _ = run(tell_promotions=tell)
    ev, told = algorithm.evaluated, algorithm.proposer.evaluated
    assert len(told) == np.sum(ev.get("epochs") == algorithm.rungs[0])  # told once per candidate
    latest = {x.tobytes(): f for x, f in zip(ev.get("X"), ev.get("F"))}  # later rungs overwrite
    first = {x.tobytes(): f for x, f in zip(ev.get("X")[::-1], ev.get("F")[::-1])}
    expected = latest if tell else first
    for x, f in zip(told.get("X"), told.get("F")):
        np.testing.assert_allclose(f, expected[x.tobytes()])
    updated = [not np.allclose(f, first[x.tobytes()]) for x, f in zip(told.get("X"), told.get("F"))]
    assert any(updated) == tell


def test_needs_a_problem_with_a_fidelity():
    with pytest.raises(ValueError, match=r"evaluate\(X, epochs=e\).*ZDT1 has no such fidelity"):
        minimize(ZDT1(), SuccessiveHalvingSearch(), ("n_evals", 10), seed=0)
    for bad, match in (({"eta": 1}, "eta must be >= 2"), ({"min_epochs": 0}, "min_epochs must be >= 1"),
                       ({"batch_size": 0}, "batch_size must be >= 1")):
        with pytest.raises(ValueError, match=match):
            SuccessiveHalvingSearch(RegularizedEvolution(), **bad)
