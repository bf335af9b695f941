"""Analytic energy proxy, used until energy measured on hardware is available.

Energy per inference = (network MACs + front-end MACs) x energy per MAC
                       + bytes moved x energy per byte,
where bytes moved are the deployed weights (read once per inference) plus every operator's
input and output activations (read and written once). The default figures (45 pJ per MAC,
20 pJ per byte) put MobileNetV2 on a 224x224 image (about 300 M MACs) at about 14 mJ, the figure
the reference work measured on a phone's big CPU core; they are a proxy, not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from moo_audio.costs import DEFAULT_DTYPE, network_cost
from moo_audio.space import Genome


@runtime_checkable
class EnergyModel(Protocol):
    """Predicts energy per inference in millijoules."""

    name: str

    def predict_mj(self, genomes: Sequence[Genome]) -> np.ndarray: ...


class AnalyticEnergyModel:
    """Energy from MACs and memory traffic.

    Args:
        pj_per_mac: energy of one multiply-accumulate, picojoules.
        pj_per_byte: energy of moving one byte to or from memory, picojoules.
        dtype: deployed dtype (``int8`` or ``float32``), sets the bytes moved.
    """

    def __init__(self, pj_per_mac: float = 45.0, pj_per_byte: float = 20.0, dtype: str = DEFAULT_DTYPE):
        if not (pj_per_mac > 0 and pj_per_byte >= 0 and math.isfinite(pj_per_mac + pj_per_byte)):
            raise ValueError("pj_per_mac must be > 0 and pj_per_byte >= 0 (finite)")
        self.pj_per_mac, self.pj_per_byte, self.dtype = pj_per_mac, pj_per_byte, dtype
        self.name = f"analytic-proxy({pj_per_mac:g} pJ/MAC, {pj_per_byte:g} pJ/byte, {dtype})"

    def predict_mj(self, genomes: Sequence[Genome]) -> np.ndarray:
        out = np.empty(len(genomes))
        for i, genome in enumerate(genomes):
            cost = network_cost(genome)
            traffic = cost.weight_bytes(self.dtype) + cost.activation_traffic_bytes(self.dtype)
            macs = cost.macs + cost.frontend.macs
            out[i] = (macs * self.pj_per_mac + traffic * self.pj_per_byte) * 1e-9
        return out
