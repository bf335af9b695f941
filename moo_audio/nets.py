"""Genome -> layer plan -> ``torch.nn.Module``, and the MobileNet baselines as genomes.

A :class:`LayerPlan` lists every operator of a network with its shapes and wiring. The torch
builder and the analytic cost model (:mod:`moo_audio.costs`) both read the same plan, so what is
counted is what is built. The MobileNetV1/V2 baselines are ordinary genomes, so they go through
the same builder, costs, training and energy code as any candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from moo_audio.space import Block, FrontEnd, Genome, _conv_out, per_dim


@dataclass(frozen=True)
class Layer:
    """One operator of a network.

    ``op`` is ``conv`` (convolution + folded batch norm, optional ReLU), ``maxpool``, ``add``
    (residual), ``gap`` (global average pooling) or ``linear``. Shapes exclude the batch; ``kernel``
    and ``stride`` hold one value per spatial dimension (empty for ``add``, ``gap``, ``linear``).
    Convolutions are "same"-padded: the output has ``ceil(size / stride)`` positions; an odd kernel
    ``k`` is padded by ``k // 2`` on both sides, an even one as TensorFlow pads it (the odd position
    of the padding on the far side).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    groups: int = 1
    relu: bool = False

    @property
    def taps(self) -> int:
        """Kernel positions (the product of ``kernel``)."""
        return math.prod(self.kernel)

    def padding(self) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` zero padding of each spatial dimension ("same" padding)."""
        out = []
        for size, k, s, n in zip(self.in_shape[1:], self.kernel, self.stride, self.out_shape[1:]):
            total = max((n - 1) * s + k - size, 0)
            out.append((k // 2, k // 2) if k % 2 else (total // 2, total - total // 2))
        return tuple(out)

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]


@dataclass(frozen=True)
class LayerPlan:
    """The operators of a network in execution order; tensor ``"input"`` is the network input."""

    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]

    @property
    def spatial_rank(self) -> int:
        return len(self.input_shape) - 1


class _PlanBuilder:
    """Appends layers to a plan while tracking the current tensor and its shape."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.input_shape = input_shape
        self.layers: list[Layer] = []
        self.tensor, self.shape = "input", input_shape

    def add(self, name: str, op: str, out_shape: tuple[int, ...], inputs=None, **kw) -> str:
        inputs = inputs or (self.tensor,)
        self.layers.append(Layer(name, op, tuple(inputs), name, self.shape, out_shape, **kw))
        self.tensor, self.shape = name, out_shape
        return name

    def conv(self, name: str, out_channels: int, kernel: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
             groups: int = 1, relu: bool = True) -> str:
        rank = len(self.shape) - 1
        kernel, stride = per_dim(kernel, rank), per_dim(stride, rank)
        spatial = tuple(_conv_out(d, s) for d, s in zip(self.shape[1:], stride))
        return self.add(name, "conv", (out_channels, *spatial), kernel=kernel, stride=stride,
                        groups=groups, relu=relu)

    def block(self, i: int, b: Block) -> None:
        x, x_shape = self.tensor, self.shape
        name, cin = f"b{i}", self.shape[0]
        if b.type == "conv":
            self.conv(f"{name}.conv", b.channels, b.kernel, b.stride)
        elif b.type == "dsconv":
            self.conv(f"{name}.dw", cin, b.kernel, b.stride, groups=cin)
            self.conv(f"{name}.pw", b.channels, 1)
        else:  # mbconv: expand (if any), depthwise, linear projection
            hidden = cin * b.expansion
            if b.expansion > 1:
                self.conv(f"{name}.expand", hidden, 1)
            self.conv(f"{name}.dw", hidden, b.kernel, b.stride, groups=hidden)
            self.conv(f"{name}.project", b.channels, 1, relu=False)
        if b.skip and self.shape == x_shape:
            self.add(f"{name}.add", "add", self.shape, inputs=(x, self.tensor))
        if b.pool:
            spatial = tuple(_conv_out(d, 2) for d in self.shape[1:])
            rank = len(spatial)
            self.add(f"{name}.pool", "maxpool", (self.shape[0], *spatial), kernel=(2,) * rank, stride=(2,) * rank)


def plan(genome: Genome) -> LayerPlan:
    """The operator plan of a genome: body blocks, global average pooling, linear head."""
    builder = _PlanBuilder(genome.frontend.input_shape)
    for i, block in enumerate(genome.blocks):
        builder.block(i, block)
    builder.add("gap", "gap", (builder.shape[0],))
    builder.add("classifier", "linear", (genome.n_classes,))
    return LayerPlan(builder.input_shape, tuple(builder.layers))


class _Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def _module(layer: Layer, rank: int) -> nn.Module:
    conv, pool, bn = ((nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d) if rank == 2
                      else (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d))
    if layer.op == "conv":
        padding = layer.padding()
        even = any(before != after for before, after in padding)
        mods = [conv(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                     padding=0 if even else tuple(before for before, _ in padding), groups=layer.groups,
                     bias=False), bn(layer.out_channels)]
        if even:  # uneven "same" padding: torch's padding= pads both sides alike
            flat = [p for before_after in reversed(padding) for p in before_after]  # last dimension first
            mods.insert(0, nn.ZeroPad2d(flat) if rank == 2 else nn.ConstantPad1d(tuple(flat), 0.0))
        if layer.relu:
            mods.append(nn.ReLU(inplace=True))
        return nn.Sequential(*mods)
    if layer.op == "maxpool":
        return pool(layer.kernel, layer.stride, ceil_mode=True)
    if layer.op == "add":
        return _Add()
    if layer.op == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1) if rank == 2 else nn.AdaptiveAvgPool1d(1),
                             nn.Flatten(1))
    if layer.op == "linear":
        return nn.Linear(layer.in_channels, layer.out_channels)
    raise ValueError(f"unknown operator {layer.op!r} in layer {layer.name}")


class AudioNet(nn.Module):
    """Executes a :class:`LayerPlan`. Input: ``[batch, *plan.input_shape]``; output: logits."""

    def __init__(self, layer_plan: LayerPlan):
        super().__init__()
        self.plan = layer_plan
        self.ops = nn.ModuleDict({_key(l.name): _module(l, layer_plan.spatial_rank)
                                  for l in layer_plan.layers})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.plan.input_shape:
            raise ValueError(f"expected input of shape [batch, {', '.join(map(str, self.plan.input_shape))}],"
                             f" got {list(x.shape)}")
        tensors = {"input": x}
        for layer in self.plan.layers:
            tensors[layer.output] = self.ops[_key(layer.name)](*(tensors[i] for i in layer.inputs))
        return tensors[self.plan.layers[-1].output]


def _key(name: str) -> str:
    return name.replace(".", "_")


def build(genome: Genome) -> AudioNet:
    """Build the torch module of a genome."""
    return AudioNet(plan(genome))


# ---- baselines: the networks a practitioner would otherwise deploy ---------------------------------

WIDTHS = (0.25, 0.5, 0.75, 1.0)

# MobileNetV1 (Howard et al. 2017): stem conv then (channels, stride) depthwise-separable blocks.
_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# MobileNetV2 (Sandler et al. 2018): (expansion t, channels c, repeats n, first stride s).
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# DS-CNN (Zhang et al. 2017, "Hello Edge"; S is MLPerf Tiny's keyword-spotting reference): a 10x4
# (time x frequency) stem, then depthwise-separable 3x3 blocks, each ``(filters, stem stride (freq,
# time), strides of the blocks)``; in the (freq, time) layout of the 2-D log-mel the stem is 4x10.
_DS_CNN = {"s": (64, (2, 2), (1, 1, 1, 1)), "m": (172, (1, 2), (2, 1, 1, 1)), "l": (276, (1, 2), (2, 1, 1, 1, 1))}


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels as the MobileNet reference implementations do."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_width(width: float) -> None:
    if not 0 < width <= 4:
        raise ValueError(f"width multiplier must be in (0, 4], got {width}")


def mobilenet_v1(width: float = 1.0, frontend: FrontEnd = FrontEnd(), n_classes: int = 10) -> Genome:
    """MobileNetV1 with a width multiplier, for the given log-mel front end."""
    _check_width(width)
    blocks = [Block("conv", _make_divisible(32 * width), 3, 2)]
    blocks += [Block("dsconv", _make_divisible(c * width), 3, s) for c, s in _V1_BLOCKS]
    return Genome(frontend, tuple(blocks), n_classes)


def mobilenet_v2(width: float = 1.0, frontend: FrontEnd = FrontEnd(), n_classes: int = 10) -> Genome:
    """MobileNetV2 with a width multiplier, for the given log-mel front end."""
    _check_width(width)
    blocks = [Block("conv", _make_divisible(32 * width), 3, 2)]
    for t, c, n, s in _V2_STAGES:
        for i in range(n):
            blocks.append(Block("mbconv", _make_divisible(c * width), 3, s if i == 0 else 1,
                                expansion=t, skip=True))
    blocks.append(Block("conv", _make_divisible(1280 * max(1.0, width)), 1, 1))
    return Genome(frontend, tuple(blocks), n_classes)


def ds_cnn(size: str, width: float = 1.0, frontend: FrontEnd | None = None, n_classes: int = 12) -> Genome:
    """DS-CNN ``s``, ``m`` or ``l`` of "Hello Edge" with a width multiplier (default front end: its own,
    :func:`ds_cnn_frontend`)."""
    _check_width(width)
    filters, stem_stride, strides = _DS_CNN[size]
    channels = max(8, round(filters * width))
    blocks = [Block("conv", channels, (4, 10), stem_stride)]
    blocks += [Block("dsconv", channels, 3, s) for s in strides]
    return Genome(frontend or ds_cnn_frontend(), tuple(blocks), n_classes)


def ds_cnn_frontend(sample_rate: int = 16000, clip_ms: int = 1000) -> FrontEnd:
    """DS-CNN's input: 40 ms windows every 20 ms, 10 bands (log-mel here, where the paper and MLPerf
    Tiny take 10 MFCC of 40 mel bands), so its size and cost are those of the published networks."""
    return FrontEnd(sample_rate, clip_ms, n_mels=10, win_ms=40, hop_ms=20, representation="2d")


@dataclass(frozen=True)
class Baseline:
    """A named baseline network: ``make(width, frontend, n_classes)``; ``frontend(sample_rate,
    clip_ms)`` is its own input, ``None`` to take the search space's richest 2-D front end."""

    make: Callable[[float, FrontEnd, int], Genome]
    reference: str
    frontend: Callable[[int, int], FrontEnd] | None = None


BASELINES = {
    "mobilenet_v1": Baseline(mobilenet_v1, "Howard et al. 2017"),
    "mobilenet_v2": Baseline(mobilenet_v2, "Sandler et al. 2018"),
    **{f"ds_cnn_{size}": Baseline(partial(ds_cnn, size), 'Zhang et al. 2017, "Hello Edge"'
                                  + ("; MLPerf Tiny's keyword-spotting reference" if size == "s" else ""),
                                  ds_cnn_frontend) for size in _DS_CNN},
}


def baseline(name: str, width: float = 1.0, frontend: FrontEnd | None = None, n_classes: int = 10) -> Genome:
    """A baseline genome by name (:data:`BASELINES`), on ``frontend`` (default: its own, or the
    default front end)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    entry = BASELINES[name]
    if frontend is None:
        frontend = entry.frontend() if entry.frontend is not None else FrontEnd()
    return entry.make(width, frontend, n_classes)
