"""Host speed: how fast this host runs now against when an energy model's table was measured.

A shared or virtual host's speed drifts: on the development VM the same networks measured 30% faster
on one day than on the day of the packaged table, uniformly across networks. An energy model fitted
on that table then errs by the drift on every network, however well it generalises, and a check on
fresh networks measures the host's state rather than the model. The baselines that every measured
table holds (:func:`~moo_audio.energy.bundle.design` adds them) serve as *calibration networks*:
measured beside the networks of interest, the ratio of their energies now to the model's predictions
for them (networks it was fitted on) is the host's speed factor, and predictions times the factor are
the model's predictions for the host as it is now. The factor changes no ranking, so a search does not
need it; a check of a model against fresh measurements, or a comparison of predicted and measured
energies of a search's picks, does.

Written here because no library separates a runtime's drift from a latency model's error: nn-Meter
and the like measure on dedicated devices, whose speed does not drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

from moo_audio.energy.bundle import design
from moo_audio.energy.measure import measure_genomes
from moo_audio.energy.profiles import DeviceProfile
from moo_audio.energy.proxy import EnergyModel
from moo_audio.energy.records import Measurement, genome_id
from moo_audio.nets import WIDTHS
from moo_audio.problem_files import shipped_spaces
from moo_audio.space import Genome, SearchSpace

#: widths of a quick calibration: the narrowest of each baseline, the fastest to measure
QUICK_WIDTHS = (0.25,)


def calibration_genomes(space: SearchSpace | Sequence[SearchSpace],
                        widths: Sequence[float] = WIDTHS) -> dict[str, Genome]:
    """The calibration networks of a table measured over ``space`` (the first space's front end
    and classes): every baseline at each of ``widths`` (of :data:`~moo_audio.nets.WIDTHS`), keyed as in
    the table (``<name>_xW``)."""
    unknown = sorted(set(widths) - set(WIDTHS))
    if unknown or not widths:
        raise ValueError(f"calibration widths must be some of {WIDTHS}, got {tuple(widths)}")
    suffixes = tuple(f"_x{w:.2f}" for w in widths)
    return {k: g for k, g in design(0, space, baselines=True).items() if k.endswith(suffixes)}


@dataclass(frozen=True)
class HostSpeed:
    """Measured over predicted energy of each calibration network (``ratios``); ``factor`` is their
    geometric mean, ``interval`` its 95% bootstrap interval over the networks."""

    ratios: Mapping[str, float]
    factor: float
    interval: tuple[float, float]

    def apply(self, predicted_mj: np.ndarray) -> np.ndarray:
        """Predictions for the host as it is now."""
        return np.asarray(predicted_mj, dtype=float) * self.factor

    def median_error(self, measured_mj, predicted_mj) -> float:
        """Median relative error of the predictions, at the host's speed now, against measurements."""
        return float(np.median(np.abs(np.asarray(measured_mj, dtype=float) / self.apply(predicted_mj) - 1)))

    def __str__(self) -> str:
        return (f"host speed factor {self.factor:.3f} [{self.interval[0]:.3f}, {self.interval[1]:.3f}] "
                f"(measured / predicted, geometric mean of {len(self.ratios)} calibration networks)")


def host_speed(records: Sequence[Measurement], model: EnergyModel) -> HostSpeed:
    """The :class:`HostSpeed` of calibration networks' ``records`` (measured now) against ``model``.

    Needs at least 3 records (a :class:`Measurement`'s energy is positive by construction).
    """
    if len(records) < 3:
        raise ValueError(f"a host speed needs at least 3 measured calibration networks, got {len(records)}")
    measured = np.array([r.energy_mj for r in records], dtype=float)
    predicted = np.asarray(model.predict_mj([r.genome for r in records]), dtype=float)
    log_ratios = np.log(measured / predicted)
    ci = bootstrap((log_ratios,), np.mean, confidence_level=0.95, n_resamples=2000,
                   random_state=0).confidence_interval
    return HostSpeed({r.model_id: float(q) for r, q in zip(records, np.exp(log_ratios))},
                     float(np.exp(log_ratios.mean())), (float(np.exp(ci.low)), float(np.exp(ci.high))))


def measure_calibrated(genomes: Sequence[Genome], model: EnergyModel | None, profile: DeviceProfile, *,
                       widths: Sequence[float] = WIDTHS, **kwargs) -> tuple[dict[str, Measurement], HostSpeed | None]:
    """Measure ``genomes`` on this host (by :func:`~moo_audio.energy.records.genome_id`, each once) and,
    when ``model`` is a packaged model (whose table holds the calibration networks of the shipped
    spaces), its calibration networks at ``widths`` in the same passes.

    Returns the genomes' records by id and the host's speed against ``model`` (``None`` for other
    models or none). ``kwargs`` go to :func:`~moo_audio.energy.measure.measure_genomes`.
    """
    targets = {genome_id(g): g for g in genomes}
    calibration = calibration_genomes(list(shipped_spaces().values()), widths) \
        if getattr(model, "packaged", None) else {}
    records = {r.model_id: r for r in measure_genomes({**targets, **calibration}, profile, **kwargs)}
    speed = host_speed([records[k] for k in calibration], model) if calibration else None
    return {k: records[k] for k in targets}, speed
