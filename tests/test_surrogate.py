"""Tests of moo_audio.surrogate: loading tables, the fitted error model, and the problem's contract."""

from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest
from pymoo.optimize import minimize

from moo_audio.algorithms import RegularizedEvolution
from moo_audio.problem import ARCHITECTURE_FEATURES, cheap_values, cost_columns, frontend_genes
from moo_audio.seed_noise import SeedNoise
from moo_audio.space import Block, Genome
from moo_audio.surrogate import (
    STAGE_FIELDS,
    TABLES,
    Agreement,
    CurveBlend,
    CurveBoosting,
    CurveGP,
    PartialTableWarning,
    SurrogateAudioNASProblem,
    SurrogateTable,
    load_table,
    seed_noise_ceiling,
    stage_encoding,
)


@pytest.fixture(scope="module")
def problem():
    return SurrogateAudioNASProblem("builtin", n_estimators=30)


def test_shipped_tables_load():
    for name in TABLES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialTableWarning)
            table = load_table(name)
        samples, baselines = table.trained("sample"), table.trained("baseline")
        assert table.meta["problem"] == name and len(samples) >= 200 and len(baselines) >= 2
        assert all(len(r["curve"]) == table.meta["budget"]["max_epochs"] for r in samples)
        assert all(table.space.check(g) is None for g in table.genomes(samples[:20]))
    assert {f"mobilenet_v{v} x1.0" for v in (1, 2)} <= {r["label"] for r in load_table("builtin").trained("baseline")}
    # the builtin table is a complete build: 1,500 space-filling and 300 front architectures, 300 of them
    # and every baseline trained with 3 seeds
    builtin = load_table("builtin")
    assert builtin.meta["trainings"] == builtin.meta["planned_trainings"]
    assert len(builtin.trained("sample")) == 1500 and len(builtin.trained("front")) == 300
    assert sum(len(r.get("runs", ())) == 3 for r in builtin.trained()) >= 300


def test_a_partial_table_says_so_and_a_complete_one_does_not():
    with pytest.warns(PartialTableWarning, match=r"'fsdd' holds [\d,]+ of its build's 2,433 planned"):
        table = load_table("fsdd")
    assert table.meta["trainings"] < table.meta["planned_trainings"]
    assert not table.complete
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialTableWarning)
        for name in ("builtin", "speech_commands_12"):
            load_table(name)


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
    assert report.spearman > 0.7 and report.mae < 0.12  # 0.945 / 0.044 with the default 300 iterations


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


def test_architecture_features_are_the_networks_costs_and_front_end(problem):
    X = np.random.default_rng(1).random((20, problem.n_var))
    genomes = problem.space.from_x(X)
    features = problem.architecture_features(X)
    assert features.shape == (20, len(ARCHITECTURE_FEATURES))
    columns = cost_columns(cheap_values(genomes, problem.energy_model))
    np.testing.assert_allclose(10 ** features[:, 0], columns["macs"])
    np.testing.assert_allclose(10 ** features[:, 1], columns["params"])
    np.testing.assert_array_equal(features[:, 3:], [frontend_genes(g) for g in genomes])
    assert features[:, -1].tolist() == [len(g.blocks) for g in genomes]


def test_error_follows_the_trained_table(problem):
    rows = problem.table.trained("sample")
    predicted = problem.predict_error(problem.table.genomes(rows))
    trained = 1 - np.array([r["val_accuracy"] for r in rows])
    assert np.corrcoef(predicted, trained)[0, 1] > 0.9  # in-sample fit of the forest


def test_optimizers_run_on_it_in_seconds(problem):
    res = minimize(problem, RegularizedEvolution(pop_size=10), ("n_evals", 40), seed=0)
    assert res.algorithm.evaluator.n_eval == 40 and res.F.shape[1] == 3
    assert np.all(res.CV <= 0)


def test_answers_at_any_fidelity_and_charges_its_training_time(problem):
    X = np.random.default_rng(1).random((30, problem.n_var))
    F1, s1 = problem.evaluate(X, epochs=1, return_values_of=["F", "train_seconds"])
    F5, s5 = problem.evaluate(X, epochs=5, return_values_of=["F", "train_seconds"])
    full, seconds = problem.evaluate(X, return_values_of=["F", "train_seconds"])
    trained = full[:, 0] < 1
    # the best epoch so far is restored: error never grows with epochs (forest leaves average such curves)
    assert np.all(F1[trained, 0] >= F5[trained, 0] - 1e-12) and np.all(F5[trained, 0] >= full[trained, 0] - 1e-12)
    assert F1[trained, 0].mean() > full[trained, 0].mean() + 0.1
    np.testing.assert_allclose(F1[:, 1:], full[:, 1:])  # energy and memory do not depend on training
    np.testing.assert_allclose(s5, 5 * s1)
    np.testing.assert_allclose(seconds, problem.max_epochs * s1)
    assert np.all(seconds[trained] > 0) and np.all(seconds[~trained] == 0)
    for bad in (0, problem.max_epochs + 1, 2.5):
        with pytest.raises(ValueError, match="epochs must be an integer in 1..15"):
            problem.evaluate(X, epochs=bad)


def _single_seed_table() -> SurrogateTable:
    """The shipped builtin table's sample architectures, each with only its first training run."""
    table = load_table("builtin")
    return SurrogateTable(table.meta, tuple({**row, "runs": row["runs"][:1]} for row in table.trained("sample")))


def _repeated_table(noise: float) -> SurrogateTable:
    """A single-seed table with every architecture 'trained' again: its curve plus noise."""
    rng = np.random.default_rng(0)
    rows = []
    for row in _single_seed_table().trained():
        again = np.clip(np.array(row["curve"]) + rng.normal(0, noise, len(row["curve"])), 0, 1)
        runs = [{"seed": 0, "val_accuracy": row["val_accuracy"], "curve": row["curve"], "failed": False},
                {"seed": 1, "val_accuracy": float(again.max()), "curve": again.tolist(), "failed": False}]
        rows.append({**row, "runs": runs})
    return SurrogateTable(load_table("builtin").meta, tuple(rows))


def test_seed_noise_ceiling_measures_run_to_run_agreement():
    assert seed_noise_ceiling(_single_seed_table()) is None  # one seed per architecture
    real = seed_noise_ceiling(load_table("builtin"))  # 310 architectures with 3 seeds
    assert real.n == 310 and 0.8 < real.spearman < 1 and 0 < real.mae < 0.1
    exact = seed_noise_ceiling(_repeated_table(0.0))
    assert exact.spearman == pytest.approx(1.0) and exact.mae == pytest.approx(0.0)
    noisy = seed_noise_ceiling(_repeated_table(0.05))
    assert 0.5 < noisy.spearman < 0.99 and noisy.top_spearman < noisy.spearman
    assert 0.02 < noisy.mae < 0.08
    # the surrogate fits the seed mean of the error curves
    problem = SurrogateAudioNASProblem(_repeated_table(0.05), n_estimators=10)
    assert problem.error_model_report.n == len(problem.table.rows)


def test_agreement_of_known_values():
    target = np.arange(20.0)
    same = Agreement.of(target, target)
    np.testing.assert_allclose([same.spearman, same.kendall, same.r2, same.mae, same.top_spearman], [1, 1, 1, 0, 1])
    reversed_ = Agreement.of(-target, target)
    assert reversed_.spearman == pytest.approx(-1) and reversed_.top_kendall == pytest.approx(-1)
    assert reversed_.n == 20 and reversed_.mae == 19 and reversed_.top_mae == 4  # best quarter: targets 0..4


def test_error_models_are_named():
    with pytest.raises(ValueError, match="unknown error_model 'svm'"):
        SurrogateAudioNASProblem("builtin", error_model="svm")


def test_stage_encoding_is_positional_in_the_space_and_summarises_deeper_networks():
    table = load_table("builtin")
    stages = table.space.max_blocks
    samples, (mobilenet,) = table.genomes(table.trained("sample")[:20]), table.genomes(
        [r for r in table.trained("baseline") if r["label"] == "mobilenet_v2 x1.0"])
    front_end_genes = 6
    for genome in samples:
        values = stage_encoding(genome, stages)
        assert len(values) == front_end_genes + stages * len(STAGE_FIELDS)
        per_stage = np.reshape(values[front_end_genes:], (stages, len(STAGE_FIELDS)))
        assert list(per_stage[:, 0]) == [1.0] * len(genome.blocks) + [0.0] * (stages - len(genome.blocks))
        np.testing.assert_allclose(per_stage[:len(genome.blocks), 1], [np.log2(b.channels) for b in genome.blocks])
    deep = np.reshape(stage_encoding(mobilenet, stages)[front_end_genes:], (stages, len(STAGE_FIELDS)))
    assert deep[:, 0].sum() == len(mobilenet.blocks) > stages and np.all(deep[:, 0] >= 1)
    one_block = Genome(mobilenet.frontend, (Block("conv", 8, kernel=(4, 10), stride=(2, 1)),), mobilenet.n_classes)
    assert stage_encoding(one_block, stages)[front_end_genes + 2:front_end_genes + 4] == [10, 2]  # longer side


def falling_curves(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and 8-epoch error curves that fall at a rate set by the second input."""
    X = np.random.default_rng(0).random((n, 3))
    epochs = np.arange(1, 9)
    return X, 0.05 + 0.5 * X[:, :1] + 0.4 * np.exp(-epochs / (1 + 4 * X[:, 1:2]))


@pytest.mark.parametrize("make", [lambda: CurveBoosting(max_iter=100, random_state=0),
                                  lambda: CurveGP(random_state=0)], ids=["boosting", "gp"])
def test_curve_models_predict_non_increasing_curves_in_their_basis(make):
    X, Y = falling_curves()
    predicted = make().fit(X[:80], Y[:80]).predict(X[80:])
    assert predicted.shape == (40, 8) and np.all(np.diff(predicted, axis=1) <= 0)
    assert np.corrcoef(predicted[:, -1], Y[80:, -1])[0, 1] > 0.95
    assert np.corrcoef(predicted[:, 0], Y[80:, 0])[0, 1] > 0.9
    assert make().fit(X, Y[:, -1]).predict(X).shape == (120,)  # one output: a vector, as scikit-learn's


def test_curve_gp_refuses_sample_weight():
    X, Y = falling_curves()
    with pytest.raises(ValueError, match="CurveGP weighs every curve alike"):
        CurveGP().fit(X, Y, sample_weight=np.ones(len(X)))


def test_curve_blend_is_the_geometric_mean_of_its_models():
    X, Y = falling_curves()
    members = [CurveBoosting(max_iter=30, random_state=0), CurveGP(random_state=0)]
    blend = CurveBlend(members).fit(X[:80], Y[:80])
    alone = [m.fit(X[:80], Y[:80]).predict(X[80:]) for m in members]
    np.testing.assert_allclose(blend.predict(X[80:]), np.sqrt(alone[0] * alone[1]), rtol=1e-9)
    assert np.all(np.diff(blend.predict(X[80:]), axis=1) <= 0)
    with pytest.raises(ValueError, match="at least one estimator"):
        CurveBlend([]).fit(X, Y)


def test_curve_boosting_weighs_curves_by_sample_weight():
    rng = np.random.default_rng(0)
    X = np.repeat(rng.random((100, 2)), 2, axis=0)  # each architecture twice: two runs, two curves
    low = 0.1 + 0.3 * X[::2, :1] * np.linspace(1.0, 0.5, 6)
    Y = np.empty((200, 6))
    Y[::2], Y[1::2] = low, 1.5 * low
    heavy_high = np.tile([1.0, 9.0], 100)

    def final(weight):
        return CurveBoosting(max_iter=50, random_state=0).fit(X, Y, sample_weight=weight).predict(X[::2])[:, -1]

    unweighted, weighted = final(None), final(heavy_high)
    # the heavier run of each pair pulls the prediction towards its curve
    assert np.all(weighted > unweighted) and np.mean(weighted / low[:, -1]) > 1.35 > np.mean(unweighted / low[:, -1])


def test_seed_noise_samples_deviations_of_runs_of_about_the_same_error():
    quiet = [np.array([[0.09, 0.09], [0.11, 0.11]])] * 4      # 4 architectures near error 0.1, runs +-0.01
    loud = [np.array([[0.4, 0.4], [0.6, 0.6]])] * 4          # 4 near 0.5, runs +-0.1
    noise = SeedNoise.from_runs(quiet + loud, neighbours=4)
    rng = np.random.default_rng(0)
    good, bad = noise.sample(np.full((200, 2), 0.12), rng), noise.sample(np.full((200, 2), 0.45), rng)
    scale = np.sqrt(2)  # one run's distance to a 2-run mean is 1/sqrt(2) of a run's spread
    np.testing.assert_allclose(np.unique(np.round(good[:, 1] - 0.12, 9)), np.array([-0.01, 0.01]) * scale)
    np.testing.assert_allclose(np.unique(np.round(bad[:, 1] - 0.45, 9)), np.array([-0.1, 0.1]) * scale)
    assert np.all(np.diff(noise.sample(np.array([[0.5, 0.3]]), rng), axis=1) <= 0)  # best epoch kept
    np.testing.assert_array_equal(noise.sample(np.full((5, 2), 0.3), np.random.default_rng(3)),
                                  noise.sample(np.full((5, 2), 0.3), np.random.default_rng(3)))
    with pytest.raises(ValueError, match="at least 8 architectures trained with several seeds, got 7"):
        SeedNoise.from_runs(quiet + loud[:3])
    with pytest.raises(ValueError, match="seeds >= 2"):
        SeedNoise.from_runs(quiet + loud[:3] + [np.array([[0.5, 0.5]])])
    with pytest.raises(ValueError, match=r"curves must be \(n, 2\)"):
        noise.sample(np.zeros((3, 4)), rng)


def test_seed_noise_mode_answers_as_one_training_run_does():
    with pytest.raises(ValueError, match="'builtin' has 0"):
        SurrogateAudioNASProblem(_single_seed_table(), n_estimators=10, folds=0, seed_noise=True)
    noisy = SurrogateAudioNASProblem("builtin", n_estimators=30, folds=0, seed_noise=True, noise_seed=1)
    rows = noisy.table.trained("front")  # the 300 architectures trained with 3 seeds
    X = noisy.space.to_x(noisy.table.genomes(rows))
    first, second = (noisy.evaluate(X, return_values_of=["F"])[:, 0] for _ in range(2))
    mean = noisy.predict_error(noisy.table.genomes(rows))
    again = SurrogateAudioNASProblem("builtin", n_estimators=30, folds=0, seed_noise=True, noise_seed=1)
    np.testing.assert_array_equal(again.evaluate(X, return_values_of=["F"])[:, 0], first)  # reproducible from its seed
    assert np.mean(first != second) > 0.9
    # as far from the mean as a real run is from its architecture's mean
    runs = np.array([[1 - run["val_accuracy"] for run in r["runs"][:3]] for r in rows])
    real_spread = np.sqrt(np.mean(runs.var(axis=1, ddof=1)))
    assert 0.7 < np.sqrt(np.mean((first - mean) ** 2)) / real_spread < 1.4
    # two draws agree about as well as two seeds do (the seed-noise ceiling)
    ceiling = seed_noise_ceiling(noisy.table)
    draws = Agreement.of(first, second)
    assert abs(draws.spearman - ceiling.spearman) < 0.05 and abs(draws.mae - ceiling.mae) < 0.005
