"""Per-network features for energy models, from the analytic costs of :mod:`moo_audio.costs`.

One fixed, named list (:data:`FEATURE_NAMES`) describes any genome or baseline, whatever its
depth: totals and counts per operator kind rather than per-layer slots. Byte figures are at
int8 (a float32 model's are four times larger, which a tree model does not care about).
Convolutions are *pointwise* (1x1, not grouped), *depthwise* (grouped) or *full* (the rest).

:func:`operator_matrix` gives a second, additive description for the energy model's linear base
(:mod:`moo_audio.energy.forest`): per operator kind (convolutions by kind and by 1-D/2-D), sums
of per-operator terms (count, MACs, MACs in whole SIMD lanes, MACs of the channels left over
beyond whole blocks of 16 and of 4, unfolded elements, positions, elements in and out;
:func:`operator_terms`), plus a constant (the per-call overhead). Latency is
close to a sum over operators of such terms with non-negative weights, which a tree model cannot
extrapolate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from moo_audio.costs import DEFAULT_DTYPE, LayerCost, network_cost
from moo_audio.space import Genome

FEATURE_NAMES = (
    "macs", "macs_conv_full", "macs_conv_pointwise", "macs_conv_depthwise", "macs_linear",
    "elementwise_ops", "frontend_macs",
    "params", "weight_bytes", "activation_bytes", "peak_activation_bytes",
    "n_layers", "n_conv_full", "n_conv_pointwise", "n_conv_depthwise", "n_maxpool", "n_add",
    "widest_layer_channels", "max_layer_macs", "first_layer_macs", "last_conv_channels",
    "kernel_mean", "kernel_max", "n_strided",
    "input_frames", "input_mel_bins", "input_elements", "representation_1d",
)


#: operator kinds of :func:`operator_matrix`: convolutions by kind and rank, then the rest. A
#: convolution with a single input channel (the first layer on a 2-D spectrogram), with a single
#: output channel, or depthwise over fewer than :data:`NARROW` channels is a kind of its own:
#: runtimes run these far less efficiently per MAC than wider ones (onnxruntime's int8 kernels do)
OPERATOR_KINDS = tuple(f"conv_{kind}_{rank}" for kind in ("full", "pointwise", "depthwise", "depthwise_narrow",
                                                           "in1", "out1") for rank in ("1d", "2d")) \
    + ("maxpool", "add", "gap", "linear")
#: per-kind terms of :func:`operator_matrix` (see :func:`operator_terms`)
#: SIMD width, in int8 lanes, to which ``lane_macs`` round the output channels up
LANES = 16
#: channel blocks whose leftover channels each get a ``tail<block>_macs`` term: kernels that compute
#: whole blocks of channels finish the rest in narrower or scalar loops, slower per MAC (measured on
#: an Intel Xeon: networks with a tenth or more of their MACs in 2-D depthwise layers of 8 + 16k
#: channels ran 15% slower than the terms without tails predicted, 4% on an AMD EPYC;
#: ``benchmarks/energy_terms.py``)
TAIL_BLOCKS = (LANES, 4)
#: the per-kind terms of the leftover channels
TAIL_TERMS = tuple(f"tail{block}_macs" for block in TAIL_BLOCKS)
OPERATOR_TERMS = ("count", "macs", "lane_macs", *TAIL_TERMS, "im2col_elements", "positions", "in_elements",
                  "out_elements")
#: column names of :func:`operator_matrix`
OPERATOR_TERM_NAMES = ("constant",) + tuple(f"{kind}_{term}" for kind in OPERATOR_KINDS for term in OPERATOR_TERMS)
#: the linear bases of :class:`~moo_audio.energy.forest.ForestEnergyModel` by name -> the operator
#: terms each is fitted on; ``None``: no base (the forest alone)
BASES: dict[str | None, tuple[str, ...]] = {
    None: (),
    "operators": tuple(t for t in OPERATOR_TERM_NAMES if not t.endswith(TAIL_TERMS)),
    "operators+tails": OPERATOR_TERM_NAMES,
}
DEFAULT_BASE = "operators+tails"
#: depthwise convolutions over fewer channels are ``depthwise_narrow``
NARROW = 8


def _conv_kind(cost: LayerCost) -> str:
    layer = cost.layer
    if layer.groups > 1:
        return "depthwise"
    return "pointwise" if layer.taps == 1 else "full"


def operator_kind(cost: LayerCost) -> str:
    """The :data:`OPERATOR_KINDS` entry of one layer."""
    layer = cost.layer
    if layer.op != "conv":
        return layer.op
    rank = "1d" if len(layer.out_shape) == 2 else "2d"
    if layer.out_channels == 1:
        return f"conv_out1_{rank}"
    if layer.in_channels == 1:
        return f"conv_in1_{rank}"
    kind = _conv_kind(cost)
    narrow = kind == "depthwise" and layer.out_channels < NARROW
    return f"conv_{kind}_narrow_{rank}" if narrow else f"conv_{kind}_{rank}"


def _operator_values(cost: LayerCost) -> tuple[int, ...]:
    """One operator's :data:`OPERATOR_TERMS`."""
    layer = cost.layer
    positions = math.prod(layer.out_shape[1:])
    lanes = -(-layer.out_channels // LANES) * LANES
    per_channel = cost.macs // layer.out_channels
    tails = tuple(per_channel * (layer.out_channels % block) for block in TAIL_BLOCKS)
    im2col = per_channel if layer.op == "conv" and layer.taps > 1 and layer.groups == 1 else 0
    return (1, cost.macs, per_channel * lanes, *tails, im2col, positions, math.prod(layer.in_shape),
            math.prod(layer.out_shape))


def operator_terms(genome: Genome) -> dict[str, float]:
    """The additive operator terms of one genome by name, in :data:`OPERATOR_TERM_NAMES` order.

    Per operator kind: ``count`` operators; their ``macs``; ``lane_macs``, the MACs with the
    output channels rounded up to :data:`LANES` (the work of SIMD kernels that compute whole
    blocks of channels); ``tail16_macs`` and ``tail4_macs``, the MACs of the output channels left
    over beyond whole blocks of 16 and of 4 (:data:`TAIL_BLOCKS`); ``im2col_elements``, the
    elements a full convolution unfolds
    (positions x input channels x kernel taps); output ``positions``; and the ``in_elements``
    and ``out_elements`` read and written. ``constant`` is 1 (the per-call overhead).
    """
    terms = dict.fromkeys(OPERATOR_TERM_NAMES, 0.0)
    terms["constant"] = 1.0
    for cost in network_cost(genome).layers:
        kind = operator_kind(cost)
        if kind not in OPERATOR_KINDS:
            raise ValueError(f"layer {cost.layer.name}: operator kind {kind!r} is not one of {OPERATOR_KINDS}")
        for term, value in zip(OPERATOR_TERMS, _operator_values(cost)):
            terms[f"{kind}_{term}"] += value
    return terms


def operator_matrix(genomes: Sequence[Genome]) -> np.ndarray:
    """Operator terms of many genomes, shape ``(len(genomes), len(OPERATOR_TERM_NAMES))``."""
    return np.array([list(operator_terms(g).values()) for g in genomes], dtype=float).reshape(
        len(genomes), len(OPERATOR_TERM_NAMES))


def feature_dict(genome: Genome) -> dict[str, float]:
    """The features of one genome by name, in :data:`FEATURE_NAMES` order."""
    cost = network_cost(genome)
    convs = [c for c in cost.layers if c.layer.op == "conv"]
    kinds = {kind: [c for c in convs if _conv_kind(c) == kind] for kind in ("full", "pointwise", "depthwise")}
    ops = [c.layer.op for c in cost.layers]
    fe = genome.frontend
    kernels = [max(c.layer.kernel) for c in convs] or [1]  # a square kernel's side, a rectangle's longer one
    values = {
        "macs": cost.macs,
        **{f"macs_conv_{kind}": sum(c.macs for c in layers) for kind, layers in kinds.items()},
        "macs_linear": sum(c.macs for c in cost.layers if c.layer.op == "linear"),
        "elementwise_ops": sum(c.elementwise_ops for c in cost.layers),
        "frontend_macs": cost.frontend.macs,
        "params": cost.params,
        "weight_bytes": cost.weight_bytes(DEFAULT_DTYPE),
        "activation_bytes": cost.activation_traffic_bytes(DEFAULT_DTYPE),
        "peak_activation_bytes": cost.peak_activation_bytes(DEFAULT_DTYPE),
        "n_layers": len(cost.layers),
        **{f"n_conv_{kind}": len(layers) for kind, layers in kinds.items()},
        "n_maxpool": ops.count("maxpool"),
        "n_add": ops.count("add"),
        "widest_layer_channels": max(c.layer.out_channels for c in cost.layers),
        "max_layer_macs": max(c.macs for c in cost.layers),
        "first_layer_macs": cost.first_layer_macs,
        "last_conv_channels": convs[-1].layer.out_channels if convs else 0,
        "kernel_mean": float(np.mean(kernels)),
        "kernel_max": max(kernels),
        "n_strided": sum(max(c.layer.stride, default=1) > 1 for c in cost.layers),
        "input_frames": fe.n_frames,
        "input_mel_bins": fe.n_mels,
        "input_elements": math.prod(fe.input_shape),
        "representation_1d": float(fe.representation == "1d"),
    }
    return {name: float(values[name]) for name in FEATURE_NAMES}


def feature_matrix(genomes: Sequence[Genome]) -> np.ndarray:
    """Features of many genomes, shape ``(len(genomes), len(FEATURE_NAMES))``."""
    return np.array([list(feature_dict(g).values()) for g in genomes], dtype=float).reshape(
        len(genomes), len(FEATURE_NAMES))
