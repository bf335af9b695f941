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

from typing import Callable

import numpy as np
import torch
from scipy import signal

from moo_audio.data.audio_io import check_rate_and_clip, n_samples_of
from moo_audio.data.dataset import AudioDataset, make_dataset, stratified_split

Rng = np.random.Generator

# Peterson & Barney (1952) average adult formants F1, F2, F3 in Hz for /i e a o u/.
_VOWELS = np.array([[270, 2290, 3010], [530, 1840, 2480], [730, 1090, 2440],
                    [570, 840, 2410], [300, 870, 2240]], dtype=float)


def _t(duration_s: float, sr: int) -> np.ndarray:
    return np.arange(max(1, int(duration_s * sr))) / sr


def _ramp(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Linear attack and release envelope of length ``n``."""
    env = np.ones(n)
    a, r = min(n, max(1, int(attack_s * sr))), min(n, max(1, int(release_s * sr)))
    env[:a] *= np.linspace(0, 1, a)
    env[n - r:] *= np.linspace(1, 0, r)
    return env


def _harmonics(f0: np.ndarray, amps, sr: int, rng: Rng) -> np.ndarray:
    """Sum of harmonics ``h * f0(t)`` (``f0`` per sample) with amplitudes ``amps[h-1]``;
    partials above 0.45 ``sr`` are muted to avoid aliasing."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros_like(f0)
    for h, a in enumerate(amps, start=1):
        out += a * (h * f0 < 0.45 * sr) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out


def _partials(freqs, decays, amps, duration_s: float, sr: int, rng: Rng) -> np.ndarray:
    """Exponentially decaying sinusoids (modes of a struck object)."""
    t = _t(duration_s, sr)
    out = np.zeros_like(t)
    for f, tau, a in zip(freqs, decays, amps):
        if f < 0.45 * sr:
            out += a * np.exp(-t / tau) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def _band_noise(rng: Rng, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.5 * hi)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


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
        out += [np.zeros(int(gap * sr)), part]
    return np.concatenate(out)


def _voiced(rng: Rng, f0: np.ndarray, vowel: np.ndarray, sr: int) -> np.ndarray:
    """Glottal pulse train at ``f0(t)`` through the formants ``vowel``, with some breath noise."""
    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = signal.lfilter([1.0], [1, -0.9], pulses) + 0.02 * rng.standard_normal(len(f0))
    x = _formants(source, vowel, rng.uniform(60, 130), sr)
    return x / (np.abs(x).max() + 1e-9) * np.sin(np.pi * np.linspace(0, 1, len(x))) ** 0.5


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
        noise = _band_noise(rng, len(t), centre / rng.uniform(1.5, 3), centre * rng.uniform(1.5, 3), sr)
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
        noise = _band_noise(rng, len(t), 500, 3000, sr)
        noise /= np.abs(noise).max() + 1e-9
        x = voiced + rng.uniform(0.2, 0.5) * noise
        barks.append(x * np.sin(np.pi * t / t[-1]) ** 0.5 * np.exp(-3 * t / t[-1]))
    return _sequence(barks, list(rng.uniform(0.1, 0.3, len(barks))), sr)


def running_water(rng: Rng, sr: int) -> np.ndarray:
    t = _t(rng.uniform(0.6, 1.0), sr)
    base = _band_noise(rng, len(t), rng.uniform(200, 800), rng.uniform(2500, 6000), sr)
    base *= (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t)) / (np.std(base) + 1e-9)
    bubbles = np.zeros_like(t)
    for _ in range(rng.poisson(rng.uniform(20, 80) * t[-1])):
        tb = _t(rng.uniform(0.005, 0.025), sr)
        f = rng.uniform(400, 3000) * (1 + rng.uniform(0.2, 1.0) * tb / tb[-1])
        start = rng.integers(0, max(1, len(t) - len(tb)))
        seg = bubbles[start:start + len(tb)]
        seg += rng.uniform(0.5, 2.0) * np.hanning(len(tb))[:len(seg)] * np.sin(2 * np.pi * np.cumsum(f) / sr)[:len(seg)]
    return (rng.uniform(0.3, 1.0) * base + bubbles) * _ramp(len(t), sr, 0.05, 0.05)


def glass_break(rng: Rng, sr: int) -> np.ndarray:
    duration = rng.uniform(0.3, 0.8)
    t = _t(duration, sr)
    crash = _band_noise(rng, len(t), 1500, 8000, sr) * np.exp(-t / rng.uniform(0.01, 0.04))
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
    rumble = signal.sosfilt(signal.butter(2, rng.uniform(300, 800), fs=sr, output="sos"),
                            rng.standard_normal(len(t)))
    x = x / (np.std(x) + 1e-9) + rng.uniform(0.1, 0.5) * rumble / (np.std(rumble) + 1e-9)
    return x * _ramp(len(t), sr, rng.uniform(0.05, 0.1), rng.uniform(0.05, 0.1))


def speech_babble(rng: Rng, sr: int) -> np.ndarray:
    def talker() -> np.ndarray:
        f_base, scale = rng.uniform(90, 240), rng.uniform(0.9, 1.2)
        syllables = []
        for _ in range(rng.integers(2, 6)):
            t = _t(rng.uniform(0.08, 0.25), sr)
            f0 = f_base * (1 + rng.uniform(-0.15, 0.15) * t / t[-1]) * (1 + 0.01 * rng.standard_normal(len(t)))
            x = _voiced(rng, f0, _VOWELS[rng.integers(len(_VOWELS))] * scale, sr)
            if rng.random() < 0.4:  # fricative onset
                fric = _band_noise(rng, int(rng.uniform(0.04, 0.1) * sr), 2500, 7000, sr)
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


def _place(event: np.ndarray, n: int, rng: Rng) -> tuple[np.ndarray, slice]:
    """Put ``event`` at a random onset in ``n`` samples (a random excerpt if it is longer)."""
    if len(event) > n:
        start = rng.integers(0, len(event) - n + 1)
        return event[start:start + n], slice(0, n)
    onset = rng.integers(0, n - len(event) + 1)
    out = np.zeros(n)
    out[onset:onset + len(event)] = event
    return out, slice(onset, onset + len(event))


def _background(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Unit-RMS coloured noise (1/f^alpha power, alpha in [0, 2]), sometimes with mains hum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    x = np.fft.irfft(spectrum * f ** (-rng.uniform(0, 2) / 2), n)
    if rng.random() < 0.3:
        mains = np.full(n, rng.choice([50.0, 60.0]))
        x = x / np.std(x) + rng.uniform(0.2, 1.0) * _harmonics(mains, [1, 0.5, 0.3, 0.2], sr, rng)
    return x / np.std(x)


def _clip(rng: Rng, event: Callable[[Rng, int], np.ndarray], n: int, sr: int,
          snr_db: tuple[float, float]) -> np.ndarray:
    x, span = _place(event(rng, sr), n, rng)
    event_power = np.mean(x[span] ** 2) + 1e-12
    noise_power = event_power / 10 ** (rng.uniform(*snr_db) / 10)
    x = x + np.sqrt(noise_power) * _background(rng, n, sr)
    return x * 10 ** (rng.uniform(-30, -1) / 20) / np.abs(x).max()


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
    lo, hi = (float(v) for v in snr_db)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"builtin: snr_db must be (low, high) finite dB with low <= high, got {snr_db!r}")
    n = n_samples_of(sample_rate, clip_ms)
    clips, labels = [], []
    for c, event in enumerate(SOUND_EVENTS.values()):
        for i in range(n_per_class):
            clips.append(_clip(np.random.default_rng([seed, c, i]), event, n, sample_rate, (lo, hi)))
            labels.append(c)
    waveforms = torch.from_numpy(np.stack(clips).astype(np.float32))
    labels_t = torch.tensor(labels, dtype=torch.int64)
    options = {"n_per_class": int(n_per_class), "seed": int(seed), "snr_db": [lo, hi]}
    return make_dataset("builtin", waveforms, labels_t, CLASS_NAMES, sample_rate, clip_ms,
                        stratified_split(labels, seed), options)
