"""Tests of moo_audio.surrogate: loading tables, the fitted error model, and the problem's contract."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from pymoo.optimize import minimize

from moo_audio.algorithms import RegularizedEvolution
from moo_audio.problem import cheap_values, cost_columns
from moo_audio.surrogate import SurrogateAudioNASProblem, load_table


@pytest.fixture(scope="module")
def problem():
    return SurrogateAudioNASProblem("builtin", n_estimators=30)


def test_shipped_tables_load():
    for name in ("builtin", "fsdd"):
        table = load_table(name)
        samples, baselines = table.trained("sample"), table.trained("baseline")
        assert len(samples) >= 200 and len(baselines) == 8
        assert all(len(r["curve"]) == table.meta["budget"]["max_epochs"] for r in samples)
        assert all(table.space.check(g) is None for g in table.genomes(samples[:20]))


def test_bad_tables_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown surrogate table 'nope'"):
        load_table("nope")
    text = tmp_path / "text.json.gz"
    text.write_text("not gzip")
    with pytest.raises(ValueError, match="not a gzip JSON surrogate table"):
        load_table(text)
    partial = tmp_path / "partial.json.gz"
    with gzip.open(partial, "wt") as f:
        json.dump({"meta": {"problem": "x"}, "rows": []}, f)
    with pytest.raises(ValueError, match=r"missing \['space', 'constraints'\]"):
        load_table(partial)


def test_error_model_is_cross_validated(problem):
    report = problem.error_model_report
    assert report.n == len(problem.table.trained()) and report.folds == 5
    assert report.spearman > 0.7 and report.mae < 0.12  # 0.87 / 0.070 with 300 trees


def test_objectives_match_the_real_problem(problem):
    X = np.random.default_rng(0).random((40, problem.n_var))
    out = problem.evaluate(X, return_as_dictionary=True)
    genomes = problem.space.from_x(X)
    columns = cost_columns(cheap_values(genomes, problem.energy_model))
    energy, memory, macs = columns["energy_mj"], columns["memory_kb"], columns["macs"]
    np.testing.assert_allclose(out["F"][:, 1], energy)
    np.testing.assert_allclose(out["F"][:, 2], memory)
    np.testing.assert_allclose(out["F"][:, 1:], problem.evaluate_cheap(X))
    np.testing.assert_allclose(out["G"][:, 0], macs / problem.constraints.max_macs - 1)  # normalised
    too_big = macs > problem.constraints.max_macs
    assert too_big.any() and (~too_big).any()
    assert np.all(out["F"][too_big, 0] == 1.0)  # not trained by the real problem: accuracy 0
    assert np.all((out["F"][~too_big, 0] > 0) & (out["F"][~too_big, 0] < 1))
    # deterministic: the same genome always gets the same error
    np.testing.assert_array_equal(problem.evaluate(X, return_values_of=["F"]), out["F"])


def test_error_follows_the_trained_table(problem):
    rows = problem.table.trained("sample")
    predicted = problem.predict_error(problem.table.genomes(rows))
    trained = 1 - np.array([r["val_accuracy"] for r in rows])
    assert np.corrcoef(predicted, trained)[0, 1] > 0.9  # in-sample fit of the forest


def test_optimizers_run_on_it_in_seconds(problem):
    res = minimize(problem, RegularizedEvolution(pop_size=10), ("n_evals", 40), seed=0)
    assert res.algorithm.evaluator.n_eval == 40 and res.F.shape[1] == 3
    assert np.all(res.CV <= 0)
