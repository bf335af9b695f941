"""Tests of moo_audio.objectives' hypervolume curve, plain and judged by other values of the same evaluations."""

import numpy as np
from pymoo.indicators.hv import HV

from moo_audio.objectives import HypervolumeScale, hypervolume_curve

SCALE = HypervolumeScale(lo=(0.0, 0.01, 1.0), ref=(1.0, 10.0, 1000.0))


def random_evaluations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.05, 0.9, n), 10 ** rng.uniform(-1.5, 0.8, n), 10 ** rng.uniform(0.5, 2.8, n)])


def test_curve_is_the_hypervolume_of_every_prefix():
    F = random_evaluations(40)
    feasible = np.arange(40) % 5 != 0
    curve = hypervolume_curve(F, feasible, SCALE)
    indicator = HV(ref_point=np.ones(3))
    for k in (1, 7, 25, 40):
        prefix = SCALE.normalise(F[:k])[feasible[:k]]
        assert np.isclose(curve[k - 1], indicator(prefix) if len(prefix) else 0.0)
    assert np.all(np.diff(curve) >= 0)
    # judged by its own values, the curve is the same
    np.testing.assert_allclose(hypervolume_curve(F, feasible, SCALE, judged=(F, feasible)), curve)


def test_judged_curve_scores_the_front_the_observed_values_show():
    true = np.array([[0.3, 1.0, 100.0], [0.31, 1.0, 100.0]])
    observed = true + [[0.0, 0, 0], [-0.1, 0, 0]]  # the second evaluation was lucky: it hides the first
    feasible = np.ones(2, bool)
    judged = hypervolume_curve(observed, feasible, SCALE, judged=(true, feasible))
    best = hypervolume_curve(true, feasible, SCALE)
    # the reported front is the lucky evaluation alone, scored at its true (worse) error
    assert np.isclose(judged[-1], hypervolume_curve(true[1:], feasible[1:], SCALE)[-1])
    assert judged[-1] < best[-1] < hypervolume_curve(observed, feasible, SCALE)[-1]
    # a front member infeasible under the judged values counts nothing
    assert hypervolume_curve(observed, feasible, SCALE, judged=(true, np.array([True, False])))[-1] == 0.0
