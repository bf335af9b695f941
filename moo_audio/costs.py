"""Analytic costs of a network: MACs, parameters, weight memory and peak activation memory.

Counts come from the same :class:`~moo_audio.nets.LayerPlan` the torch builder uses.

* **MACs** count convolutions and the classifier (multiply-accumulates); pooling, additions and
  activations are element-wise and reported separately as ``elementwise_ops``.
* **params** equal the torch module's trainable parameters (batch-norm scale and shift included).
* **weight memory** is what a deployed model stores: batch norm folded into each convolution,
  so every convolution has a bias; weights at the chosen dtype, biases as int32 for int8
  (TFLite's convention) and float32 otherwise.
* **peak activation memory** is the arena a TFLite-Micro-style planner needs: at every operator
  the inputs, the output and every tensor still needed later (residual branches) are alive;
  the peak is the largest such sum.
* the **front end** (STFT + mel filterbank + log) is costed separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from moo_audio.nets import Layer, LayerPlan, plan
from moo_audio.space import FrontEnd, Genome

DTYPE_BYTES = {"int8": 1, "float32": 4}
DTYPES = tuple(DTYPE_BYTES)
#: what deployed always-on models run in: the memory objective, the energy measurements and exports
DEFAULT_DTYPE = "int8"


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _check_dtype(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class LayerCost:
    """Costs of one operator. ``live_elements`` is the arena content while it runs."""

    layer: Layer
    macs: int
    params: int
    weights: int          # deployed weight elements (BN folded)
    biases: int           # deployed bias elements (BN folded)
    elementwise_ops: int
    live_elements: int

    def weight_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        bias_bytes = 4  # int32 biases for int8 models, float32 otherwise
        return self.weights * _check_dtype(dtype) + self.biases * bias_bytes

    def live_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        return self.live_elements * _check_dtype(dtype)


def _layer_cost(layer: Layer) -> tuple[int, int, int, int, int]:
    """(macs, params, weights, biases, elementwise_ops) of one operator."""
    out = _numel(layer.out_shape)
    if layer.op == "conv":
        fan_in = layer.in_channels // layer.groups * layer.taps
        weights = layer.out_channels * fan_in
        # conv without bias + batch norm (scale, shift) in torch; folded conv + bias deployed
        return out * fan_in, weights + 2 * layer.out_channels, weights, layer.out_channels, \
            out if layer.relu else 0
    if layer.op == "linear":
        weights = layer.in_channels * layer.out_channels
        return weights, weights + layer.out_channels, weights, layer.out_channels, 0
    if layer.op == "maxpool":
        return 0, 0, 0, 0, out * layer.taps
    if layer.op in ("add", "gap"):
        return 0, 0, 0, 0, _numel(layer.in_shape) if layer.op == "gap" else out
    raise ValueError(f"unknown operator {layer.op!r} in layer {layer.name}")


def _live_elements(layer_plan: LayerPlan) -> list[int]:
    """Arena elements alive while each operator runs (inputs, output, tensors needed later)."""
    sizes = {"input": _numel(layer_plan.input_shape)}
    last_use = {"input": 0}
    for i, layer in enumerate(layer_plan.layers):
        sizes[layer.output] = _numel(layer.out_shape)
        last_use[layer.output] = i
        for name in layer.inputs:
            last_use[name] = i
    produced_at = {"input": -1} | {l.output: i for i, l in enumerate(layer_plan.layers)}
    return [sum(size for name, size in sizes.items() if produced_at[name] <= i <= last_use[name])
            for i in range(len(layer_plan.layers))]


@dataclass(frozen=True)
class FrontEndCost:
    """Cost of turning a clip into a log-mel (STFT + mel filterbank + log)."""

    macs: int
    buffer_elements: int  # audio clip + one frame's spectrum + the log-mel output

    def buffer_bytes(self, dtype: str = "float32") -> int:
        return self.buffer_elements * _check_dtype(dtype)


@lru_cache(maxsize=256)
def frontend_cost(frontend: FrontEnd) -> FrontEndCost:
    """MACs of the front end per clip.

    Per frame: windowing (n_fft), a real FFT counted as ``2 n log2 n`` real MACs for
    ``n = n_fft``, the power spectrum (2 per bin), the non-zero mel filterbank weights (from
    torchaudio's own filterbank) and the log (1 per mel bin).
    """
    from moo_audio.torch_pair import import_torchaudio  # local: torchaudio import is slow

    melscale_fbanks = import_torchaudio().functional.melscale_fbanks
    n_fft, bins = frontend.n_fft, frontend.n_fft // 2 + 1
    fbank = melscale_fbanks(bins, 0.0, frontend.sample_rate / 2, frontend.n_mels, frontend.sample_rate)
    per_frame = (n_fft + int(2 * n_fft * math.log2(n_fft)) + 2 * bins
                 + int((fbank != 0).sum()) + frontend.n_mels)
    buffer = frontend.n_samples + 2 * bins + frontend.n_mels * frontend.n_frames
    return FrontEndCost(per_frame * frontend.n_frames, buffer)


@dataclass(frozen=True)
class NetworkCost:
    """Per-layer and total costs of a genome's network."""

    genome: Genome
    layers: tuple[LayerCost, ...]
    frontend: FrontEndCost = field(repr=False)

    @property
    def macs(self) -> int:
        return sum(l.macs for l in self.layers)

    @property
    def params(self) -> int:
        return sum(l.params for l in self.layers)

    def weight_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        return sum(l.weight_bytes(dtype) for l in self.layers)

    def peak_activation_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        return max(l.live_bytes(dtype) for l in self.layers)

    def activation_traffic_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        """Bytes of activations read and written once by every operator (inputs + output)."""
        return _check_dtype(dtype) * sum(
            math.prod(c.layer.in_shape) * len(c.layer.inputs) + math.prod(c.layer.out_shape)
            for c in self.layers)

    def memory_bytes(self, dtype: str = DEFAULT_DTYPE) -> int:
        """Weights plus the peak activation arena: the memory objective."""
        return self.weight_bytes(dtype) + self.peak_activation_bytes(dtype)

    @property
    def first_layer_macs(self) -> int:
        return self.layers[0].macs

    def summary(self) -> dict[str, float]:
        """Totals as a flat dict (MACs, params, memory per dtype, front end)."""
        out: dict[str, float] = {"macs": self.macs, "params": self.params,
                                 "first_layer_mac_share": self.first_layer_macs / max(self.macs, 1),
                                 "frontend_macs": self.frontend.macs}
        for dtype in DTYPE_BYTES:
            out[f"weights_kb_{dtype}"] = self.weight_bytes(dtype) / 1024
            out[f"peak_activation_kb_{dtype}"] = self.peak_activation_bytes(dtype) / 1024
            out[f"memory_kb_{dtype}"] = self.memory_bytes(dtype) / 1024
        return out

    def table(self, dtype: str = DEFAULT_DTYPE) -> str:
        """Per-layer breakdown: shapes, MACs and their share, weights and the live arena."""
        total_macs, peak = max(self.macs, 1), self.peak_activation_bytes(dtype)
        header = (f"{'layer':<14}{'op':<8}{'in':>16}{'out':>16}{'k/s/g':>10}{'MACs':>12}{'MAC%':>7}"
                  f"{'params':>10}{'weights KB':>11}{'arena KB':>10}{'of peak':>8}")
        rows = [header, "-" * len(header)]
        for c in self.layers:
            l = c.layer
            rows.append(
                f"{l.name:<14}{l.op:<8}{'x'.join(map(str, l.in_shape)):>16}"
                f"{'x'.join(map(str, l.out_shape)):>16}{_kernel_text(l):>10}"
                f"{c.macs:>12,}{100 * c.macs / total_macs:>6.1f}%{c.params:>10,}"
                f"{c.weight_bytes(dtype) / 1024:>11.2f}{c.live_bytes(dtype) / 1024:>10.2f}"
                f"{100 * c.live_bytes(dtype) / peak:>7.0f}%")
        rows.append("-" * len(header))
        rows.append(f"total: {self.macs:,} MACs, {self.params:,} params, weights "
                    f"{self.weight_bytes(dtype) / 1024:.1f} KB + peak arena "
                    f"{peak / 1024:.1f} KB = {self.memory_bytes(dtype) / 1024:.1f} KB ({dtype}); "
                    f"front end {self.frontend.macs:,} MACs")
        return "\n".join(rows)


def _kernel_text(layer: Layer) -> str:
    """``kernel/stride/groups`` of a layer, ``3/2/1`` for a square kernel, ``4x10/1x2/1`` else."""
    def dims(values: tuple[int, ...]) -> str:
        return str(values[0]) if len(set(values)) <= 1 and values else "x".join(map(str, values))

    return f"{dims(layer.kernel) or 1}/{dims(layer.stride) or 1}/{layer.groups}"


@lru_cache(maxsize=4096)
def network_cost(genome: Genome) -> NetworkCost:
    """Analytic costs of a genome's network (memoised: genomes and costs are immutable, and an
    evaluation asks for them several times: energy model, memory, MACs, parameters, features)."""
    layer_plan = plan(genome)
    live = _live_elements(layer_plan)
    layers = tuple(LayerCost(l, *_layer_cost(l), live_elements=live[i])
                   for i, l in enumerate(layer_plan.layers))
    return NetworkCost(genome, layers, frontend_cost(genome.frontend))
