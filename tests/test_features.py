"""Tests for moo_audio.data.features: log-mel, standardisation and the feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moo_audio.data import (
    AudioDataset,
    CorruptCacheWarning,
    FeatureCache,
    FeatureSet,
    builtin_sound_events,
    compute_features,
    default_cache_root,
    log_mel,
)
from moo_audio.data import features as features_module
from moo_audio.space import FrontEnd

SR = 8000


@pytest.fixture(scope="module")
def dataset() -> AudioDataset:
    return builtin_sound_events(n_per_class=5, sample_rate=SR, clip_ms=500)


def frontend(**changes) -> FrontEnd:
    return FrontEnd(**{"sample_rate": SR, "clip_ms": 500, "n_mels": 20, **changes})


@pytest.fixture
def counted(monkeypatch) -> list[FrontEnd]:
    """Records every real feature computation."""
    calls: list[FrontEnd] = []
    original = features_module.compute_features

    def counting(dataset, fe):
        calls.append(fe)
        return original(dataset, fe)

    monkeypatch.setattr(features_module, "compute_features", counting)
    return calls


# ---- log-mel -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fe", [
    FrontEnd(), FrontEnd(sample_rate=SR, clip_ms=500, n_mels=16, win_ms=32, hop_ms=16),
    FrontEnd(sample_rate=22050, clip_ms=730, n_mels=64, win_ms=40, hop_ms=20),
])
def test_log_mel_has_the_front_ends_shape(fe):
    x = torch.randn(3, fe.n_samples)
    out = log_mel(x, fe)
    assert out.shape == (3, fe.n_mels, fe.n_frames) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_log_mel_puts_a_tone_in_the_right_band():
    fe = FrontEnd(n_mels=40)
    t = torch.arange(fe.n_samples) / fe.sample_rate
    low, high = log_mel(torch.stack([torch.sin(2 * np.pi * 300 * t), torch.sin(2 * np.pi * 3000 * t)]), fe)
    peak_low, peak_high = low.mean(1).argmax(), high.mean(1).argmax()
    assert peak_low < 10 and peak_high > 25
    silence = log_mel(torch.zeros(1, fe.n_samples), fe)
    assert torch.allclose(silence, torch.full_like(silence, float(np.log(1e-6))))


def test_log_mel_crops_and_pads_to_the_front_end_clip():
    fe_short, fe_long = frontend(clip_ms=250), frontend(clip_ms=1000)
    x = torch.randn(2, SR * 500 // 1000)
    centre = x[:, 1000:3000]
    assert torch.equal(log_mel(x, fe_short), log_mel(centre, fe_short))
    padded = torch.nn.functional.pad(x, (2000, 2000))
    assert torch.equal(log_mel(x, fe_long), log_mel(padded, fe_long))


# ---- standardised features -----------------------------------------------------------------------
def test_compute_features_standardises_with_train_statistics(dataset):
    fe = frontend()
    fs = compute_features(dataset, fe)
    raw = log_mel(dataset.waveforms, fe)
    train_raw = raw[torch.from_numpy(dataset.splits["train"])]
    assert fs.mean == pytest.approx(float(train_raw.mean()), rel=1e-5)
    assert fs.std == pytest.approx(float(train_raw.std()), rel=1e-5)
    x, y = fs.split("train")
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4) and float(x.std()) == pytest.approx(1.0, rel=1e-4)
    for split in ("train", "val", "test"):
        idx = torch.from_numpy(dataset.splits[split])
        x, y = fs.split(split)
        assert x.shape == (len(idx), fe.n_mels, fe.n_frames) and x.dtype == torch.float32
        assert torch.equal(y, dataset.labels[idx]) and y.dtype == torch.int64
        assert torch.allclose(x, (raw[idx] - fs.mean) / fs.std, atol=1e-5)
    assert fs.class_names == dataset.class_names and fs.n_classes == dataset.n_classes
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        fs.split("dev")


def test_compute_features_rejects_another_sample_rate(dataset):
    with pytest.raises(ValueError, match="front end sample rate 16000 Hz .* sample rate 8000 Hz"):
        compute_features(dataset, FrontEnd(sample_rate=16000))


def test_feature_set_validates_shapes(dataset):
    fs = compute_features(dataset, frontend())
    with pytest.raises(ValueError, match=r"x\['train'\] must be float32 \[n, 16, 51\]"):
        FeatureSet(fs.x, fs.y, fs.class_names, frontend(n_mels=16), fs.mean, fs.std, fs.dataset_fingerprint)
    with pytest.raises(ValueError, match=r"y\['test'\] must be int64"):
        FeatureSet(fs.x, {**fs.y, "test": fs.y["test"][:-1]}, fs.class_names, fs.frontend, fs.mean, fs.std,
                   fs.dataset_fingerprint)


# ---- cache ---------------------------------------------------------------------------------------
def test_cache_computes_once_per_feature_key(tmp_path, dataset, counted):
    cache = FeatureCache(tmp_path)
    first = cache.get(dataset, frontend())
    second = cache.get(dataset, frontend())
    one_d = cache.get(dataset, frontend(representation="1d"))
    assert len(counted) == 1
    assert one_d.x["train"] is first.x["train"] and second.x["val"] is first.x["val"]
    assert one_d.frontend.representation == "1d" and first.frontend.representation == "2d"
    cache.get(dataset, frontend(n_mels=16))
    cache.get(dataset, frontend(hop_ms=20))
    assert len(counted) == 3
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pt"] * 3  # no temporary file left


def test_cache_reloads_from_disk(tmp_path, dataset, counted):
    computed = FeatureCache(tmp_path).get(dataset, frontend())
    loaded = FeatureCache(tmp_path).get(dataset, frontend(representation="1d"))
    assert len(counted) == 1
    for split in ("train", "val", "test"):
        assert torch.equal(loaded.x[split], computed.x[split])
        assert torch.equal(loaded.y[split], computed.y[split])
    for attr in ("mean", "std", "class_names", "dataset_fingerprint"):
        assert getattr(loaded, attr) == getattr(computed, attr)
    other = builtin_sound_events(n_per_class=5, sample_rate=SR, clip_ms=500, seed=1)
    FeatureCache(tmp_path).get(other, frontend())
    assert len(counted) == 2  # another dataset fingerprint is another entry


def test_load_file_reads_a_cache_file_alone(tmp_path, dataset):
    cache = FeatureCache(tmp_path)
    computed = cache.get(dataset, frontend(representation="1d"))
    loaded = FeatureCache.load_file(cache.path(dataset, frontend()))
    assert loaded.frontend == frontend()  # rebuilt from the feature key, representation "2d"
    assert torch.equal(loaded.x["test"], computed.x["test"])
    assert loaded.dataset_fingerprint == dataset.fingerprint
    _garbage(cache.path(dataset, frontend()))
    with pytest.raises(ValueError, match="is corrupt"):
        FeatureCache.load_file(cache.path(dataset, frontend()))
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        FeatureCache.load_file(tmp_path / "nothing.pt")


def _tamper_tensor(path):
    blob = torch.load(path, weights_only=True)
    blob["x"]["val"][0, 0, 0] += 1.0
    torch.save(blob, path)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _garbage(path):
    path.write_bytes(b"\x00not a torch file" * 10)


@pytest.mark.parametrize("corrupt", [_tamper_tensor, _truncate, _garbage])
def test_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path, dataset, counted, corrupt):
    good = FeatureCache(tmp_path).get(dataset, frontend())
    (path,) = tmp_path.iterdir()
    corrupt(path)
    with pytest.warns(CorruptCacheWarning, match=str(path)):
        again = FeatureCache(tmp_path).get(dataset, frontend())
    assert len(counted) == 2
    assert all(torch.equal(again.x[s], good.x[s]) for s in ("train", "val", "test"))
    FeatureCache(tmp_path).get(dataset, frontend())  # rewritten: loads cleanly now
    assert len(counted) == 2


def test_cache_file_of_another_front_end_is_not_used(tmp_path, dataset, counted):
    cache = FeatureCache(tmp_path)
    cache.get(dataset, frontend(n_mels=16))
    cache.path(dataset, frontend(n_mels=16)).replace(cache.path(dataset, frontend()))
    with pytest.warns(CorruptCacheWarning, match="another dataset or front end"):
        fs = FeatureCache(tmp_path).get(dataset, frontend())
    assert len(counted) == 2 and fs.x["train"].shape[1] == 20


def test_default_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path))
    assert FeatureCache().root == tmp_path / "features"
    monkeypatch.delenv("MOO_AUDIO_CACHE")
    assert default_cache_root() == default_cache_root().home() / ".cache" / "moo_audio" / "features"
