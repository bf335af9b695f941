"""AudioNASProblem end to end on the built-in data (issue 3)."""

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.mixed import MixedVariableGA
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize

from moo_audio import AudioNASProblem
from moo_audio.costs import network_cost
from moo_audio.data import load_dataset
from moo_audio.jobs import train_job
from moo_audio.objectives import OBJECTIVE_NAMES, objective_matrix
from moo_audio.parallel import DaskRunner
from moo_audio.problem import Constraints
from moo_audio.space import GenomeRepair, GenomeSampling, SearchSpace
from moo_audio.training import TrainBudget

SPACE_OPTIONS = dict(n_mels=(16, 20), win_ms=(25, 32), hop_ms=(16, 20), max_blocks=3,
                     channels=(8, 16), expansions=(1, 2))
BUDGET = TrainBudget(max_epochs=3, batch_size=64)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("builtin", n_per_class=12, seed=0)


def _problem(dataset, tmp_path, **kwargs):
    space = SearchSpace(sample_rate=dataset.sample_rate, n_classes=dataset.n_classes,
                        clip_ms=(dataset.clip_ms,), **SPACE_OPTIONS)
    return AudioNASProblem(dataset, space=space, budget=BUDGET, feature_cache=tmp_path / "cache",
                           seed=0, **kwargs)


def _check_rows(res, n):
    pop = res.pop
    F = pop.get("F")
    assert F.shape[1] == 3 and np.isfinite(F).all()
    assert np.all((F[:, 0] >= 0) & (F[:, 0] <= 1)) and np.all(F[:, 1:] > 0)
    for key in ("macs", "params", "val_accuracy", "epochs", "seconds", "curve", "stop_reason", "genome"):
        values = pop.get(key)
        assert len(values) == len(pop) and all(v is not None for v in values), key
    assert all(len(c) == e for c, e in zip(pop.get("curve"), pop.get("epochs")))


def test_nsga2_16_evaluations_sequential_and_dask_agree(dataset, tmp_path):
    problem = _problem(dataset, tmp_path)
    res = minimize(problem, NSGA2(pop_size=8, sampling=GenomeSampling(), repair=GenomeRepair()),
                   ("n_evals", 16), seed=1)
    _check_rows(res, 16)
    assert len(problem._results) >= 8

    runner = DaskRunner.local(n_workers=2)
    try:
        parallel = _problem(dataset, tmp_path, runner=runner)
        res2 = minimize(parallel, NSGA2(pop_size=8, sampling=GenomeSampling(), repair=GenomeRepair()),
                        ("n_evals", 16), seed=1)
    finally:
        runner.close()
    np.testing.assert_allclose(res2.pop.get("F"), res.pop.get("F"))
    assert list(res2.pop.get("genome")) == list(res.pop.get("genome"))


def test_mixed_variable_ga_runs_unchanged(dataset, tmp_path):
    problem = _problem(dataset, tmp_path)
    res = minimize(problem, MixedVariableGA(pop_size=4, survival=RankAndCrowding()), ("n_evals", 6), seed=2)
    F = res.pop.get("F")
    assert F.shape[1] == 3 and np.isfinite(F).all()
    assert isinstance(res.pop.get("X")[0], dict)


def test_cheap_constraints_skip_training_and_say_why(dataset, tmp_path):
    problem = _problem(dataset, tmp_path, constraints=Constraints(max_memory_kb=1e-3))
    X = problem.space.to_x(problem.space.sample(2, seed=0))
    out = problem.evaluate(X, return_as_dictionary=True)
    assert np.all(out["G"] > 0)
    assert all("not trained: violates max_memory_kb" in r for r in out["failure_reason"])
    assert np.all(out["epochs"] == 0)


def test_min_accuracy_constraint(dataset, tmp_path):
    problem = _problem(dataset, tmp_path, constraints=Constraints(min_accuracy=1.0))
    out = problem.evaluate(problem.space.to_x(problem.space.sample(1, seed=4)), return_as_dictionary=True)
    accuracy = out["val_accuracy"][0]
    assert out["G"][0, 0] == pytest.approx(1 - accuracy)


def test_evaluate_cheap_matches_full_objectives(dataset, tmp_path):
    problem = _problem(dataset, tmp_path)
    X = problem.space.to_x(problem.space.sample(3, seed=5))
    np.testing.assert_allclose(problem.evaluate_cheap(X), problem.evaluate(X)[:, 1:])
    macs = [network_cost(g).macs for g in problem.space.from_x(X)]
    np.testing.assert_allclose(10 ** problem.architecture_features(X)[:, 0], macs)  # what BoTorchMOBO's GP reads
    # the objectives spanning decades, which BoTorchMOBO reads on a log scale
    assert [OBJECTIVE_NAMES[j] for j in problem.log_objectives] == ["energy_mj", "memory_kb"]


def test_objective_matrix_follows_the_objective_list_and_names_missing_columns():
    columns = {name: np.full(2, float(i)) for i, name in reversed(list(enumerate(OBJECTIVE_NAMES)))}
    np.testing.assert_array_equal(objective_matrix(columns), [list(range(len(OBJECTIVE_NAMES)))] * 2)
    np.testing.assert_array_equal(objective_matrix(columns, (2, 1)), [[2, 1]] * 2)
    with pytest.raises(KeyError, match="error"):
        objective_matrix({k: v for k, v in columns.items() if k != "error"})


def test_space_must_match_dataset(dataset):
    with pytest.raises(ValueError, match="does not match dataset"):
        AudioNASProblem(dataset, space=SearchSpace(n_classes=3))
    with pytest.raises(ValueError, match="unknown stopping rule"):
        AudioNASProblem(dataset, stopping=("patience", "psychic"))


def test_training_device_reaches_the_jobs(dataset, tmp_path):
    problem = _problem(dataset, tmp_path, device="cpu")
    job = problem.job(problem.space.sample(1, seed=0)[0])
    assert job.device == "cpu"
    with pytest.raises(RuntimeError, match="device"):
        _problem(dataset, tmp_path, device="gpu-please")


def test_a_job_trains_the_same_in_this_process_and_in_a_dask_worker(dataset, tmp_path):
    """Every job sets its own torch threads (the problem's, default 1), so where it runs does not
    change its numbers: this process runs on torch's default thread count, the worker on Dask's."""
    problem = _problem(dataset, tmp_path)
    assert problem.threads == 1
    genome = problem.space.sample(1, seed=5)[0]
    job = problem.job(genome)
    here = train_job(job, problem.features(genome.frontend)).to_dict()
    runner = DaskRunner.local(n_workers=1)
    try:
        ((_, result, worker),) = runner.run([job], [problem.features(genome.frontend)])
        there = result.to_dict()
    finally:
        runner.close()
    assert worker and worker.split(":")[1] != str(__import__("os").getpid())  # trained in the worker
    for key in ("curve", "train_loss", "val_accuracy", "epochs", "stop_reason"):
        assert here[key] == there[key], key


def test_threads_must_be_a_positive_integer(dataset, tmp_path):
    with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
        _problem(dataset, tmp_path, threads=0)


def test_genome_operators_plug_into_pymoo_algorithms(dataset, tmp_path):
    """moo_audio's operators are plain pymoo operators: NSGA-II runs on the audio problem with them."""
    from pymoo.core.population import Population

    from moo_audio.algorithms import OneGeneMutation, SwarmMutation

    problem = _problem(dataset, tmp_path)
    X = problem.space.to_x(problem.space.sample(6, seed=2))
    moved = OneGeneMutation().do(problem, Population.new("X", X), random_state=np.random.default_rng(0)).get("X")
    assert [int(np.sum(~np.isclose(a, b))) for a, b in zip(X, moved)] == [1] * len(X)  # one gene each

    res = minimize(problem, NSGA2(pop_size=4, sampling=GenomeSampling(), mutation=SwarmMutation(pso_prob=0.5),
                                  repair=GenomeRepair(), eliminate_duplicates=True), ("n_evals", 8), seed=3)
    assert len(problem.evaluated_keys) >= 8 and np.isfinite(res.F).all()


def test_dask_features_outlive_a_worker_and_are_scattered_again_when_lost(dataset, tmp_path):
    """Features go to every worker (a killed one takes no data with it); a job whose features were
    lost altogether (the scheduler cancels it) is submitted again with the features scattered anew."""
    problem = _problem(dataset, tmp_path)
    genome = problem.space.sample(1, seed=5)[0]
    features = problem.features(genome.frontend)
    runner = DaskRunner.local(n_workers=2)
    try:
        client = runner.client
        handle = runner._handle(features)
        assert len(client.who_has(handle)[handle.key]) == 2
        submit, lost = client.submit, []

        def submit_then_lose_the_features(*args, **kwargs):  # the first submission loses its data
            future = submit(*args, **kwargs)
            if not lost:
                lost.append(args[2])
                client.cancel(args[2], force=True)
            return future

        client.submit = submit_then_lose_the_features
        ((_, result, _),) = runner.run([problem.job(genome)], [features])
        client.submit = submit
    finally:
        runner.close()
    assert lost and not result.failed and result.epochs >= 1
    assert runner._scattered[id(features)][1] is not lost[0]
