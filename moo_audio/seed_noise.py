"""Seed noise of real trainings, sampled: what makes a surrogate answer as a training run does.

Training one architecture twice with two seeds gives two error curves; a surrogate's model predicts
their mean. :class:`SeedNoise` keeps, for every architecture trained with several seeds, each run's
deviation from its architecture's mean curve, and adds to a predicted curve the deviation of a real
run of an architecture of about the same error. Sampling real deviations, rather than a fitted
distribution, keeps what the measurements show: noise that grows with the error, skewed (a bad seed
costs more than a good one gains) and correlated across epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: repeated architectures needed to sample from (the seed-noise ceiling asks for as many)
MIN_ARCHITECTURES = 8


@dataclass(frozen=True)
class SeedNoise:
    """Single-run deviations from architecture means, indexed by the architectures' mean final error.

    Attributes:
        levels: mean final error of each repeated architecture, ascending.
        deviations: per architecture (in ``levels`` order), its runs' error curves minus their mean,
            scaled by ``sqrt(n / (n - 1))`` so that their spread is one run's, not one run's
            distance to an ``n``-run mean.
        neighbours: how many architectures nearest in error a prediction samples a deviation from.
    """

    levels: np.ndarray
    deviations: tuple[np.ndarray, ...]
    neighbours: int = 25

    @classmethod
    def from_runs(cls, runs: Sequence[np.ndarray], neighbours: int = 25) -> SeedNoise:
        """From each repeated architecture's run curves, an array ``(seeds, epochs)`` with ``seeds >= 2``
        (error after each epoch, all arrays as long as the surrogate's curves).

        Raises:
            ValueError: fewer than :data:`MIN_ARCHITECTURES` architectures, one with a single run, or
                curves of different lengths.
        """
        if len(runs) < MIN_ARCHITECTURES:
            raise ValueError(f"seed noise needs at least {MIN_ARCHITECTURES} architectures trained with several "
                             f"seeds, got {len(runs)}")
        runs = [np.asarray(r, dtype=float) for r in runs]
        if any(r.ndim != 2 or len(r) < 2 for r in runs):
            raise ValueError("each architecture needs an array (seeds >= 2, epochs) of run curves")
        if len({r.shape[1] for r in runs}) != 1:
            raise ValueError(f"run curves differ in length: {sorted({r.shape[1] for r in runs})} epochs")
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        means = [r.mean(axis=0) for r in runs]
        order = np.argsort([m[-1] for m in means], kind="stable")
        deviations = tuple((runs[i] - means[i]) * np.sqrt(len(runs[i]) / (len(runs[i]) - 1)) for i in order)
        return cls(levels=np.array([means[i][-1] for i in order]), deviations=deviations, neighbours=neighbours)

    @property
    def epochs(self) -> int:
        return self.deviations[0].shape[1]

    def sample(self, curves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy versions of predicted error curves ``(n, epochs)``: each plus the deviation of a random
        run of a random one of the ``neighbours`` architectures nearest in final error, kept in
        ``[0, 1]`` and non-increasing (the best epoch is restored, as in training)."""
        curves = np.asarray(curves, dtype=float)
        if curves.ndim != 2 or curves.shape[1] != self.epochs:
            raise ValueError(f"curves must be (n, {self.epochs}), got {curves.shape}")
        k = min(self.neighbours, len(self.levels))
        noisy = np.empty_like(curves)
        for i, curve in enumerate(curves):
            nearest = np.argsort(np.abs(self.levels - curve[-1]), kind="stable")[:k]
            runs = self.deviations[rng.choice(nearest)]
            noisy[i] = curve + runs[rng.integers(len(runs))]
        return np.minimum.accumulate(np.clip(noisy, 0.0, 1.0), axis=1)
