"""Per-network features for energy models, from the analytic costs of :mod:`moo_audio.costs`.

One fixed, named list (:data:`FEATURE_NAMES`) describes any genome or baseline, whatever its
depth: totals and counts per operator kind rather than per-layer slots. Byte figures are at
int8 (a float32 model's are four times larger, which a tree model does not care about).
Convolutions are *pointwise* (1x1, not grouped), *depthwise* (grouped) or *full* (the rest).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from moo_audio.costs import LayerCost, network_cost
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


def _conv_kind(cost: LayerCost) -> str:
    layer = cost.layer
    if layer.groups > 1:
        return "depthwise"
    return "pointwise" if layer.kernel == 1 else "full"


def feature_dict(genome: Genome) -> dict[str, float]:
    """The features of one genome by name, in :data:`FEATURE_NAMES` order."""
    cost = network_cost(genome)
    convs = [c for c in cost.layers if c.layer.op == "conv"]
    kinds = {kind: [c for c in convs if _conv_kind(c) == kind] for kind in ("full", "pointwise", "depthwise")}
    ops = [c.layer.op for c in cost.layers]
    fe = genome.frontend
    kernels = [c.layer.kernel for c in convs] or [1]
    values = {
        "macs": cost.macs,
        **{f"macs_conv_{kind}": sum(c.macs for c in layers) for kind, layers in kinds.items()},
        "macs_linear": sum(c.macs for c in cost.layers if c.layer.op == "linear"),
        "elementwise_ops": sum(c.elementwise_ops for c in cost.layers),
        "frontend_macs": cost.frontend.macs,
        "params": cost.params,
        "weight_bytes": cost.weight_bytes("int8"),
        "activation_bytes": cost.activation_traffic_bytes("int8"),
        "peak_activation_bytes": cost.peak_activation_bytes("int8"),
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
        "n_strided": sum(c.layer.stride > 1 for c in cost.layers),
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
