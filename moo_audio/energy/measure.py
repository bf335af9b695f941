"""Measure networks on this host: ONNX export, int8 quantization and onnxruntime timing.

A genome is built with random weights (latency does not depend on their values), exported to
ONNX (float32, batch 1, opset 17) and, for ``int8``, statically quantized by onnxruntime
(QDQ format, per-channel int8 weights, uint8 activations calibrated on random log-mel-shaped
inputs). onnxruntime runs it on the CPU, sequentially, on ``threads`` intra-op threads, in
interleaved passes until two passes agree (:class:`TimingSettings`): after a warm-up each pass
repeats the inference until the median latency is known to ``rel_ci`` or a time cap is reached,
and the latency is the minimum (or median) of all repeats. Energy per inference is read from the RAPL
counter when available (``counter``), else it is ``latency x profile.active_power_w``
(``power_x_time``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from scipy.stats import iqr
from scipy.stats.mstats import median_cihs

from moo_audio.costs import DEFAULT_DTYPE, DTYPES
from moo_audio.energy.profiles import (
    POWERCAP_ROOT,
    DeviceProfile,
    RaplCounter,
    hardware_fingerprint,
    resolve_method,
)
from moo_audio.energy.proxy import EnergyModel
from moo_audio.energy.records import Measurement, genome_id
from moo_audio.nets import AudioNet, build
from moo_audio.onnx_io import INPUT_NAME, RUNTIME, export, make_session
from moo_audio.space import Genome


def random_network(genome: Genome, seed: int = 0) -> AudioNet:
    """The genome's network in eval mode with random weights and batch-norm statistics.

    Fresh batch norms fold to identical zero biases, which the exporter deduplicates into
    shared tensors that the quantizer then leaves in float; random statistics also look more
    like a trained network's.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = build(genome).eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, 0.1)
                    m.running_mean.normal_(0.0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return net


def random_input(genome: Genome, seed: int = 0) -> np.ndarray:
    """One standard-normal batch of the genome's log-mel input shape, float32."""
    return np.random.default_rng(seed).standard_normal((1, *genome.frontend.input_shape), dtype=np.float32)


def export_onnx(genome: Genome, path: str | os.PathLike, dtype: str = "float32", *,
                seed: int = 0, calibration_batches: int = 4) -> Path:
    """Export the genome's network (random weights) to an ONNX file of the given dtype; int8 is
    calibrated on random log-mel-shaped inputs (latency does not depend on their values)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    calibration = (random_input(genome, s) for s in range(1, calibration_batches + 1))
    return export(random_network(genome, seed), genome.frontend.input_shape, path, dtype, calibration)


def export_tflite_int8(genome: Genome, path: str | os.PathLike, *, seed: int = 0,
                       calibration_batches: int = 8) -> Path:
    """The genome's network (random weights) as a fully-int8 ``.tflite`` file, calibrated on random
    log-mel-shaped inputs (the ``tflite`` extra; raises :class:`moo_audio.tflite_io.ConversionError`
    where the converter refuses the graph)."""
    from moo_audio.tflite_io import export_tflite

    calibration = [random_input(genome, s) for s in range(calibration_batches)]
    return export_tflite(random_network(genome, seed), genome.frontend.input_shape, path, calibration)


@dataclass(frozen=True)
class TimingSettings:
    """How long to time one model, and how its repeats are summarised.

    A model is timed in at least ``passes`` passes; :func:`time_models` interleaves them (every
    model's first pass, then every model's second, ...), so that a slow spell of a shared host falls
    on one pass of many models rather than on every repeat of one. In each pass, warm-up runs for
    ``warmup_s`` (at least two inferences); timed repeats then continue until at least ``min_s``
    and ``min_repeats`` are reached and the 95% confidence interval of the pass's median is within
    ``+/- rel_ci`` of it, or until ``max_s`` has passed (``max_s`` wins). The interval is checked
    every ``check_every_s``.

    ``statistic`` summarises all repeats of all passes: ``min`` (default) or ``median``.
    Interference on a host only ever adds time, so the minimum is the repeatable figure
    (``benchmarks/timing_noise.py``, docs/energy.md).

    A model's passes must *confirm* each other: its two lowest per-pass values (of ``statistic``)
    must agree within ``+/- confirm_rel``; until they do, the model gets another pass, up to
    ``max_passes``. On the development VM a pass is either at the model's floor or far above it,
    in spells of seconds that slow every model timed in them, so a figure is
    kept only once two passes reach it. So that a model's passes do not all fall in one such spell
    when few models are timed, a round of passes (one per unfinished model) lasts at least
    ``min_round_s``: a short round is followed by a pause. Each model keeps one onnxruntime
    session for all its passes; ``session_per_pass`` makes a new one per pass instead, which
    repeated worse on the development VM (``benchmarks/timing_noise.py``).
    """

    warmup_s: float = 0.05
    min_s: float = 0.1
    max_s: float = 0.4
    min_repeats: int = 10
    rel_ci: float = 0.01
    check_every_s: float = 0.05
    passes: int = 3
    statistic: str = "min"
    confirm_rel: float = 0.03
    max_passes: int = 8
    min_round_s: float = 2.0
    session_per_pass: bool = False

    def __post_init__(self):
        if not (self.warmup_s >= 0 and self.min_s >= 0 and self.max_s > 0 and self.check_every_s > 0):
            raise ValueError("timing settings need warmup_s >= 0, min_s >= 0, max_s > 0, check_every_s > 0")
        if self.min_repeats < 1 or not self.rel_ci > 0 or self.passes < 1:
            raise ValueError("timing settings need min_repeats >= 1, rel_ci > 0 and passes >= 1")
        if self.statistic not in ("min", "median"):
            raise ValueError(f"timing statistic must be 'min' or 'median', got {self.statistic!r}")
        if not (self.confirm_rel > 0 and self.max_passes >= self.passes and self.min_round_s >= 0):
            raise ValueError("timing settings need confirm_rel > 0, max_passes >= passes and min_round_s >= 0")


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one model; ``energy_j`` is the counter's total, if one was read."""

    latency_ms: float
    latency_iqr_ms: float
    repeats: int
    energy_j: float | None


def _settled(times_ns: list[int], rel_ci: float) -> bool:
    low, high = median_cihs(np.asarray(times_ns, dtype=float), alpha=0.05)
    return (high - low) / 2 <= rel_ci * np.median(times_ns)


def time_pass(session: ort.InferenceSession, feed: Mapping[str, np.ndarray],
              settings: TimingSettings = TimingSettings(),
              counter: RaplCounter | None = None) -> tuple[np.ndarray, float | None]:
    """One timing pass (see :class:`TimingSettings`): the repeats' times (ms) and the counter's
    joules over them (``None`` without a counter)."""
    start = time.perf_counter()
    runs = 0
    while runs < 2 or time.perf_counter() - start < settings.warmup_s:
        session.run(None, feed)
        runs += 1
    times: list[int] = []
    energy_start = counter.read() if counter is not None else None
    start = time.perf_counter()
    while True:
        check_at = time.perf_counter() + settings.check_every_s
        while True:
            t0 = time.perf_counter_ns()
            session.run(None, feed)
            times.append(time.perf_counter_ns() - t0)
            if time.perf_counter() >= check_at:
                break
        elapsed = time.perf_counter() - start
        if elapsed >= settings.max_s or (elapsed >= settings.min_s and len(times) >= settings.min_repeats
                                         and _settled(times, settings.rel_ci)):
            break
    energy_j = None if counter is None else counter.joules_between(energy_start, counter.read())
    if energy_j is not None and energy_j <= 0:
        raise RuntimeError(f"the energy counter did not advance over {elapsed:.2f} s of inferences; "
                           "raise TimingSettings.min_s or use the power_x_time method")
    return np.asarray(times) / 1e6, energy_j


def summarise(times_ms: Sequence[np.ndarray], energies_j: Sequence[float | None],
              statistic: str) -> Timing:
    """The :class:`Timing` of one model's passes."""
    ms = np.concatenate(times_ms)
    latency = float(ms.min() if statistic == "min" else np.median(ms))
    energy = None if any(e is None for e in energies_j) else float(sum(energies_j))
    return Timing(latency, float(iqr(ms)), len(ms), energy)


def measure_genomes(genomes: Mapping[str, Genome], profile: DeviceProfile, *, dtype: str = DEFAULT_DTYPE,
                    threads: int = 1, method: str = "auto",
                    settings: TimingSettings = TimingSettings(), model: EnergyModel | None = None,
                    powercap_root: Path = POWERCAP_ROOT,
                    on_record: Callable[[int, Measurement], None] | None = None) -> list[Measurement]:
    """Measure latency and energy per inference of each ``model_id -> genome`` on this host.

    All models are exported first, then timed by :func:`time_models`.

    Args:
        profile: the device profile recorded with each measurement (its power is used by the
            ``power_x_time`` method).
        method: ``auto`` (the RAPL counter when readable), ``counter`` or ``power_x_time``.
        model: an energy model whose prediction is stored beside each measurement.
        on_record: called with ``(index, record)`` after each model's last pass (in the order
            models finish), e.g. to report progress and write the record at once.

    Returns the records in the order of ``genomes``.
    """
    counter = None if method == "power_x_time" else RaplCounter.find(powercap_root)
    method = resolve_method(method, counter)
    counter = counter if method == "counter" else None
    hardware = hardware_fingerprint()
    predicted = model.predict_mj(list(genomes.values())) if model is not None else [None] * len(genomes)
    items = list(genomes.items())
    records: list[Measurement | None] = [None] * len(items)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_onnx(genome, Path(tmp) / f"{i}.onnx", dtype) for i, (_, genome) in enumerate(items)]
        feeds = [{INPUT_NAME: random_input(genome)} for _, genome in items]
        for i, timing in time_models(paths, feeds, settings, threads=threads, counter=counter):
            (model_id, genome), prediction = items[i], predicted[i]
            energy_mj = (timing.energy_j / timing.repeats * 1e3 if counter is not None
                         else timing.latency_ms * profile.active_power_w)
            record = Measurement(
                model_id=model_id, genome=genome, dtype=dtype, threads=threads,
                latency_ms=timing.latency_ms, latency_iqr_ms=timing.latency_iqr_ms,
                repeats=timing.repeats, energy_mj=energy_mj, method=method,
                device_profile=profile.name, active_power_w=profile.active_power_w,
                hardware=hardware, runtime=RUNTIME,
                predicted_mj=None if prediction is None else float(prediction),
                latency_statistic=settings.statistic)
            records[i] = record
            if on_record is not None:
                on_record(i, record)
    return records


def time_models(paths: Sequence[str | os.PathLike], feeds: Sequence[Mapping[str, np.ndarray]],
                settings: TimingSettings = TimingSettings(), *, threads: int = 1,
                memory_arena: bool = False, counter: RaplCounter | None = None) -> Iterator[tuple[int, Timing]]:
    """Time ONNX models in interleaved passes until each is confirmed (see :class:`TimingSettings`):
    rounds of one pass per unfinished model; yields ``(index, timing)`` as each model finishes.

    Sessions come from :func:`make_session` (``threads``, ``memory_arena``): a new one per pass
    with ``settings.session_per_pass``, else one per model for all its passes.
    """
    if len(paths) != len(feeds):
        raise ValueError(f"got {len(paths)} models but {len(feeds)} inputs")
    times: list[list[np.ndarray]] = [[] for _ in paths]
    energies: list[list[float | None]] = [[] for _ in paths]
    kept: list[ort.InferenceSession | None] = [None] * len(paths)
    unfinished = list(range(len(paths)))
    while unfinished:
        round_start = time.perf_counter()
        for i in list(unfinished):
            session = kept[i] or make_session(paths[i], threads, memory_arena=memory_arena)
            t, e = time_pass(session, feeds[i], settings, counter)
            times[i].append(t)
            energies[i].append(e)
            done = len(times[i]) >= settings.max_passes or (
                len(times[i]) >= settings.passes and _confirmed(times[i], settings))
            kept[i] = None if settings.session_per_pass or done else session
            if done:
                unfinished.remove(i)
                yield i, summarise(times[i], energies[i], settings.statistic)
        if unfinished:
            time.sleep(max(0.0, settings.min_round_s - (time.perf_counter() - round_start)))


def _confirmed(times_ms: Sequence[np.ndarray], settings: TimingSettings) -> bool:
    """Whether the two lowest per-pass values of the statistic agree within ``confirm_rel``."""
    per_pass = sorted(float(t.min() if settings.statistic == "min" else np.median(t)) for t in times_ms)
    return len(per_pass) >= 2 and per_pass[1] <= per_pass[0] * (1 + settings.confirm_rel)


def measure_pareto(genomes: Sequence[Genome], profile: DeviceProfile, *,
                   model: EnergyModel | None = None, **kwargs) -> list[Measurement]:
    """Measure a search's final genomes on this host, beside ``model``'s predictions.

    Genomes are identified by :func:`~moo_audio.energy.records.genome_id`; repeated genomes
    are measured once. ``kwargs`` go to :func:`measure_genomes` (``dtype``, ``threads``, ...).
    """
    return measure_genomes({genome_id(g): g for g in genomes}, profile, model=model, **kwargs)
