"""Early-stopped training of one candidate network.

:func:`train_candidate` trains any ``torch.nn.Module`` classifier on standardised log-mel tensors
(:class:`TrainData`) under a :class:`TrainBudget`, evaluates it after every epoch and stops early
when one of its :class:`StoppingRule` s fires. Three rules are provided: :class:`Patience` (no
improvement for a while), :class:`MedianStopping` (Golovin et al. 2017, Google Vizier) and
:class:`SuccessiveHalving` (ASHA fidelity rungs, Li et al. 2020); the last two compare the candidate
with the learning curves of earlier candidates kept in a :class:`CurveHistory`.

A candidate that diverges (non-finite loss) or does not fit in memory is returned as a failed
:class:`TrainResult`; it never raises. See ``docs/training.md``.
"""

from __future__ import annotations

import copy
import math
import operator
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from moo_audio.augment import Augmentation


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class TrainBudget:
    """How long and how hard one candidate is trained.

    Optimiser: AdamW(``lr``, ``weight_decay``) under a one-cycle schedule that peaks at ``lr`` and
    spans ``max_epochs``; cross-entropy with ``label_smoothing``.

    Args:
        max_epochs: epochs to train unless a rule or ``max_seconds`` stops earlier.
        max_seconds: wall-clock cap, checked between epochs (at least one epoch always runs).
        batch_size: training and evaluation batch size.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW decoupled weight decay.
        label_smoothing: cross-entropy label smoothing, in ``[0, 1)``.
        augment: on-the-fly augmentation of the training batches (:class:`~moo_audio.augment.Augmentation`:
            time shift, background noise, SpecAugment masks); ``None``: none.
    """

    max_epochs: int = 15
    max_seconds: float | None = None
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    augment: Augmentation | None = None

    def __post_init__(self) -> None:
        _check_int("TrainBudget", "max_epochs", self.max_epochs, 1)
        _check_int("TrainBudget", "batch_size", self.batch_size, 1)
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"TrainBudget: max_seconds must be positive or None, got {self.max_seconds!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainBudget: lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"TrainBudget: weight_decay must be finite and >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"TrainBudget: label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.augment is not None and not isinstance(self.augment, Augmentation):
            raise ValueError(f"TrainBudget: augment must be an Augmentation or None, got {self.augment!r}")


@dataclass
class TrainData:
    """Train / validation / optional test split of standardised inputs and integer labels.

    Inputs are float tensors ``[n, *features]`` (e.g. ``[n, n_mels, n_frames]``), labels integer
    tensors ``[n]``. Every given split must be non-empty with finite inputs, the same feature shape as
    the training split and labels in ``[0, n_classes)``. ``n_classes`` defaults to the largest label
    plus one.

    Raises:
        ValueError: naming the split and the problem.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError("TrainData: give both x_test and y_test, or neither")
        splits = self.splits()
        for name, x, y in splits:
            _check_split(name, x, y)
        for name, x, _ in splits[1:]:
            if x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(
                    f"TrainData: x_{name} examples have shape {tuple(x.shape[1:])}, "
                    f"x_train examples {tuple(self.x_train.shape[1:])}"
                )
        if self.n_classes is None:
            self.n_classes = 1 + max(int(y.max()) for _, _, y in splits)
        _check_int("TrainData", "n_classes", self.n_classes, 2)
        for name, _, y in splits:
            if int(y.max()) >= self.n_classes:
                raise ValueError(
                    f"TrainData: y_{name} has label {int(y.max())} outside [0, {self.n_classes})"
                )

    def splits(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(name, x, y)`` for ``train``, ``val`` and, when given, ``test``."""
        splits = [("train", self.x_train, self.y_train), ("val", self.x_val, self.y_val)]
        if self.x_test is not None:
            splits.append(("test", self.x_test, self.y_test))
        return splits


def _check_split(name: str, x: Any, y: Any) -> None:
    """Validate one split's tensors; ``ValueError`` naming the split and the problem."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError(
            f"TrainData: x_{name} and y_{name} must be torch tensors, "
            f"got {type(x).__name__} and {type(y).__name__}"
        )
    if not x.is_floating_point() or x.ndim < 2:
        raise ValueError(
            f"TrainData: x_{name} must be a floating-point tensor [n, *features], "
            f"got {x.dtype} of shape {tuple(x.shape)}"
        )
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(
            f"TrainData: y_{name} must be a 1-D integer tensor, got {y.dtype} of shape {tuple(y.shape)}"
        )
    if len(x) != len(y):
        raise ValueError(f"TrainData: x_{name} has {len(x)} examples but y_{name} has {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"TrainData: the {name} split is empty")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"TrainData: x_{name} contains NaN or infinite values")
    if int(y.min()) < 0:
        raise ValueError(f"TrainData: y_{name} has negative label {int(y.min())}")


@dataclass
class TrainResult:
    """Outcome of :func:`train_candidate`.

    ``curve`` and ``train_loss`` hold one value per completed epoch and ``epochs`` their count;
    ``seconds`` is the training's wall-clock time and ``cpu_seconds`` the CPU time of its process
    (all threads) meanwhile. A failed candidate has ``failed=True``, ``stop_reason="failed"``, a
    ``failure_reason`` and NaN accuracies. ``weights`` (the best epoch's state dict) is set only where
    a job asks to keep them, and is not part of :meth:`to_dict`.
    """

    val_accuracy: float
    test_accuracy: float
    curve: list[float]
    train_loss: list[float]
    epochs: int
    stop_reason: str
    seconds: float
    failed: bool = False
    failure_reason: str | None = None
    cpu_seconds: float = math.nan
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def failure(cls, reason: str, stop_reason: str = "failed") -> TrainResult:
        """A candidate that trained no epoch (e.g. its worker died, or it was ``skipped``)."""
        return cls(math.nan, math.nan, [], [], 0, stop_reason, 0.0, failed=True, failure_reason=reason,
                   cpu_seconds=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serialisable; NaN accuracies stay NaN), without the weights."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "weights"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


class CurveHistory:
    """Validation-accuracy curves of earlier candidates, shared by the median and halving rules.

    ``curve[e - 1]`` is the accuracy after epoch ``e``. Add every finished candidate's curve, early
    stopped or not; a failed candidate's curve holds the epochs it completed.
    """

    _STATS: ClassVar[dict[str, Callable[[Sequence[float]], float]]] = {
        "last": operator.itemgetter(-1),
        "best": max,
        "mean": statistics.fmean,
    }

    def __init__(self, curves: Iterable[Sequence[float]] = ()) -> None:
        self._curves: list[tuple[float, ...]] = []
        for curve in curves:
            self.add(curve)

    def add(self, curve: Sequence[float]) -> None:
        """Record one candidate's curve."""
        values = tuple(float(v) for v in curve)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"CurveHistory: curve has non-finite accuracies: {list(values)}")
        self._curves.append(values)

    def __len__(self) -> int:
        return len(self._curves)

    def values_at(self, epoch: int, stat: str = "last") -> np.ndarray:
        """One value per recorded curve that reached ``epoch``, computed from its first ``epoch`` entries.

        Args:
            epoch: 1-based epoch.
            stat: ``"last"`` (accuracy at ``epoch``), ``"best"`` (best so far) or ``"mean"``
                (running average).
        """
        _check_int("CurveHistory.values_at", "epoch", epoch, 1)
        if stat not in self._STATS:
            raise ValueError(f"CurveHistory: unknown stat {stat!r}; expected one of {tuple(self._STATS)}")
        reduce = self._STATS[stat]
        return np.array([reduce(c[:epoch]) for c in self._curves if len(c) >= epoch], dtype=float)

    def to_list(self) -> list[list[float]]:
        """The curves as lists, for storage."""
        return [list(c) for c in self._curves]



class StoppingRule(ABC):
    """Decides after each epoch, from the validation-accuracy curve so far, whether to stop.

    Rules are stateless with respect to the candidate, so one instance serves many candidates.
    ``name`` becomes :attr:`TrainResult.stop_reason` when the rule fires.
    """

    name: ClassVar[str]

    @abstractmethod
    def should_stop(self, curve: Sequence[float]) -> bool:
        """True to stop after the last epoch of ``curve`` (``curve[e - 1]`` is epoch ``e``)."""


@dataclass(frozen=True)
class Patience(StoppingRule):
    """Stop after ``patience`` epochs without the best accuracy improving by more than ``min_delta``."""

    patience: int = 5
    min_delta: float = 0.0
    name: ClassVar[str] = "patience"

    def __post_init__(self) -> None:
        _check_int("Patience", "patience", self.patience, 1)
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ValueError(f"Patience: min_delta must be finite and >= 0, got {self.min_delta!r}")

    def should_stop(self, curve: Sequence[float]) -> bool:
        best, best_epoch = -math.inf, 0
        for epoch, accuracy in enumerate(curve, 1):
            if accuracy > best + self.min_delta:
                best, best_epoch = accuracy, epoch
        return len(curve) - best_epoch >= self.patience


@dataclass(frozen=True)
class MedianStopping(StoppingRule):
    """Google Vizier's median stopping rule (Golovin et al. 2017).

    At epoch ``t > grace_epochs`` the candidate stops if its *best* accuracy so far is strictly below
    the median of the *running averages* (mean of epochs ``1..t``) of the earlier candidates that
    reached epoch ``t``; with fewer than ``min_history`` such candidates it never stops.
    """

    history: CurveHistory
    grace_epochs: int = 3
    min_history: int = 3
    name: ClassVar[str] = "median"

    def __post_init__(self) -> None:
        _check_int("MedianStopping", "grace_epochs", self.grace_epochs, 0)
        _check_int("MedianStopping", "min_history", self.min_history, 1)

    def should_stop(self, curve: Sequence[float]) -> bool:
        epoch = len(curve)
        if epoch <= self.grace_epochs:
            return False
        running_means = self.history.values_at(epoch, "mean")
        return len(running_means) >= self.min_history and max(curve) < float(np.median(running_means))


@dataclass(frozen=True)
class SuccessiveHalving(StoppingRule):
    """ASHA-style rungs (Li et al. 2020): a cut at epochs ``min_epochs * eta**k``, ``k = 0, 1, ...``.

    At a rung the candidate's best accuracy so far is ranked among the best-so-far accuracies, at
    that rung, of the earlier candidates that reached it (ties resolved in the candidate's favour).
    With ``n`` earlier candidates it continues only if its rank is within the top
    ``max(1, (n + 1) // eta)``, i.e. the top ``1/eta`` of the rung including itself. With fewer than
    ``min_history`` earlier candidates at the rung it continues.
    """

    history: CurveHistory
    min_epochs: int = 2
    eta: int = 3
    min_history: int = 3
    name: ClassVar[str] = "halving"

    def __post_init__(self) -> None:
        _check_int("SuccessiveHalving", "min_epochs", self.min_epochs, 1)
        _check_int("SuccessiveHalving", "eta", self.eta, 2)
        _check_int("SuccessiveHalving", "min_history", self.min_history, 1)

    def is_rung(self, epoch: int) -> bool:
        """Whether ``epoch`` is one of the rungs ``min_epochs * eta**k``."""
        rung = self.min_epochs
        while rung < epoch:
            rung *= self.eta
        return rung == epoch

    def should_stop(self, curve: Sequence[float]) -> bool:
        epoch = len(curve)
        if epoch == 0 or not self.is_rung(epoch):
            return False
        others = self.history.values_at(epoch, "best")
        if len(others) < self.min_history:
            return False
        rank = 1 + int(np.sum(others > max(curve)))
        return rank > max(1, (len(others) + 1) // self.eta)


#: the rules by name; the median and halving rules compare with the curves of a :class:`CurveHistory`
_RULES: dict[str, Callable[[CurveHistory], StoppingRule]] = {
    Patience.name: lambda history: Patience(),
    MedianStopping.name: MedianStopping,
    SuccessiveHalving.name: SuccessiveHalving,
}
STOPPING_RULES = tuple(_RULES)
#: the rules a search stops candidates by unless told otherwise
DEFAULT_STOPPING = (Patience.name, MedianStopping.name)


def check_rule_names(names: Sequence[str]) -> None:
    """``ValueError`` naming any name that is not one of :data:`STOPPING_RULES`."""
    unknown = [s for s in names if s not in STOPPING_RULES]
    if unknown:
        raise ValueError(f"unknown stopping rule(s) {unknown}; expected some of {STOPPING_RULES}")


def stopping_rules(names: Sequence[str], history: CurveHistory) -> list[StoppingRule]:
    """The rules of the given names, comparing with ``history``."""
    check_rule_names(names)
    return [_RULES[name](history) for name in names]


@dataclass(frozen=True)
class _Feeder:
    """Feeds index batches of a split to the model in its input shape and checks the logits."""

    input_shape: tuple[int, ...]
    n_classes: int
    device: torch.device

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, labels)`` of the examples ``idx`` on the model's device, ``augment`` ed first."""
        batch = x[idx].to(self.device)
        if augment is not None:
            batch = augment(batch)
        logits = model(batch.reshape(len(idx), *self.input_shape))
        if logits.ndim != 2 or logits.shape[0] != len(idx) or logits.shape[1] < self.n_classes:
            raise ValueError(
                f"model must return logits [batch, n_classes >= {self.n_classes}], "
                f"got shape {tuple(logits.shape)} for a batch of {len(idx)}"
            )
        return logits, y[idx].to(self.device)


class _Diverged(Exception):
    """Training produced non-finite numbers; the message says where."""


def _train_batch_count(n: int, batch_size: int) -> int:
    """Batches per training epoch: a trailing batch of one example is dropped when there are others,
    since batch normalisation cannot normalise a single example (the shuffle changes who is dropped)."""
    return math.ceil(n / batch_size) - int(n % batch_size == 1 and n > batch_size)


def _train_epoch(
    model: nn.Module,
    feed: _Feeder,
    data: TrainData,
    batch_size: int,
    generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
) -> float:
    """One shuffled pass over the training split (batches ``augment`` ed); the mean training loss.

    Raises:
        _Diverged: the loss is not finite.
    """
    model.train()
    n = len(data.x_train)
    batches = torch.randperm(n, generator=generator).split(batch_size)[: _train_batch_count(n, batch_size)]
    total, count = torch.zeros((), device=feed.device), 0
    for idx in batches:
        logits, labels = feed(model, data.x_train, data.y_train, idx, augment)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach() * len(idx)
        count += len(idx)
    mean_loss = total.item() / count
    if not math.isfinite(mean_loss):
        raise _Diverged("non-finite loss")
    return mean_loss


@torch.no_grad()
def _accuracy(
    model: nn.Module, feed: _Feeder, x: torch.Tensor, y: torch.Tensor, batch_size: int, split: str
) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on one split.

    Raises:
        _Diverged: some logits are not finite (their argmax would be meaningless).
    """
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=feed.device)
    finite = torch.ones((), dtype=torch.bool, device=feed.device)
    for idx in torch.arange(len(x)).split(batch_size):
        logits, labels = feed(model, x, y, idx)
        correct += (logits.argmax(dim=1) == labels).sum()
        finite &= torch.isfinite(logits).all()
    if not finite.item():
        raise _Diverged(f"non-finite model outputs on the {split} split")
    return correct.item() / len(x)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, input_shape: tuple[int, ...],
             batch_size: int = 256) -> float:
    """Top-1 accuracy of a trained classifier on examples ``x`` (in the shape of a split), labels ``y``."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return _accuracy(model, _Feeder(tuple(input_shape), int(y.max()) + 1 if len(y) else 1, device),
                         x, y, batch_size, "given")


def _stop_reason(
    curve: list[float], budget: TrainBudget, rules: Sequence[StoppingRule], elapsed: float
) -> str | None:
    """Why to stop after the last epoch of ``curve``: budget first, then the rules in order, then time."""
    if len(curve) >= budget.max_epochs:
        return "budget"
    for rule in rules:
        if rule.should_stop(curve):
            return rule.name
    if budget.max_seconds is not None and elapsed >= budget.max_seconds:
        return "time"
    return None


def _is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the candidate did not fit in (host or device) memory."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def train_candidate(
    model: nn.Module,
    data: TrainData,
    input_shape: tuple[int, ...],
    budget: TrainBudget = TrainBudget(),
    rules: Sequence[StoppingRule] = (Patience(),),
    seed: int = 0,
    threads: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` in place with early stopping; the model ends restored to its best epoch.

    After each epoch the validation accuracy is appended to the curve and the run stops at
    ``max_epochs`` (``"budget"``), when the first of ``rules`` fires (its ``name``) or past
    ``max_seconds`` (``"time"``). The weights of the best validation epoch (earliest on ties) are
    restored and evaluated on the test split. A non-finite training loss or model output, or running
    out of memory, returns a failed result (the model's weights are then unspecified); other errors
    propagate.

    Args:
        model: classifier mapping ``[B, *input_shape]`` to logits ``[B, n_classes]``; trained on the
            device of its parameters.
        data: the splits.
        input_shape: per-example shape the model expects, e.g. ``(1, n_mels, n_frames)`` for 2-D
            convolutions or ``(n_mels, n_frames)`` for 1-D; must hold as many values as an example.
        budget: epochs, time, batch size and optimiser settings.
        rules: early-stopping rules, checked in order after each epoch.
        seed: seeds shuffling, dropout and any other torch randomness during training; the caller's
            global torch RNG state is restored afterwards.
        threads: ``torch.set_num_threads`` for the duration of the call (restored afterwards).
        on_epoch: called after each epoch with the epoch (from 1) and its validation accuracy
            (e.g. to show progress).
        augment: applied to every training batch of inputs ``[B, *features]`` (e.g. a
            :class:`~moo_audio.augment.FeatureAugmenter`); evaluation batches are never augmented.

    Raises:
        ValueError: ``input_shape`` does not match the data, the model has no trainable parameters
            or returns logits of the wrong shape.
    """
    start = time.perf_counter(), time.process_time()
    input_shape = tuple(int(d) for d in input_shape)
    example_shape = tuple(data.x_train.shape[1:])
    if math.prod(input_shape) != math.prod(example_shape):
        raise ValueError(f"input_shape {input_shape} does not match examples of shape {example_shape}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if threads is not None:
        _check_int("train_candidate", "threads", threads, 1)
    for rule in rules:
        if not isinstance(rule, StoppingRule):
            raise TypeError(f"rules must be StoppingRule instances, got {type(rule).__name__}")

    device = params[0].device
    # fork_rng restores the CPU generator, plus the model's CUDA device generator when there is one
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    feed = _Feeder(input_shape, data.n_classes, device)
    previous_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            return _fit(model, params, data, feed, budget, rules, seed, start, on_epoch, augment)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    model: nn.Module,
    params: list[nn.Parameter],
    data: TrainData,
    feed: _Feeder,
    budget: TrainBudget,
    rules: Sequence[StoppingRule],
    seed: int,
    start: tuple[float, float],
    on_epoch: Callable[[int, float], None] | None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
) -> TrainResult:
    """The training loop of :func:`train_candidate`, after validation and RNG/thread setup."""
    optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=budget.lr,
        total_steps=budget.max_epochs * _train_batch_count(len(data.x_train), budget.batch_size),
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=budget.label_smoothing)
    generator = torch.Generator().manual_seed(seed)
    curve: list[float] = []
    train_loss: list[float] = []
    best_state: dict[str, torch.Tensor] = {}
    stop_reason: str | None = None
    epoch = 0
    try:
        while stop_reason is None:
            epoch += 1
            loss = _train_epoch(
                model, feed, data, budget.batch_size, generator, optimizer, scheduler, loss_fn, augment
            )
            accuracy = _accuracy(model, feed, data.x_val, data.y_val, budget.batch_size, "val")
            train_loss.append(loss)
            curve.append(accuracy)
            if on_epoch is not None:
                on_epoch(epoch, accuracy)
            if accuracy > max(curve[:-1], default=-math.inf):
                best_state = copy.deepcopy(model.state_dict())
            stop_reason = _stop_reason(curve, budget, rules, time.perf_counter() - start[0])
        model.load_state_dict(best_state)
        test_accuracy = (
            math.nan
            if data.x_test is None
            else _accuracy(model, feed, data.x_test, data.y_test, budget.batch_size, "test")
        )
        return TrainResult(
            val_accuracy=max(curve),
            test_accuracy=test_accuracy,
            curve=curve,
            train_loss=train_loss,
            epochs=len(curve),
            stop_reason=stop_reason,
            seconds=time.perf_counter() - start[0],
            cpu_seconds=time.process_time() - start[1],
        )
    except _Diverged as error:
        failure = f"{error} at epoch {epoch}"
    except (MemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        failure = f"out of memory at epoch {epoch}: {type(error).__name__}: {error}"
    return TrainResult(
        val_accuracy=math.nan,
        test_accuracy=math.nan,
        curve=curve,
        train_loss=train_loss,
        epochs=len(curve),
        stop_reason="failed",
        seconds=time.perf_counter() - start[0],
        failed=True,
        failure_reason=failure,
        cpu_seconds=time.process_time() - start[1],
    )
