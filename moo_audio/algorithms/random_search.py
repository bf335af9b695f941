"""Random search: the baseline every optimizer must beat."""

from __future__ import annotations

from pymoo.core.population import Population

from moo_audio.algorithms._base import UnitCubeAlgorithm


class RandomSearch(UnitCubeAlgorithm):
    """Samples of the unit cube (``sampling``, default uniform), decoded (and repaired) into candidates.

    Args:
        batch_size: candidates per iteration.
        sampling, repair: pymoo operators (see :class:`~moo_audio.algorithms._base.UnitCubeAlgorithm`).
    """

    def __init__(self, batch_size: int = 10, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def _initialize_infill(self) -> Population:
        return self._infill()

    def _infill(self) -> Population:
        return self._novel(self._sample(self.batch_size))[0]

    def _initialize_advance(self, infills=None, **kwargs) -> None:
        self.pop = self.evaluated

    def _advance(self, infills=None, **kwargs) -> None:
        self.pop = self.evaluated
