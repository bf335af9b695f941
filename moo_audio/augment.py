"""On-the-fly augmentation of cached log-mel features: time shift, background noise, SpecAugment.

The keyword-spotting recipe (random time shift and background noise as in the Speech Commands
training scripts, time and frequency masks as in SpecAugment, Park et al. 2019), applied to every
training batch. It works on the *cached* standardised log-mel, so features are still computed once
per front end:

* **time shift**: each clip moves by a random number of frames (at most ``time_shift_ms``); the
  frames shifted in hold silence (the log-mel of a zero signal), as a shifted, zero-padded waveform
  would;
* **gain**: each clip's level changes by a random gain drawn uniformly from ``gain_db`` (power dB),
  exactly, in the mel power domain (``P -> g P``; the silence of zero padding stays silence): a device
  hears a word louder or quieter with its microphone, distance and speaker, and a speaker recorded
  far quieter than the training speakers is otherwise a shift of every feature the network never saw
  (Kaldi's and the Speech Commands scripts' volume perturbation);
* **frequency warp**: each clip's mel axis is stretched or squeezed by a random factor within
  ``1 ± freq_warp`` (linear interpolation between bins, the top bin held where the stretch reads
  past it), an approximation on the mel scale of vocal tract length perturbation (Jaitly and
  Hinton 2013): with a handful of training speakers it stands in for the speakers not heard;
* **background noise**: with probability ``noise_prob`` a random segment of noise (a dataset's own
  noise recordings, e.g. Speech Commands' ``_background_noise_``, else generated coloured noise) is
  added at an SNR drawn uniformly from ``snr_db``, in the mel *power* domain: ``P = P_clip + g P_noise``
  with ``g`` setting the ratio of the two powers. Mixing waveforms adds a cross term too, whose mean
  is zero for independent signals; leaving it out is what lets the features stay cached;
* **masks** (off by default): ``time_masks`` masks of up to ``time_mask_fraction`` of the frames and
  ``freq_masks`` of up to ``freq_mask_fraction`` of the mel bins per clip (torchaudio's
  ``TimeMasking``/``FrequencyMasking``), set to the standardised mean (0).

The defaults are the variant best on *validation* in ``benchmarks/augmentation.py`` (Speech Commands
12-class, 20 epochs): time shift and noise; masks lowered the accuracy of short trainings.

Randomness comes from torch's generator, which :func:`~moo_audio.training.train_candidate` seeds, so
a training stays a function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from moo_audio.torch_pair import import_torchaudio

torchaudio = import_torchaudio()


@dataclass(frozen=True)
class Augmentation:
    """The augmentation of training batches (see the module docstring); ``0`` switches a part off.

    Args:
        time_shift_ms: largest shift of a clip, either way, in milliseconds.
        noise_prob: probability that a clip gets background noise.
        snr_db: range of the signal-to-noise ratio of added noise, dB.
        gain_db: range of the gain applied to each clip, power dB (``(0, 0)``: none).
        freq_warp: largest relative stretch of the mel axis, either way.
        time_masks: time masks per clip; ``time_mask_fraction`` their largest width (of the frames).
        freq_masks: frequency masks per clip; ``freq_mask_fraction`` their largest width (of the bins).
    """

    time_shift_ms: int = 100
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (5.0, 20.0)
    gain_db: tuple[float, float] = (0.0, 0.0)
    freq_warp: float = 0.0
    time_masks: int = 0
    time_mask_fraction: float = 0.1
    freq_masks: int = 0
    freq_mask_fraction: float = 0.1

    def __post_init__(self):
        for name in ("snr_db", "gain_db"):
            value = tuple(float(v) for v in getattr(self, name))
            low, high = value if len(value) == 2 else (math.nan, math.nan)
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise ValueError(f"augment.{name} must be [low, high] with low <= high, got {list(value)}")
            object.__setattr__(self, name, value)
        for name in ("time_shift_ms", "time_masks", "freq_masks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"augment.{name} must be an integer >= 0, got {value!r}")
        for name in ("noise_prob", "freq_warp", "time_mask_fraction", "freq_mask_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)!r}")


@dataclass(frozen=True)
class FeatureAugmenter:
    """Applies an :class:`Augmentation` to batches of standardised log-mel ``[B, n_mels, n_frames]``.

    Args:
        augmentation: what to do.
        mean, std: the standardisation of the features (``(log_mel - mean) / std``).
        noise: log-mel segments of background noise ``[S, n_mels, n_frames]`` (not standardised),
            or ``None`` to add no noise.
        hop_ms: the front end's hop, to turn ``time_shift_ms`` into frames.
        log_offset: the offset of the log (``log(power + log_offset)``): the log-mel of silence.
    """

    augmentation: Augmentation
    mean: float
    std: float
    noise: torch.Tensor | None
    hop_ms: int
    log_offset: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = self.augmentation
        shift = a.time_shift_ms // self.hop_ms
        if shift:
            x = self._shift(x, shift)
        if a.gain_db != (0.0, 0.0):
            x = self._gain(x)
        if a.freq_warp:
            x = self._warp(x)
        if a.noise_prob and self.noise is not None and len(self.noise):
            x = self._add_noise(x)
        if a.time_masks or a.freq_masks:
            x = self._mask(x)
        return x

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        a = self.augmentation
        masks = [(a.time_masks, torchaudio.transforms.TimeMasking(round(a.time_mask_fraction * x.shape[2]),
                                                                  iid_masks=True)),
                 (a.freq_masks, torchaudio.transforms.FrequencyMasking(round(a.freq_mask_fraction * x.shape[1]),
                                                                       iid_masks=True))]
        x = x.unsqueeze(1)  # iid masks need [batch, channel, freq, time]
        for n, mask in masks:
            for _ in range(n if mask.mask_param else 0):
                x = mask(x, mask_value=0.0)
        return x.squeeze(1)

    def _shift(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, _, t = x.shape
        offsets = torch.randint(-frames, frames + 1, (n, 1), device=x.device)
        source = torch.arange(t, device=x.device).unsqueeze(0) - offsets  # frame each output reads
        inside = (source >= 0) & (source < t)
        shifted = torch.gather(x, 2, source.clamp(0, t - 1).unsqueeze(1).expand_as(x))
        silence = (math.log(self.log_offset) - self.mean) / self.std
        return torch.where(inside.unsqueeze(1), shifted, torch.full_like(x, silence))

    def _gain(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.augmentation.gain_db
        db = low + (high - low) * torch.rand(len(x), 1, 1, device=x.device)
        power = (torch.exp(x * self.std + self.mean) - self.log_offset).clamp_min(0.0)
        return (torch.log(10 ** (db / 10) * power + self.log_offset) - self.mean) / self.std

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        n, bins, _ = x.shape
        factor = 1 + self.augmentation.freq_warp * (2 * torch.rand(n, 1, device=x.device) - 1)
        source = (torch.arange(bins, device=x.device) * factor).clamp(max=bins - 1)  # bin each output reads
        low = source.floor().long()
        high = (low + 1).clamp(max=bins - 1)
        weight = (source - low).unsqueeze(2)

        def bins_at(index: torch.Tensor) -> torch.Tensor:
            return torch.gather(x, 1, index.unsqueeze(2).expand_as(x))

        return bins_at(low) * (1 - weight) + bins_at(high) * weight

    def _add_noise(self, x: torch.Tensor) -> torch.Tensor:
        a, n = self.augmentation, len(x)
        noisy = torch.rand(n, device=x.device) < a.noise_prob
        if not noisy.any():
            return x
        rows = torch.nonzero(noisy).flatten()
        segments = self.noise.to(x.device)[torch.randint(len(self.noise), (len(rows),), device=x.device)]
        snr = a.snr_db[0] + (a.snr_db[1] - a.snr_db[0]) * torch.rand(len(rows), 1, 1, device=x.device)
        clip = torch.exp(x[rows] * self.std + self.mean)
        noise = torch.exp(segments)
        gain = clip.sum(dim=(1, 2), keepdim=True) / noise.sum(dim=(1, 2), keepdim=True) / 10 ** (snr / 10)
        out = x.clone()
        out[rows] = (torch.log(clip + gain * noise) - self.mean) / self.std
        return out


def coloured_noise(n_segments: int, n_samples: int, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """Generated background noise when a dataset has none: segments ``[n, n_samples]`` whose spectra
    fall from white to brown (power slope 0 to -2 per decade of frequency), float32."""
    rng = np.random.default_rng(seed)
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    freqs[0] = freqs[1]
    out = np.empty((n_segments, n_samples), dtype=np.float32)
    for i, slope in enumerate(rng.uniform(0.0, 2.0, n_segments)):
        spectrum = (rng.normal(size=len(freqs)) + 1j * rng.normal(size=len(freqs))) * freqs ** (-slope / 2)
        signal = np.fft.irfft(spectrum, n_samples)
        out[i] = signal / (np.abs(signal).max() + 1e-12) * 0.5
    return torch.from_numpy(out)
