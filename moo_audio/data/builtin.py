"""The built-in dataset: seeded synthetic sound events of an always-on device, no download.

Each class is a small parametric sound model (tones, sweeps, damped modes, filtered noise,
formant-filtered pulse trains) whose pitch, duration, count, onset and level vary per clip. The
event is mixed into coloured background noise (spectral slope from white to brown, sometimes
with mains hum) at a random SNR measured over the event's active span. Some classes share
spectra on purpose (knock/clap/glass, speech/baby cry, chord/doorbell/alarm, engine/hum in the
background, water/noise) so that small networks do not all score 100 %.

No audio library synthesises such scenes, hence these hand-written models.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import fft as sp_fft
from scipy import signal

from moo_audio.data.audio_io import check_rate_and_clip, n_samples_of
from moo_audio.data.dataset import AudioDataset, make_dataset, stratified_split

Rng = np.random.Generator

# Peterson & Barney (1952) average adult formants F1, F2, F3 in Hz for /i e a o u/.
_VOWELS = np.array([[270, 2290, 3010], [530, 1840, 2480], [730, 1090, 2440],
                    [570, 840, 2410], [300, 870, 2240]], dtype=float)


# Synthesis runs in float32: NumPy's float32 sin/exp/FFT are several times faster.
def _t(duration_s: float, sr: int) -> np.ndarray:
    return np.arange(max(1, int(duration_s * sr)), dtype=np.float32) / np.float32(sr)


def _ramp(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Linear attack and release envelope of length ``n``."""
    env = np.ones(n, dtype=np.float32)
    a, r = min(n, max(1, int(attack_s * sr))), min(n, max(1, int(release_s * sr)))
    env[:a] *= np.linspace(0, 1, a)
    env[n - r:] *= np.linspace(1, 0, r)
    return env


def _arch(n: int) -> np.ndarray:
    """Smooth rise-and-fall envelope (square root of a half sine)."""
    return np.sqrt(np.sin(np.pi * np.linspace(0, 1, n, dtype=np.float32)).clip(0))


def _harmonics(f0: np.ndarray, amps, sr: int, rng: Rng) -> np.ndarray:
    """Sum of harmonics ``h * f0(t)`` (``f0`` per sample) with amplitudes ``amps[h-1]``;
    partials above 0.45 ``sr`` are muted to avoid aliasing."""
    phase = np.cumsum(f0 * np.float32(2 * np.pi / sr), dtype=np.float32)
    phase += np.float32(rng.uniform(0, 2 * np.pi))
    # sin(h x) by the Chebyshev recurrence: two products per harmonic instead of a sine.
    two_cos, prev, cur = 2 * np.cos(phase), np.zeros_like(phase), np.sin(phase)
    out = np.zeros_like(phase)
    aliasing_from = 0.45 * sr / f0.max()  # harmonics from here on need a per-sample mask
    for h, a in enumerate(amps, start=1):
        if a:
            out += np.float32(a) * (cur if h < aliasing_from else (h * f0 < 0.45 * sr) * cur)
        prev, cur = cur, two_cos * cur - prev
    return out


def _partials(freqs, decays, amps, duration_s: float, sr: int, rng: Rng) -> np.ndarray:
    """Exponentially decaying sinusoids (modes of a struck object)."""
    t = _t(duration_s, sr)
    out = np.zeros_like(t)
    for f, tau, a in zip(freqs, decays, amps):
        if f < 0.45 * sr:
            mode = np.exp(t * np.float32(-1 / tau)) * np.sin(t * np.float32(2 * np.pi * f)
                                                              + np.float32(rng.uniform(0, 2 * np.pi)))
            out += np.float32(a) * mode
    return out


@functools.lru_cache(maxsize=8)
def _log_freqs(m: int, sr: int) -> np.ndarray:
    """Log frequency of the non-DC bins of an ``m``-point real FFT."""
    return np.log(np.fft.rfftfreq(m, 1 / sr)[1:]).astype(np.float32)


def _noise(rng: Rng, n: int, sr: int, lo: float = 0.0, hi: float = np.inf, alpha: float = 0.0) -> np.ndarray:
    """Zero-mean noise with power ``1/f^alpha`` in the band ``[lo, hi]`` Hz.

    Drawn in the frequency domain (complex Gaussian bins, the spectrum of white noise) and
    brought to time by one inverse FFT.
    """
    m = sp_fft.next_fast_len(n, real=True)  # an awkward length would make the FFT slow
    spectrum = rng.standard_normal(2 * (m // 2 + 1), dtype=np.float32).view(np.complex64)
    if alpha:
        spectrum[1:] *= np.exp(np.float32(-alpha / 2) * _log_freqs(m, sr))
    spectrum[:max(1, int(np.ceil(lo * m / sr)))] = 0
    spectrum[int(min(hi, 0.45 * sr) * m / sr) + 1:] = 0
    return np.fft.irfft(spectrum, m)[:n]


def _formants(x: np.ndarray, freqs, bandwidth: float, sr: int) -> np.ndarray:
    """Cascade of two-pole resonators (a classic formant synthesiser's vocal tract)."""
    for f in freqs:
        if f >= 0.45 * sr:
            continue
        r = np.exp(-np.pi * bandwidth / sr)
        x = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / sr), r * r], x)
    return x


def _sequence(parts: list[np.ndarray], gaps: list[float], sr: int) -> np.ndarray:
    """Concatenate sounds with silent gaps (seconds) between them."""
    out = [parts[0]]
    for part, gap in zip(parts[1:], gaps):
        out += [np.zeros(int(gap * sr), dtype=np.float32), part]
    return np.concatenate(out)


def _voiced(rng: Rng, f0: np.ndarray, vowel: np.ndarray, sr: int) -> np.ndarray:
    """Glottal pulse train at ``f0(t)`` through the formants ``vowel``, with some breath noise."""
    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = signal.lfilter([1.0], [1, -0.9], pulses) + 0.02 * rng.standard_normal(len(f0))
    x = _formants(source, vowel, rng.uniform(60, 130), sr)
    return x / (np.abs(x).max() + 1e-9) * _arch(len(x))


# ---- the classes ---------------------------------------------------------------------------------
def alarm_beep(rng: Rng, sr: int) -> np.ndarray:
    f = rng.uniform(1500, 3500)
    f_alt = f * rng.choice([1.0, 0.8, 0.75])
    on, off = rng.uniform(0.04, 0.15), rng.uniform(0.04, 0.15)
    amps = [1.0, 0.0, rng.uniform(0, 0.3), 0.0, rng.uniform(0, 0.15)]
    beeps = []
    for k in range(rng.integers(2, 7)):
        t = _t(on, sr)
        fk = np.full_like(t, f if k % 2 == 0 else f_alt)
        beeps.append(_harmonics(fk, amps, sr, rng) * _ramp(len(t), sr, 0.003, 0.003))
    return _sequence(beeps, [off] * len(beeps), sr)


def siren(rng: Rng, sr: int) -> np.ndarray:
    t = _t(rng.uniform(0.5, 1.0), sr)
    fc, fm = rng.uniform(600, 1400), rng.uniform(0.8, 6.0)
    dev = rng.uniform(0.15, 0.4) * fc
    if rng.random() < 0.5:  # wail/yelp: sinusoidal sweep
        f0 = fc + dev * np.sin(2 * np.pi * fm * t + rng.uniform(0, 2 * np.pi))
    else:  # sawtooth sweep
        f0 = fc + dev * (2 * ((fm * t + rng.random()) % 1.0) - 1)
    amps = [1.0, rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.4), rng.uniform(0, 0.2)]
    return _harmonics(f0, amps, sr, rng) * _ramp(len(t), sr, 0.03, 0.05)


def knock(rng: Rng, sr: int) -> np.ndarray:
    modes = [rng.uniform(100, 300), rng.uniform(400, 900), rng.uniform(1200, 2500)]
    decays = [rng.uniform(0.015, 0.04), rng.uniform(0.008, 0.02), rng.uniform(0.003, 0.008)]
    hits = []
    for _ in range(rng.integers(2, 6)):
        amps = rng.uniform(0.3, 1.0, 3)
        hit = _partials(modes, decays, amps, 0.12, sr, rng)
        click = int(0.002 * sr)
        hit[:click] += rng.uniform(0.1, 0.5) * rng.standard_normal(click)
        hits.append(hit * rng.uniform(0.6, 1.0))
    return _sequence(hits, list(rng.uniform(0.05, 0.2, len(hits))), sr)


def clap(rng: Rng, sr: int) -> np.ndarray:
    centre = rng.uniform(900, 2500)
    claps = []
    for _ in range(rng.integers(1, 7)):
        t = _t(0.06, sr)
        noise = _noise(rng, len(t), sr, centre / rng.uniform(1.5, 3), centre * rng.uniform(1.5, 3))
        claps.append(noise * np.exp(-t / rng.uniform(0.005, 0.02)) * rng.uniform(0.5, 1.0))
    return _sequence(claps, list(rng.uniform(0.08, 0.35, len(claps))), sr)


def dog_bark(rng: Rng, sr: int) -> np.ndarray:
    f_start = rng.uniform(300, 700)
    formant = [rng.uniform(700, 1500), rng.uniform(1800, 3000)]
    barks = []
    for _ in range(rng.integers(1, 4)):
        t = _t(rng.uniform(0.08, 0.25), sr)
        f0 = f_start * rng.uniform(0.9, 1.1) * np.exp(np.log(rng.uniform(0.6, 0.85)) * t / t[-1])
        voiced = _harmonics(f0, [1.0 / h for h in range(1, 11)], sr, rng)
        voiced = _formants(voiced, formant, 300.0, sr)
        voiced /= np.abs(voiced).max() + 1e-9
        noise = _noise(rng, len(t), sr, 500, 3000)
        noise /= np.abs(noise).max() + 1e-9
        x = voiced + rng.uniform(0.2, 0.5) * noise
        barks.append(x * _arch(len(t)) * np.exp(-3 * t / t[-1]))
    return _sequence(barks, list(rng.uniform(0.1, 0.3, len(barks))), sr)


def running_water(rng: Rng, sr: int) -> np.ndarray:
    t = _t(rng.uniform(0.6, 1.0), sr)
    base = _noise(rng, len(t), sr, rng.uniform(200, 800), rng.uniform(2500, 6000))
    base *= (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t)) / (np.std(base) + 1e-9)
    bubbles = np.zeros(len(t) + int(0.025 * sr), dtype=np.float32)
    count = rng.poisson(rng.uniform(20, 80) * t[-1])
    # every bubble: a Hann-windowed rising chirp of 5-25 ms, synthesised together
    lengths = (rng.uniform(0.005, 0.025, count) * sr).astype(int)
    tb = np.arange(lengths.max(initial=1), dtype=np.float32) / sr
    f = rng.uniform(400, 3000, (count, 1)).astype(np.float32)
    rise = (f * rng.uniform(0.2, 1.0, (count, 1)) / (lengths[:, None] / sr)).astype(np.float32)
    window = np.sin(np.pi * tb / (lengths[:, None] / sr)).clip(0) ** 2 * (tb * sr < lengths[:, None])
    chirps = rng.uniform(0.5, 2.0, (count, 1)) * window * np.sin(2 * np.pi * (f * tb + 0.5 * rise * tb ** 2))
    for start, chirp in zip(rng.integers(0, len(t), count), chirps):
        bubbles[start:start + len(tb)] += chirp
    bubbles = bubbles[:len(t)]
    return (rng.uniform(0.3, 1.0) * base + bubbles) * _ramp(len(t), sr, 0.05, 0.05)


def glass_break(rng: Rng, sr: int) -> np.ndarray:
    duration = rng.uniform(0.3, 0.8)
    t = _t(duration, sr)
    crash = _noise(rng, len(t), sr, 1500, 8000) * np.exp(-t / rng.uniform(0.01, 0.04))
    out = crash / (np.abs(crash).max() + 1e-9)
    n_partials = rng.integers(6, 15)
    ring = _partials(rng.uniform(2500, 8000, n_partials), rng.uniform(0.03, 0.25, n_partials),
                     rng.uniform(0.1, 0.5, n_partials), duration, sr, rng)
    out += ring
    for _ in range(rng.integers(0, 6)):  # falling shards
        ping = _partials(rng.uniform(3000, 9000, 3), rng.uniform(0.005, 0.03, 3),
                         rng.uniform(0.1, 0.4, 3), 0.05, sr, rng)
        start = rng.integers(int(0.05 * sr), max(int(0.05 * sr) + 1, len(t) - len(ping)))
        out[start:start + len(ping)] += ping[:len(out) - start]
    return out


def engine_hum(rng: Rng, sr: int) -> np.ndarray:
    t = _t(rng.uniform(0.7, 1.0), sr)
    f0 = rng.uniform(25, 80) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    amps = rng.uniform(0.3, 1.0, 15) * np.arange(1, 16) ** -rng.uniform(0.5, 1.5)
    x = _harmonics(f0, amps, sr, rng)
    x *= 1 + rng.uniform(0.2, 0.6) * np.sin(np.pi * np.cumsum(f0) / sr)  # firing at f0 / 2
    rumble = _noise(rng, len(t), sr, 20, rng.uniform(300, 800))
    x = x / (np.std(x) + 1e-9) + rng.uniform(0.1, 0.5) * rumble / (np.std(rumble) + 1e-9)
    return x * _ramp(len(t), sr, rng.uniform(0.05, 0.1), rng.uniform(0.05, 0.1))


def speech_babble(rng: Rng, sr: int) -> np.ndarray:
    def talker() -> np.ndarray:
        f_base, scale = rng.uniform(90, 240), rng.uniform(0.9, 1.2)
        syllables = []
        for _ in range(rng.integers(2, 6)):
            t = _t(rng.uniform(0.08, 0.25), sr)
            jitter = 1 + 0.01 * rng.standard_normal(len(t))
            f0 = f_base * (1 + rng.uniform(-0.15, 0.15) * t / t[-1]) * jitter
            x = _voiced(rng, f0, _VOWELS[rng.integers(len(_VOWELS))] * scale, sr)
            if rng.random() < 0.4:  # fricative onset
                fric = _noise(rng, int(rng.uniform(0.04, 0.1) * sr), sr, 2500, 7000)
                x = np.concatenate([0.3 * fric / (np.abs(fric).max() + 1e-9), x])
            syllables.append(x)
        return _sequence(syllables, list(rng.uniform(0.02, 0.1, len(syllables))), sr)

    x = talker()
    if rng.random() < 0.5:  # a second talker
        other = talker()[:len(x)]
        x[:len(other)] += rng.uniform(0.3, 0.8) * other
    return x


def baby_cry(rng: Rng, sr: int) -> np.ndarray:
    vowel = _VOWELS[rng.choice([1, 2])] * rng.uniform(1.2, 1.4)
    cries = []
    for _ in range(rng.integers(1, 3)):
        t = _t(rng.uniform(0.3, 0.7), sr)
        contour = 1 + rng.uniform(0.05, 0.2) * np.sin(np.pi * t / t[-1])
        vibrato = 1 + rng.uniform(0.03, 0.08) * np.sin(2 * np.pi * rng.uniform(4, 8) * t)
        cries.append(_voiced(rng, rng.uniform(350, 550) * contour * vibrato, vowel, sr))
    return _sequence(cries, list(rng.uniform(0.05, 0.2, len(cries))), sr)


def music_chord(rng: Rng, sr: int) -> np.ndarray:
    root = rng.integers(45, 72)
    chord = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 7, 10), (0, 4, 7, 11)][rng.integers(5)]
    duration = rng.uniform(0.3, 0.9)
    brightness = rng.uniform(1.0, 2.0)
    arpeggio = rng.uniform(0, 0.06) if rng.random() < 0.5 else 0.0
    out = np.zeros(len(_t(duration + arpeggio * len(chord), sr)))
    for k, interval in enumerate(chord):
        t = _t(duration, sr)
        f0 = np.full_like(t, 440.0 * 2 ** ((root + interval - 69) / 12))
        note = _harmonics(f0, [h ** -brightness for h in range(1, 7)], sr, rng)
        sustain = rng.uniform(0.4, 0.8)
        env = sustain + (1 - sustain) * np.exp(-t / 0.1)
        note *= env * _ramp(len(t), sr, rng.uniform(0.005, 0.04), rng.uniform(0.05, 0.15))
        start = int(k * arpeggio * sr)
        out[start:start + len(note)] += note
    return out


def doorbell(rng: Rng, sr: int) -> np.ndarray:
    f1 = rng.uniform(500, 1100)
    ratios = np.array([1.0, 2.0, 3.0, 4.2])
    strikes = []
    for f in (f1, f1 * 2 ** (-rng.choice([3, 4, 5]) / 12)):
        tau = rng.uniform(0.15, 0.5)
        strikes.append(_partials(f * ratios, tau / ratios ** 0.5, [1.0, 0.5, 0.15, 0.25], 0.5, sr, rng))
    return _sequence(strikes, [rng.uniform(0.0, 0.2)], sr)


SOUND_EVENTS: dict[str, Callable[[Rng, int], np.ndarray]] = {
    f.__name__: f for f in (alarm_beep, siren, knock, clap, dog_bark, running_water, glass_break,
                            engine_hum, speech_babble, baby_cry, music_chord, doorbell)
}
CLASS_NAMES = list(SOUND_EVENTS)


def _place(event: np.ndarray, n: int, rng: Rng) -> tuple[np.ndarray, float]:
    """``event`` at a random onset in ``n`` samples (a random excerpt if it is longer), and its
    power over the span it occupies."""
    if len(event) > n:
        start = rng.integers(0, len(event) - n + 1)
        event = event[start:start + n]
    onset = rng.integers(0, n - len(event) + 1)
    out = np.zeros(n, dtype=np.float32)
    out[onset:onset + len(event)] = event
    return out, float(np.mean(event ** 2)) + 1e-12


def _background(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Unit-RMS coloured noise (1/f^alpha power, alpha in [0, 2]), sometimes with mains hum."""
    x = _noise(rng, n, sr, alpha=rng.uniform(0, 2))
    if rng.random() < 0.3:
        mains = np.full(n, rng.choice([50.0, 60.0]), dtype=np.float32)
        x = x / np.std(x) + rng.uniform(0.2, 1.0) * _harmonics(mains, [1, 0.5, 0.3, 0.2], sr, rng)
    return x / np.std(x)


def _clip(rng: Rng, label: int, n: int, sr: int, snr_db: tuple[float, float]) -> np.ndarray:
    """One clip of class ``label``: the event, sometimes a quieter event of another class
    (6-15 dB below), and background noise at an SNR drawn from ``snr_db``."""
    events = list(SOUND_EVENTS.values())
    x, power = _place(events[label](rng, sr), n, rng)
    if rng.random() < 0.3:
        other = (label + rng.integers(1, len(events))) % len(events)
        y, other_power = _place(events[other](rng, sr), n, rng)
        x += y * math.sqrt(power / other_power * 10 ** (-rng.uniform(6, 15) / 10))
    noise_power = power / 10 ** (rng.uniform(*snr_db) / 10)
    x += math.sqrt(noise_power) * _background(rng, n, sr)
    return x * (10 ** (rng.uniform(-30, -1) / 20) / np.abs(x).max())


def builtin_sound_events(
    n_per_class: int = 60,
    sample_rate: int = 16000,
    clip_ms: int = 1000,
    seed: int = 0,
    snr_db: tuple[float, float] = (0.0, 20.0),
) -> AudioDataset:
    """The embedded dataset: ``n_per_class`` clips of each of the 12 :data:`CLASS_NAMES`.

    Clip ``i`` of class ``c`` depends only on ``(seed, c, i)``, the rate and the length, so a
    larger ``n_per_class`` keeps the smaller set's clips. Split 60/20/20 stratified by ``seed``.
    Peaks lie between -30 and -1 dBFS.
    """
    check_rate_and_clip(sample_rate, clip_ms)
    if sample_rate < 8000:
        raise ValueError(f"builtin: sample_rate must be at least 8000 Hz, got {sample_rate}")
    if not isinstance(n_per_class, (int, np.integer)) or isinstance(n_per_class, bool) or n_per_class < 3:
        raise ValueError(f"builtin: n_per_class must be an integer >= 3 (one example each for "
                         f"train, val and test), got {n_per_class!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"builtin: seed must be a non-negative integer, got {seed!r}")
    lo, hi = (float(v) for v in snr_db)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"builtin: snr_db must be (low, high) finite dB with low <= high, got {snr_db!r}")
    n = n_samples_of(sample_rate, clip_ms)
    clips, labels = [], []
    for c in range(len(SOUND_EVENTS)):
        for i in range(n_per_class):
            clips.append(_clip(np.random.default_rng([seed, c, i]), c, n, sample_rate, (lo, hi)))
            labels.append(c)
    waveforms = torch.from_numpy(np.stack(clips))
    labels_t = torch.tensor(labels, dtype=torch.int64)
    options = {"n_per_class": int(n_per_class), "seed": int(seed), "snr_db": [lo, hi]}
    return make_dataset("builtin", waveforms, labels_t, CLASS_NAMES, sample_rate, clip_ms,
                        stratified_split(labels, seed), options)
