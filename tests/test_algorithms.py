"""Tests of moo_audio.algorithms: the unit-cube view, pymoo integration, robustness, and hypervolume
against random search and NSGA-II (margins measured on the 2-core dev machine, see docs/algorithms.md)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from pymoo.core.callback import Callback
from pymoo.core.problem import ElementwiseProblem, Problem
from pymoo.core.repair import Repair
from pymoo.core.variable import Binary, Choice, Integer, Real
from pymoo.optimize import minimize
from pymoo.problems import get_problem
from pymoo.problems.multi.zdt import ZDT1

from moo_audio.algorithms import (
    ACQUISITIONS,
    MOPSO,
    BoTorchMOBO,
    HybridSearch,
    RandomSearch,
    RegularizedEvolution,
    SwarmMutation,
)
from moo_audio.algorithms._space import UnitCube, row_keys

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """BoTorch's small tensors gain nothing from a second intra-op thread, and on a busy 2-core
    machine the threads' spin-waiting made BO steps several times slower (docs/algorithms.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------- problems


class MixedProblem(ElementwiseProblem):
    """Two objectives over Real + Integer + Choice (5 options: a categorical dimension) + Binary."""

    SHIFT: ClassVar[dict[str, float]] = {"a": 0.0, "b": 0.4, "c": 0.8, "d": 1.2, "e": 1.6}

    def __init__(self):
        variables = {
            "x": Real(bounds=(-2.0, 2.0)),
            "n": Integer(bounds=(0, 6)),
            "kind": Choice(options=list(self.SHIFT)),
            "flag": Binary(),
        }
        super().__init__(vars=variables, n_obj=2)

    def _evaluate(self, X, out, *args, **kwargs):
        shift = self.SHIFT[X["kind"]]
        out["F"] = [
            (X["x"] - 1) ** 2 + 0.1 * X["n"] + shift,
            (X["x"] + 1) ** 2 + 0.1 * (6 - X["n"]) + (0.0 if X["flag"] else 0.3) + shift,
        ]


class FlakyProblem(Problem):
    """ZDT1-like with failures: NaN objectives where x0 > 0.8, a violated constraint where x1 > 0.7."""

    def __init__(self):
        super().__init__(n_var=4, n_obj=2, n_ieq_constr=1, xl=0.0, xu=1.0)

    def _evaluate(self, X, out, *args, **kwargs):
        g = 1 + 9 * X[:, 1:].mean(axis=1)
        F = np.column_stack([X[:, 0], g * (1 - np.sqrt(X[:, 0] / g))])
        F[X[:, 0] > 0.8] = np.nan
        out["F"], out["G"] = F, X[:, 1:2] - 0.7


class GridRepair(Repair):
    """Snaps every coordinate to a multiple of 0.5."""

    def _do(self, problem, X, **kwargs):
        return np.round(np.asarray(X, dtype=float) * 2) / 2


class GridProblem(Problem):
    """Numeric box with a repair (like the audio NAS problem): only 3**3 distinct designs."""

    def __init__(self):
        super().__init__(n_var=3, n_obj=2, xl=0.0, xu=1.0)
        self.repair = GridRepair()

    def _evaluate(self, X, out, *args, **kwargs):
        out["F"] = np.column_stack([X.sum(axis=1), (1 - X).sum(axis=1) + X[:, 0] * X[:, 1]])


class TinyIntegerProblem(Problem):
    """Integer box with 9 designs, to check that exhausting the space ends a run cleanly."""

    def __init__(self):
        super().__init__(n_var=2, n_obj=2, xl=0, xu=2, vtype=int)

    def _evaluate(self, X, out, *args, **kwargs):
        out["F"] = np.column_stack([X[:, 0] + X[:, 1] ** 2, (2 - X[:, 0]) ** 2 + (2 - X[:, 1])]).astype(float)


class CheapFlakyProblem(FlakyProblem):
    """FlakyProblem whose first objective (f1 = x0, NaN where x0 > 0.8) is declared cheap."""

    cheap_objectives = (0,)

    def evaluate_cheap(self, X):
        X = np.asarray(X, dtype=float)
        return np.where(X[:, :1] > 0.8, np.nan, X[:, :1])


class CheapZDT1(ZDT1):
    """ZDT1 whose first objective (f1 = x1) is declared cheap and exactly known."""

    cheap_objectives = (0,)

    def evaluate_cheap(self, X):
        return np.asarray(X, dtype=float)[:, :1]


def small_bo(**kwargs) -> BoTorchMOBO:
    return BoTorchMOBO(**{"n_init": 6, "q": 2, "num_restarts": 2, "raw_samples": 32, **kwargs})


def all_algorithms():
    """One small configuration of every algorithm (ids for parametrize)."""
    return [
        pytest.param(lambda: RandomSearch(batch_size=4), id="random"),
        pytest.param(lambda: RegularizedEvolution(pop_size=6, sample_size=3, n_offsprings=2), id="evolution"),
        pytest.param(lambda: MOPSO(pop_size=6), id="pso"),
        pytest.param(small_bo, id="botorch"),
        pytest.param(lambda: HybridSearch(
            bo=small_bo(), evolution=RegularizedEvolution(pop_size=6, sample_size=3, mutation=SwarmMutation()),
            switch_at=8, stall_iters=None), id="hybrid"),
    ]


# ----------------------------------------------------------------------------------------- numeric view


def test_numeric_view_maps_box_and_rounds_integers():
    space = UnitCube(Problem(n_var=2, n_obj=2, xl=np.array([-1.0, 0]), xu=np.array([1.0, 4]), vtype=int))
    X = space.decode(np.array([[0.0, 0.5], [1.0, 0.62]]))
    assert X.tolist() == [[-1, 2], [1, 2]]
    assert sorted(space.ordinal) == [0, 1] and not space.categorical
    np.testing.assert_allclose(space.encode(X), [[0.0, 0.5], [1.0, 0.5]])


def test_mixed_view_uses_the_encoder_and_classifies_dimensions():
    space = UnitCube(MixedProblem())
    assert space.encoder is not None and space.n_dims == 4
    assert sorted(space.ordinal) == [1, 3] and sorted(space.categorical) == [2]
    X = space.decode(np.array([[0.5, 0.99, 0.0, 0.7]]))
    assert X.dtype == object and X[0] == {"x": 0.0, "n": 6, "kind": "a", "flag": True}
    # bounds of discrete dimensions are their extreme canonical values (cell centres)
    np.testing.assert_allclose(space.bounds[:, 2], [0.1, 0.9])


def test_view_prefers_numeric_bounds_and_applies_repair():
    problem = GridProblem()
    problem.vars = {f"x{i}": Real(bounds=(0.0, 1.0)) for i in range(3)}  # like the NAS problem: both
    space = UnitCube(problem)
    assert space.encoder is None and space.repair is problem.repair
    X, U = space.canonical(np.array([[0.1, 0.4, 0.9]]))
    np.testing.assert_allclose(X, [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(U, X)


def test_mutate_changes_one_gene_and_moves_discrete_values():
    space = UnitCube(MixedProblem())
    rng = np.random.default_rng(0)
    _, U = space.canonical(space.sample(200, rng))
    M = space.mutate(U, rng)
    changed = ~np.isclose(M, U)
    assert np.all(changed.sum(axis=1) == 1)  # exactly one gene, and a discrete gene always moves
    for j, values in space.discrete.items():
        assert np.all(np.isin(M[changed[:, j], j], values))  # to another canonical value
    assert changed[:, list(space.discrete)].any(axis=1).sum() > 100  # 3 of the 4 genes are discrete


def test_view_rejects_problem_without_bounds_or_vars():
    with pytest.raises(TypeError, match="neither numeric xl/xu"):
        UnitCube(Problem(n_var=2, n_obj=2))


# ------------------------------------------------------------------------------------ pymoo integration


@pytest.mark.parametrize("make", all_algorithms())
def test_mixed_variables(make):
    res = minimize(MixedProblem(), make(), ("n_evals", 10), seed=3)
    evaluated = res.algorithm.evaluated
    assert res.algorithm.evaluator.n_eval == len(evaluated) == 10
    problem = MixedProblem()
    for x in evaluated.get("X"):
        assert set(x) == set(problem.vars)
        assert -2 <= x["x"] <= 2 and x["n"] in range(7)
        assert x["kind"] in problem.SHIFT and x["flag"] in (True, False)
    assert len(set(row_keys(evaluated.get("U")))) == 10
    assert res.F.shape[1] == 2 and np.all(np.isfinite(res.F))


@pytest.mark.parametrize("make", all_algorithms())
def test_nan_and_infeasible_evaluations_never_crash(make):
    res = minimize(FlakyProblem(), make(), ("n_evals", 16), seed=0)
    evaluated = res.algorithm.evaluated
    F, CV = evaluated.get("F"), evaluated.get("CV")[:, 0]
    failed = ~np.all(np.isfinite(F), axis=1)
    assert res.algorithm.evaluator.n_eval == 16
    assert failed.any() and (CV[~failed] > 0).any()  # the run did meet both kinds of trouble
    assert np.all(np.isinf(CV[failed]))
    assert np.all(np.isfinite(res.F)) and np.all(res.CV == 0)


@pytest.mark.parametrize("problem", [FlakyProblem, CheapFlakyProblem], ids=["modelled", "exact-cheap"])
@pytest.mark.parametrize("acquisition", ACQUISITIONS)
def test_every_acquisition_handles_failures(acquisition, problem):
    # with constraints, and with or without exact cheap objectives (which need X in the objective)
    res = minimize(problem(), small_bo(acquisition=acquisition), ("n_evals", 10), seed=1)
    assert res.algorithm.evaluator.n_eval == 10 and np.all(np.isfinite(res.F))
    assert res.algorithm.cheap == getattr(problem, "cheap_objectives", ())


@pytest.mark.parametrize("make", all_algorithms())
def test_minimize_with_callback_and_history(make):
    seen = []

    class Record(Callback):
        def notify(self, algorithm):
            seen.append(algorithm.evaluator.n_eval)

    res = minimize(get_problem("zdt1", n_var=4), make(), ("n_evals", 10), seed=2, callback=Record(),
                   save_history=True)
    assert seen[-1] == 10 and seen == sorted(seen)
    assert len(res.history) == len(seen)
    assert res.history[-1].evaluator.n_eval == 10


@pytest.mark.parametrize("make", all_algorithms())
def test_ask_tell(make):
    problem = get_problem("zdt1", n_var=4)
    algorithm = make()
    algorithm.setup(problem, termination=("n_evals", 10), seed=4)
    while algorithm.has_next():
        pop = algorithm.ask()
        algorithm.evaluator.eval(problem, pop)
        algorithm.tell(infills=pop)
    res = algorithm.result()
    assert algorithm.evaluator.n_eval == 10 and res.F.shape[1] == 2


@pytest.mark.parametrize("make", all_algorithms())
def test_deterministic_under_seed(make):
    runs = [minimize(get_problem("zdt1", n_var=4), make(), ("n_evals", 10), seed=7) for _ in range(2)]
    np.testing.assert_array_equal(*(r.algorithm.evaluated.get("X") for r in runs))


@pytest.mark.parametrize("make", all_algorithms())
def test_repair_applied_and_no_duplicates(make):
    res = minimize(GridProblem(), make(), ("n_evals", 16), seed=5)
    X = res.algorithm.evaluated.get("X")
    np.testing.assert_allclose(X * 2, np.round(X * 2))
    assert len({tuple(x) for x in X}) == 16


@pytest.mark.parametrize("make", all_algorithms())
def test_exhausted_space_ends_the_run(make):
    res = minimize(TinyIntegerProblem(), make(), ("n_evals", 20), seed=0)
    X = res.algorithm.evaluated.get("X")
    # the run stops when a whole batch finds no new design; a last design or two may stay unfound
    assert len({tuple(x) for x in X}) == len(X) and 7 <= len(X) <= 9


@pytest.mark.parametrize("problem", [MixedProblem, FlakyProblem], ids=["mixed", "flaky"])
def test_continuous_acquisition_optimizer(problem):
    # L-BFGS on the cube (FlakyProblem), alternating with discrete local search (MixedProblem)
    res = minimize(problem(), small_bo(acqf_optimizer="continuous"), ("n_evals", 8), seed=2)
    assert res.algorithm.evaluator.n_eval == len(res.algorithm.evaluated) == 8


def test_hybrid_switches_at_budget_fraction_and_seeds_evolution_with_everything():
    bo = BoTorchMOBO(q=2, num_restarts=2, raw_samples=32)
    res = minimize(get_problem("zdt1", n_var=4), HybridSearch(bo=bo, stall_iters=None, switch_at=0.5),
                   ("n_evals", 20), seed=0)
    hybrid = res.algorithm
    assert hybrid.phase is hybrid.evolution
    assert hybrid.bo.n_init == 5  # half of the 10-evaluation BO phase
    assert len(hybrid.bo.evaluated) == 11  # 5 initial + 3 batches of 2: the first count >= 10
    assert len(hybrid.evolution.evaluated) == 20  # evolution was told everything evaluated
    assert len(hybrid.evolution.pop) == 11  # its population: the BO evaluations, aging since


def test_hybrid_fraction_needs_an_evaluation_budget():
    with pytest.raises(ValueError, match="n_evals"):
        minimize(get_problem("zdt1", n_var=4), HybridSearch(switch_at=0.3), ("n_gen", 3))


def test_bo_rejects_bad_configuration():
    with pytest.raises(ValueError, match="unknown acquisition"):
        BoTorchMOBO(acquisition="EI")
    with pytest.raises(ValueError, match="no gradients"):
        minimize(CheapZDT1(n_var=4), BoTorchMOBO(acqf_optimizer="continuous"), ("n_evals", 4))
    with pytest.raises(ValueError, match="at least two objectives"):
        minimize(get_problem("sphere"), BoTorchMOBO(), ("n_evals", 4))


def test_prescreen_keeps_the_best_single_point_candidates(monkeypatch):
    import moo_audio.algorithms.botorch_mobo as botorch_mobo

    screens = []
    candidate_set, optimize = BoTorchMOBO._candidate_set, botorch_mobo.optimize_acqf_discrete

    def record_candidates(self, *args):
        screens.append({"all": candidate_set(self, *args)})
        return screens[-1]["all"]

    def record_kept(acqf, q, choices):
        with torch.no_grad():
            screens[-1]["values"] = acqf(screens[-1]["all"].unsqueeze(-2))
            screens[-1]["kept"] = acqf(choices.unsqueeze(-2))
        return optimize(acqf, q=q, choices=choices)

    monkeypatch.setattr(BoTorchMOBO, "_candidate_set", record_candidates)
    monkeypatch.setattr(botorch_mobo, "optimize_acqf_discrete", record_kept)
    minimize(get_problem("zdt1", n_var=4), small_bo(n_candidates=128, prescreen=8), ("n_evals", 10), seed=0)
    assert len(screens) == 2
    for screen in screens:
        assert len(screen["kept"]) == 8 < len(screen["all"])
        torch.testing.assert_close(screen["kept"].sort(descending=True).values, screen["values"].topk(8).values)
    with pytest.raises(ValueError, match="prescreen must be at least q = 2"):
        small_bo(prescreen=1)


def test_warm_started_fit_starts_from_the_previous_hyperparameters():
    bo = minimize(get_problem("zdt1", n_var=4), small_bo(), ("n_evals", 10), seed=0).algorithm
    U, _, _ = bo._training_data()
    initial = {n: p.detach().clone() for n, p in bo._gp(U, torch.ones(len(U), 1, dtype=U.dtype)).named_parameters()}
    bo.fit_surrogate()  # a full fit on all 10 evaluations
    fitted = {k: {n: p.clone() for n, p in h.items()} for k, h in bo._hyperparameters.items()}
    assert set(fitted) == {0, 1}
    assert any(not torch.allclose(fitted[0][n], initial[n], atol=0.05) for n in initial)
    bo.warm_start_maxiter = 1
    bo.fit_surrogate()  # one iteration from the full fit: it stays there
    for k, hyper in bo._hyperparameters.items():
        for name, value in hyper.items():
            torch.testing.assert_close(value, fitted[k][name], rtol=0.02, atol=0.02)


# ------------------------------------------------------------------------------------- cheap objectives


def test_cheap_objectives_are_exact_and_not_modelled():
    problem = CheapZDT1(n_var=4)
    exact = minimize(problem, small_bo(n_candidates=256), ("n_evals", 10), seed=0).algorithm
    modelled = minimize(problem, small_bo(exact_cheap_objectives=False), ("n_evals", 10), seed=0).algorithm
    assert exact.cheap == (0,)
    assert exact.fit_surrogate().num_outputs == 1 and modelled.fit_surrogate().num_outputs == 2
    # the acquisition's objectives: GP samples for f2, the exact f1 of each candidate for f1
    from moo_audio.algorithms.botorch_mobo import CheapObjectives

    cheap = CheapObjectives(problem, exact.space, exact.cheap)
    X = torch.rand(5, 1, 4, dtype=torch.float64)
    samples = torch.randn(3, 5, 1, 1, dtype=torch.float64)
    Z = exact._multi_objective(cheap)(samples, X)
    assert Z.shape == (3, 5, 1, 2)
    torch.testing.assert_close(Z[..., 0], -X[..., 0].expand(3, 5, 1))
    torch.testing.assert_close(Z[..., 1], samples[..., 0])


class DecadesZDT1(CheapZDT1):
    """ZDT1 on three decades (``10 ** (3 f)``), both objectives declared log-scaled, the first cheap."""

    log_objectives = (0, 1)

    def _evaluate(self, X, out, *args, **kwargs):
        super()._evaluate(X, out, *args, **kwargs)
        out["F"] = 10.0 ** (3 * out["F"])

    def evaluate_cheap(self, X):
        return 10.0 ** (3 * super().evaluate_cheap(X))


def test_log_objectives_are_modelled_and_read_on_a_log_scale():
    problem = DecadesZDT1(n_var=4)
    modelled = minimize(problem, small_bo(exact_cheap_objectives=False), ("n_evals", 8), seed=0).algorithm
    assert modelled.scale.log_indices == (0, 1)
    _, Y, _ = modelled._training_data()
    np.testing.assert_allclose(Y.numpy(), -np.log(modelled.evaluated.get("F")))
    linear = minimize(problem, small_bo(exact_cheap_objectives=False, log_objectives=()), ("n_evals", 8),
                      seed=0).algorithm
    np.testing.assert_allclose(linear._training_data()[1].numpy(), -linear.evaluated.get("F"))
    # the exact cheap objective enters the acquisition on the same scale as the observations
    from moo_audio.algorithms.botorch_mobo import CheapObjectives

    U = np.random.default_rng(0).random((5, 4))
    cheap = CheapObjectives(problem, modelled.space, (0,), modelled.scale)
    np.testing.assert_allclose(cheap.compute(U), -np.log(problem.evaluate_cheap(modelled.space.canonical(U)[0])))
    # a given reference point is in the problem's frame and converted like the observations
    given = minimize(problem, small_bo(ref_point=np.array([1e3, 1e3])), ("n_evals", 8), seed=0).algorithm
    np.testing.assert_allclose(given.reference_point(np.zeros((1, 2))), np.log([1e3, 1e3]))


class ShiftedZDT1(ZDT1):
    def _evaluate(self, X, out, *args, **kwargs):
        super()._evaluate(X, out, *args, **kwargs)
        out["F"] = out["F"] - 0.5


def test_log_objectives_errors():
    from moo_audio.algorithms.botorch_mobo import ObjectiveScale

    with pytest.raises(ValueError, match="objective 1 is on a log scale .* value <= 0: -2"):
        ObjectiveScale((1,))(np.array([[0.5, 3.0], [0.0, -2.0]]))
    np.testing.assert_array_equal(ObjectiveScale((1,))(np.array([[0.0, np.nan]])), [[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"log_objectives \(2,\) must be objective indices < 2"):
        minimize(get_problem("zdt1", n_var=4), small_bo(log_objectives=(2,)), ("n_evals", 4))
    with pytest.raises(ValueError, match="objective 0 is on a log scale"):  # f1 = x1 - 0.5 < 0 in half the box
        minimize(ShiftedZDT1(n_var=4), small_bo(log_objectives=(0,)), ("n_evals", 10), seed=0)


# ------------------------------------------------------------------------------------------- GP inputs


class FeatureZDT1(ZDT1):
    """ZDT1 with exact features: x1 and the mean of the other variables, of which f2 is a function."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.feature_rows = 0

    def architecture_features(self, X):
        X = np.asarray(X, dtype=float)
        self.feature_rows += len(X)
        return np.column_stack([X[:, 0], X[:, 1:].mean(axis=1)])


class MixedFeatureProblem(MixedProblem):
    def architecture_features(self, X):
        return np.array([[x["x"], x["n"]] for x in X], dtype=float)


@pytest.mark.parametrize(("gp_inputs", "width"), [("features", 2), ("encoding+features", 8), ("additive", 8),
                                                   ("encoding", 6)])
def test_gp_reads_what_gp_inputs_names(gp_inputs, width):
    problem = FeatureZDT1(n_var=6)
    bo = minimize(problem, small_bo(gp_inputs=gp_inputs, n_candidates=128), ("n_evals", 10), seed=0).algorithm
    assert bo.fit_surrogate().models[0].train_inputs[0].shape[-1] == width
    if width != 6:  # every distinct point's features were computed once
        assert problem.feature_rows == len(bo.features._values) > 10


def test_additive_kernel_has_one_part_on_the_encoding_and_one_on_the_features():
    bo = minimize(FeatureZDT1(n_var=6), small_bo(gp_inputs="additive", n_candidates=128), ("n_evals", 10),
                  seed=0).algorithm
    parts = bo.fit_surrogate().models[0].covar_module.kernels
    assert [part.base_kernel.active_dims.tolist() for part in parts] == [list(range(6)), [6, 7]]
    assert [part.base_kernel.lengthscale.shape[-1] for part in parts] == [6, 2]


def test_features_predict_better_when_the_objective_depends_on_them():
    problem = FeatureZDT1(n_var=6)
    rng = np.random.default_rng(0)
    U = torch.as_tensor(rng.random((60, 6)))
    Y = -torch.as_tensor(problem.evaluate(U.numpy())[:, 1:])
    rmse = {}
    for gp_inputs in ("encoding", "features"):
        bo = small_bo(gp_inputs=gp_inputs)
        bo.setup(problem, seed=0)
        gp = bo.fit_gp(U[:20], Y[:20])
        with torch.no_grad():
            rmse[gp_inputs] = float((gp.posterior(U[20:]).mean - Y[20:]).pow(2).mean().sqrt())
    assert rmse["features"] < 0.5 * rmse["encoding"], rmse


def test_features_beside_a_categorical_encoding():
    bo = minimize(MixedFeatureProblem(), small_bo(gp_inputs="encoding+features", n_candidates=64),
                  ("n_evals", 10), seed=0).algorithm
    assert bo.space.categorical and bo.fit_surrogate().models[0].train_inputs[0].shape[-1] == 4 + 2


def test_gp_inputs_errors():
    with pytest.raises(ValueError, match="unknown gp_inputs"):
        BoTorchMOBO(gp_inputs="macs")
    with pytest.raises(ValueError, match="architecture_features"):
        minimize(get_problem("zdt1", n_var=4), small_bo(gp_inputs="features"), ("n_evals", 4))
    with pytest.raises(ValueError, match="no gradients"):
        minimize(FeatureZDT1(n_var=4), small_bo(gp_inputs="features", acqf_optimizer="continuous"), ("n_evals", 4))
    problem = FeatureZDT1(n_var=4)
    problem.architecture_features = lambda X: np.zeros(len(X))
    with pytest.raises(ValueError, match="without categorical dimensions"):
        minimize(MixedFeatureProblem(), small_bo(gp_inputs="additive"), ("n_evals", 4))
    with pytest.raises(ValueError, match=r"returned shape \(6,\) for 6 candidates, expected \(6, k\)"):
        minimize(problem, small_bo(gp_inputs="features"), ("n_evals", 10))


# ------------------------------------------------------------------------------------------ hypervolume
# The cheap algorithms' runs are deterministic under their seeds (the same hypervolumes came out on the
# 2-core dev VM and on a 16-core machine), so a failure there means behaviour changed. BO's are not
# bit-reproducible across sessions (GP fits differ in the last digits and a DTLZ2 seed's hypervolume
# moved from 0.38 to 0.17), hence margins of about half the smallest measured advantage.

# the configurations and hypervolume definition of the benchmark that measured the margins below
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from algorithms_smoke import run as benchmark_run  # noqa: E402 (the benchmarks folder is added to the path above)

#: median HV after 100 evaluations >= (1 + margin) * random search's median. Measured advantages
#: (`python benchmarks/algorithms_smoke.py --seeds 5`, docs/algorithms.md), seeds 0-1 / 0-4:
#: evolution ZDT1 +6.6% / +7.3%, DTLZ2 +71% / +71%; MOPSO ZDT1 +2.7% / +6.7%, DTLZ2 +80% / +148%;
#: hybrid ZDT1 +20% / +20%, DTLZ2 +162% / +185%; BO ZDT1 +21% / +25%, DTLZ2 +194% / +271%.
#: Margins are about half of the smaller of the two (MOPSO on ZDT1 with two seeds: 2%).
MARGINS_VS_RANDOM = {
    ("evolution", "zdt1"): 0.03, ("evolution", "dtlz2"): 0.35,
    ("pso", "zdt1"): 0.015, ("pso", "dtlz2"): 0.4,
    ("hybrid", "zdt1"): 0.1, ("hybrid", "dtlz2"): 0.45,
    ("botorch", "zdt1"): 0.11, ("botorch", "dtlz2"): 1.2,
}
#: BO's median HV after 60 evaluations >= (1 + margin) * NSGA-II's; measured ZDT1 +23% / +22%,
#: DTLZ2 +995% / +222% (seeds 0-1 / 0-4)
MARGINS_BO_VS_NSGA2 = {"zdt1": 0.11, "dtlz2": 1.0}


@functools.cache
def hypervolumes(algorithm: str, problem: str, seed: int, n_evals: int) -> tuple[float, float]:
    """Hypervolume of the first 60 and of all ``n_evals`` evaluations of one seeded run."""
    result = benchmark_run(algorithm, problem, seed, n_evals)
    return result["hv60"], result["hv100"]


def median_hv(algorithm: str, problem: str, seeds, n_evals: int, first_60: bool = False) -> float:
    values = [hypervolumes(algorithm, problem, seed, n_evals)[0 if first_60 else 1] for seed in seeds]
    return float(np.median(values))


def check_against_random(algorithm: str, problem: str, seeds) -> None:
    value, random = median_hv(algorithm, problem, seeds, 100), median_hv("random", problem, seeds, 100)
    assert value >= (1 + MARGINS_VS_RANDOM[(algorithm, problem)]) * random, (value, random)


def check_bo_against_nsga2(problem: str, seeds, n_evals: int) -> None:
    bo = median_hv("botorch", problem, seeds, n_evals, first_60=True)
    nsga2 = median_hv("nsga2", problem, seeds, 60)
    assert bo >= (1 + MARGINS_BO_VS_NSGA2[problem]) * nsga2, (bo, nsga2)


@pytest.mark.parametrize("problem", ["zdt1", "dtlz2"])
@pytest.mark.parametrize("algorithm", ["evolution", "pso", "hybrid"])
def test_beats_random_search_two_seeds(algorithm, problem):
    check_against_random(algorithm, problem, seeds=(0, 1))


def test_bo_beats_random_search_and_nsga2_on_zdt1_two_seeds():
    # a 60-evaluation run keeps this unmarked: hypervolume never decreases with more evaluations, so
    # beating random search's 100-evaluation median at 60 implies beating it at 100
    seeds = (0, 1)
    bo, random = median_hv("botorch", "zdt1", seeds, 60), median_hv("random", "zdt1", seeds, 100)
    assert bo >= (1 + MARGINS_VS_RANDOM[("botorch", "zdt1")]) * random, (bo, random)
    check_bo_against_nsga2("zdt1", seeds, n_evals=60)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["zdt1", "dtlz2"])
@pytest.mark.parametrize("algorithm", ["evolution", "pso", "hybrid", "botorch"])
def test_beats_random_search_five_seeds(algorithm, problem):
    check_against_random(algorithm, problem, seeds=range(5))


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["zdt1", "dtlz2"])
def test_bo_beats_nsga2_five_seeds(problem):
    # the first 60 evaluations of the 100-evaluation runs above
    check_bo_against_nsga2(problem, seeds=range(5), n_evals=100)


# ---- the cost-spread initial design -------------------------------------------------------------
def test_cheap_spread_sampling_spreads_feasible_designs_over_energy():
    from moo_audio.algorithms import CheapSpreadSampling
    from moo_audio.surrogate import SurrogateAudioNASProblem

    problem = SurrogateAudioNASProblem("builtin", n_estimators=10, folds=0)
    X = CheapSpreadSampling(pool=16).do(problem, 8, random_state=np.random.default_rng(0)).get("X")
    assert len(row_keys(UnitCube(problem).encode(X))) == 8 and problem.cheap_feasible(X).all()
    # one design in (nearly) each eighth of the feasible designs' energies: 8 Sobol draws occupy 4-7 of them
    cube = UnitCube(problem)
    pool = cube.decode(np.random.default_rng(1).random((2048, cube.n_dims)))
    pool = pool[problem.cheap_feasible(pool)]
    edges = np.quantile(np.log(problem.evaluate_cheap(pool)[:, 0]), np.linspace(0, 1, 9)[1:-1])
    assert len(set(np.searchsorted(edges, np.log(problem.evaluate_cheap(X)[:, 0])))) >= 7
    again = CheapSpreadSampling(pool=16).do(problem, 8, random_state=np.random.default_rng(0)).get("X")
    assert np.array_equal(X, again)
    with pytest.raises(ValueError, match="objective 2: the problem has 2 cheap objective"):
        CheapSpreadSampling(objective=2).do(problem, 4, random_state=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs a problem with `evaluate_cheap` and `cheap_feasible`"):
        CheapSpreadSampling().do(ZDT1(), 4, random_state=np.random.default_rng(0))
    with pytest.raises(ValueError, match="pool must be >= 1"):
        CheapSpreadSampling(pool=0)
