"""Tests for moo_audio.training: early-stopped training of one candidate."""

from __future__ import annotations

import json
import math
import pickle
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from moo_audio.training import (
    CurveHistory,
    MedianStopping,
    Patience,
    StoppingRule,
    SuccessiveHalving,
    TrainBudget,
    TrainData,
    TrainResult,
    train_candidate,
)

N_MELS, N_FRAMES = 8, 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; more threads crawl when the CPU is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def toy_data(n_train: int = 96, n_val: int = 48, n_test: int = 48, seed: int = 0) -> TrainData:
    """Two classes separated by a +-0.7 offset under unit noise: easy, but not from one example."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.randn(n, N_MELS, N_FRAMES, generator=g) + 0.7 * (2 * y - 1).float()[:, None, None]
        return x, y

    return TrainData(*split(n_train), *split(n_val), *split(n_test))


def conv2d_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def conv1d_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(N_MELS, 4, 3, padding=1),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


class Broken(nn.Module):
    """A linear model whose forward misbehaves after ``after`` training calls ("nan-eval": in eval mode)."""

    def __init__(self, behaviour: str, after: int = 0):
        super().__init__()
        self.linear = nn.Linear(N_MELS * N_FRAMES, 2)
        self.behaviour, self.after, self.calls = behaviour, after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        logits = self.linear(x.flatten(1))
        if self.behaviour == "nan-eval":
            return logits if self.training else logits * math.nan
        if self.calls <= self.after:
            return logits
        if self.behaviour == "nan":
            return logits * math.nan
        if self.behaviour == "memory":
            raise MemoryError("cannot allocate 12 GiB")
        if self.behaviour == "cuda-oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


@dataclass(frozen=True)
class StopAt(StoppingRule):
    """Test rule: fires once the curve has ``epoch`` entries."""

    epoch: int
    name = "stop-at"

    def should_stop(self, curve):
        return len(curve) >= self.epoch


# --- training -------------------------------------------------------------------------------------


def val_accuracy_of(model: nn.Module, data: TrainData, input_shape: tuple[int, ...]) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(data.x_val.reshape(-1, *input_shape)).argmax(1)
    return (predicted == data.y_val).float().mean().item()


@pytest.mark.parametrize(
    "net, input_shape", [(conv2d_net, (1, N_MELS, N_FRAMES)), (conv1d_net, (N_MELS, N_FRAMES))]
)
def test_learns_separable_problem(net, input_shape):
    data = toy_data()
    model = net()
    result = train_candidate(model, data, input_shape, TrainBudget(max_epochs=10, batch_size=16), rules=())
    assert not result.failed and result.stop_reason == "budget"
    assert result.epochs == len(result.curve) == len(result.train_loss) == 10
    assert result.val_accuracy == max(result.curve) >= 0.9
    assert result.test_accuracy >= 0.85
    assert val_accuracy_of(model, data, input_shape) == pytest.approx(result.val_accuracy)


class Sabotaged(nn.Module):
    """conv1d_net whose classifier is negated by its 55th training forward (start of epoch 10)."""

    def __init__(self):
        super().__init__()
        self.net, self.calls = conv1d_net(), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        if self.calls == 55:
            with torch.no_grad():
                for p in self.net[-1].parameters():
                    p.neg_()
        return self.net(x)


def test_model_is_restored_to_its_best_epoch():
    data, shape = toy_data(), (N_MELS, N_FRAMES)
    model = Sabotaged()
    result = train_candidate(model, data, shape, TrainBudget(max_epochs=10, batch_size=16), rules=())
    assert result.curve[-1] < 0.5 < result.val_accuracy
    assert val_accuracy_of(model, data, shape) == pytest.approx(result.val_accuracy)


def test_seeded_runs_are_identical_and_leave_caller_state_alone():
    budget = TrainBudget(max_epochs=4, batch_size=16)
    rng_before = torch.random.get_rng_state()
    results, states = [], []
    for _ in range(2):
        model = conv1d_net()
        results.append(train_candidate(model, toy_data(), (N_MELS, N_FRAMES), budget, seed=3, threads=2))
        states.append(model.state_dict())
    assert results[0].curve == results[1].curve
    assert results[0].train_loss == results[1].train_loss
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert torch.get_num_threads() == 1  # as set by the one_thread fixture
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_no_test_split_gives_nan_test_accuracy():
    data = toy_data()
    data = TrainData(data.x_train, data.y_train, data.x_val, data.y_val)
    result = train_candidate(conv2d_net(), data, (1, N_MELS, N_FRAMES), TrainBudget(max_epochs=1))
    assert math.isnan(result.test_accuracy) and not math.isnan(result.val_accuracy)


def test_first_firing_rule_names_the_stop_and_budget_comes_first():
    shape = (1, N_MELS, N_FRAMES)
    never_improves = Patience(patience=1, min_delta=1.0)  # fires at epoch 2, like StopAt(2)
    for rules, reason in [
        ((never_improves, StopAt(2)), "patience"),
        ((StopAt(2), never_improves), "stop-at"),
    ]:
        result = train_candidate(conv2d_net(), toy_data(), shape, TrainBudget(max_epochs=5), rules=rules)
        assert (result.stop_reason, result.epochs) == (reason, 2)
    result = train_candidate(conv2d_net(), toy_data(), shape, TrainBudget(max_epochs=2), rules=(StopAt(2),))
    assert (result.stop_reason, result.epochs) == ("budget", 2)


def test_median_rule_stops_training_against_a_better_history():
    rule = MedianStopping(CurveHistory([[1.0] * 6] * 3), grace_epochs=1)
    budget = TrainBudget(max_epochs=6, lr=1e-7)  # barely moves from its initial, imperfect accuracy
    result = train_candidate(conv2d_net(), toy_data(), (1, N_MELS, N_FRAMES), budget, rules=(rule,))
    assert (result.stop_reason, result.epochs) == ("median", 2)


def test_max_seconds_stops_with_time():
    budget = TrainBudget(max_epochs=50, max_seconds=1e-6)
    result = train_candidate(conv2d_net(), toy_data(), (1, N_MELS, N_FRAMES), budget, rules=())
    assert (result.stop_reason, result.epochs, result.failed) == ("time", 1, False)


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("after, epoch", [(0, 1), (6, 3)])  # 96 examples / 32 = 3 batches per epoch
def test_nan_loss_marks_the_candidate_failed(after, epoch):
    result = train_candidate(Broken("nan", after), toy_data(), (N_MELS, N_FRAMES), TrainBudget(batch_size=32))
    assert result.failed and result.stop_reason == "failed"
    assert result.failure_reason == f"non-finite loss at epoch {epoch}"
    assert result.epochs == len(result.curve) == epoch - 1
    assert math.isnan(result.val_accuracy) and math.isnan(result.test_accuracy)


def test_non_finite_outputs_in_evaluation_mark_the_candidate_failed():
    result = train_candidate(Broken("nan-eval"), toy_data(), (N_MELS, N_FRAMES))
    assert result.failure_reason == "non-finite model outputs on the val split at epoch 1"
    assert (result.curve, result.train_loss, result.stop_reason) == ([], [], "failed")


def test_divergent_learning_rate_marks_the_candidate_failed():
    model = nn.Sequential(nn.Flatten(), nn.Linear(N_MELS * N_FRAMES, 2))
    result = train_candidate(model, toy_data(), (N_MELS, N_FRAMES), TrainBudget(max_epochs=5, lr=1e30))
    assert result.failed
    diverged = r"non-finite (loss|model outputs on the val split) at epoch \d+"
    assert re.fullmatch(diverged, result.failure_reason)


@pytest.mark.parametrize("behaviour", ["memory", "cuda-oom"])
def test_out_of_memory_marks_the_candidate_failed(behaviour):
    result = train_candidate(
        Broken(behaviour, after=3), toy_data(), (N_MELS, N_FRAMES), TrainBudget(batch_size=32)
    )
    assert result.failed and result.stop_reason == "failed"
    assert result.failure_reason.startswith("out of memory at epoch 2: ")
    assert result.epochs == 1


def test_other_errors_propagate():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train_candidate(Broken("bug"), toy_data(), (N_MELS, N_FRAMES))


# --- validation -----------------------------------------------------------------------------------


def _fields_with(data: TrainData, **changes) -> dict:
    fields = dict(x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val)
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes, message",
    [
        (lambda d: dict(y_train=d.y_train[:-1]), "x_train has 96 examples but y_train has 95 labels"),
        (lambda d: dict(y_val=d.y_val + 5, n_classes=2), r"y_val has label \d outside \[0, 2\)"),
        (lambda d: dict(y_train=d.y_train - 1), "y_train has negative label -1"),
        (lambda d: dict(x_val=d.x_val[:0], y_val=d.y_val[:0]), "the val split is empty"),
        (lambda d: dict(x_train=d.x_train.clone().fill_(math.nan)), "x_train contains NaN"),
        (lambda d: dict(x_val=d.x_val[:, :4]), r"x_val examples have shape \(4, 12\)"),
        (lambda d: dict(y_train=d.y_train.float()), "y_train must be a 1-D integer tensor"),
        (lambda d: dict(x_test=d.x_val), "both x_test and y_test"),
    ],
)
def test_bad_train_data_is_rejected_with_a_clear_message(changes, message):
    data = toy_data()
    with pytest.raises(ValueError, match=message):
        TrainData(**_fields_with(data, **changes(data)))


def test_n_classes_defaults_to_largest_label_plus_one():
    assert toy_data().n_classes == 2


def test_mismatched_input_shape_or_logits_are_rejected():
    with pytest.raises(
        ValueError, match=r"input_shape \(1, 8, 10\) does not match examples of shape \(8, 12\)"
    ):
        train_candidate(conv2d_net(), toy_data(), (1, N_MELS, 10))
    one_logit = nn.Sequential(nn.Flatten(), nn.Linear(N_MELS * N_FRAMES, 1))
    with pytest.raises(ValueError, match=r"logits \[batch, n_classes >= 2\], got shape \(64, 1\)"):
        train_candidate(one_logit, toy_data(), (N_MELS, N_FRAMES))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_epochs=0),
        dict(batch_size=2.5),
        dict(lr=0.0),
        dict(max_seconds=-1.0),
        dict(label_smoothing=1.0),
    ],
)
def test_bad_budget_is_rejected(kwargs):
    with pytest.raises(ValueError, match="TrainBudget"):
        TrainBudget(**kwargs)


def test_result_round_trips_through_json():
    result = TrainResult(0.9, math.nan, [0.5, 0.9], [0.7, 0.4], 2, "patience", 1.5)
    again = TrainResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.curve == result.curve and again.stop_reason == "patience" and math.isnan(again.test_accuracy)


# --- stopping rules -------------------------------------------------------------------------------


def test_patience_fires_after_patience_epochs_without_improvement():
    rule = Patience(patience=3)
    flat = [0.5] * 4
    assert [rule.should_stop(flat[:t]) for t in range(1, 5)] == [False, False, False, True]
    assert not rule.should_stop([0.1, 0.2, 0.3, 0.4, 0.5])
    assert Patience(patience=2, min_delta=0.05).should_stop([0.5, 0.52, 0.54])
    assert not Patience(patience=2, min_delta=0.05).should_stop([0.5, 0.52, 0.56])


def test_curve_history_statistics_and_storage():
    history = CurveHistory([[0.2, 0.6, 0.4], [0.5]])
    np.testing.assert_allclose(history.values_at(1), [0.2, 0.5])
    np.testing.assert_allclose(history.values_at(3, "last"), [0.4])
    np.testing.assert_allclose(history.values_at(3, "best"), [0.6])
    np.testing.assert_allclose(history.values_at(2, "mean"), [0.4])
    assert history.values_at(4).size == 0
    assert (
        CurveHistory(history.to_list()).to_list() == pickle.loads(pickle.dumps(history)).to_list()
    )
    assert len(history) == 2
    with pytest.raises(ValueError, match="non-finite"):
        history.add([0.1, math.nan])
    with pytest.raises(ValueError, match="unknown stat"):
        history.values_at(1, "median")


def test_median_stopping_compares_best_so_far_with_median_running_average():
    better = CurveHistory([[0.6, 0.8, 0.9, 0.9, 0.9]] * 3)  # running means 0.6, 0.7, 0.767, 0.8, 0.82
    rule = MedianStopping(better, grace_epochs=2, min_history=3)
    candidate = [0.5, 0.6, 0.65, 0.75, 0.79]
    assert [rule.should_stop(candidate[:t]) for t in range(1, 6)] == [False, False, True, True, True]
    assert not rule.should_stop([0.5, 0.6, 0.77])  # best 0.77 is not below the running-mean median 0.767
    worse = CurveHistory([[0.1, 0.2, 0.3, 0.3]] * 3)
    assert not any(MedianStopping(worse, grace_epochs=0).should_stop(candidate[:t]) for t in range(1, 6))
    too_few = CurveHistory([[0.9] * 5] * 2)
    assert not MedianStopping(too_few, grace_epochs=0, min_history=3).should_stop(candidate)


def test_successive_halving_cuts_only_at_rungs_below_the_top_fraction():
    history = CurveHistory([[k / 10] * 20 for k in range(1, 9)])  # 8 earlier candidates: 0.1 .. 0.8
    rule = SuccessiveHalving(history, min_epochs=2, eta=3, min_history=3)
    assert [e for e in range(1, 20) if rule.is_rung(e)] == [2, 6, 18]
    # 9 at each rung including the candidate: top 3 continue, i.e. at most 2 earlier ones better.
    assert not rule.should_stop([0.6, 0.6])
    assert rule.should_stop([0.55, 0.55])
    assert not rule.should_stop([0.55] * 3)  # not a rung
    assert rule.should_stop([0.55] * 6)
    assert not rule.should_stop([0.2, 0.8, 0.3, 0.3, 0.3, 0.3])  # best so far counts
    assert not SuccessiveHalving(CurveHistory([[0.9] * 2] * 2), min_history=3).should_stop([0.1, 0.1])


def test_successive_halving_uses_only_candidates_that_reached_the_rung():
    history = CurveHistory([[0.9, 0.9]] * 3 + [[0.1] * 6] * 3)
    rule = SuccessiveHalving(history, min_epochs=2, eta=3)
    assert rule.should_stop([0.5, 0.5])  # 3 of 6 earlier ones better, only top 2 continue
    assert not rule.should_stop([0.5] * 6)  # at rung 6 only the three 0.1 curves count
