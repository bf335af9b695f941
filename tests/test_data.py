"""Tests for moo_audio.data: audio decoding, the dataset object, the built-in set and the loaders.

Every loader is exercised on a tiny copy of its real layout written here, with a stereo file, a
22.05 kHz file, a corrupt file and an empty file among the clips.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from moo_audio.data import (
    BUILTIN_CLASSES,
    LOADERS,
    AudioDataset,
    SkippedFileWarning,
    builtin_sound_events,
    compute_features,
    fit_length,
    load_audioset,
    load_dataset,
    load_esc50,
    load_folder,
    load_fsdd,
    load_speech_commands,
    read_clip,
    stratified_split,
)
from moo_audio.data.dataset import SPLITS
from moo_audio.space import FrontEnd

SR = 8000
CLIP_MS = 250
N = SR * CLIP_MS // 1000
SHARED = Path(os.environ.get("MOO_AUDIO_SHARED", Path(__file__).resolve().parents[2] / "shared"))


# ---- fixture writers -----------------------------------------------------------------------------
def tone(freq: float, seconds: float = 0.2, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


def write_wav(path: Path, data: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype="PCM_16")
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio" * 4)
    return path


def write_empty(path: Path) -> Path:
    return write_wav(path, np.zeros(0))


def write_odd_files(folder: Path, fmt: str = "{kind}.wav", amp: float = 0.5) -> dict[str, Path]:
    """The four awkward files (stereo, 22.05 kHz, corrupt, empty), named by ``fmt`` with
    ``{kind}`` and ``{i}`` (0-3)."""
    name = {kind: folder / fmt.format(kind=kind, i=i)
            for i, kind in enumerate(("stereo", "rate", "corrupt", "empty"))}
    return {
        "stereo": write_wav(name["stereo"], np.stack([tone(440, amp=amp), tone(440, amp=amp)], 1)),
        "rate": write_wav(name["rate"], tone(440, sr=22050, amp=amp), sr=22050),
        "corrupt": write_corrupt(name["corrupt"]),
        "empty": write_empty(name["empty"]),
    }


def assert_split_contract(ds: AudioDataset) -> None:
    assert set(ds.splits) == {"train", "val", "test"}
    seen = np.concatenate(list(ds.splits.values()))
    assert len(np.unique(seen)) == len(seen)
    for idx in ds.splits.values():
        assert np.all(np.diff(idx) > 0) and idx.dtype == np.int64
    assert ds.waveforms.shape == (len(ds.labels), ds.sample_rate * ds.clip_ms // 1000)
    assert ds.waveforms.dtype == torch.float32 and ds.labels.dtype == torch.int64


def skipped_names(record) -> str:
    messages = [str(w.message) for w in record if issubclass(w.category, SkippedFileWarning)]
    assert len(messages) == 1, messages
    return messages[0]


# ---- decoding ------------------------------------------------------------------------------------
def test_fit_length_centre_crops_and_pads():
    x = torch.arange(10.0)
    assert fit_length(x, 4).tolist() == [3, 4, 5, 6]
    assert fit_length(x[:3], 6).tolist() == [0, 0, 1, 2, 0, 0]
    assert fit_length(x, 10) is x


def test_read_clip_mixes_stereo_and_resamples(tmp_path):
    path = write_wav(tmp_path / "stereo.wav", np.stack([tone(440), tone(440, amp=0.1)], 1))
    expected = (tone(440) + tone(440, amp=0.1)) / 2
    assert torch.allclose(read_clip(path, SR, 1600), torch.from_numpy(expected).float(), atol=1e-3)
    resampled = read_clip(write_odd_files(tmp_path)["rate"], SR, 1600)  # 0.2 s at 22.05 kHz
    assert resampled.shape == (1600,)
    spectrum = torch.fft.rfft(resampled).abs()
    assert abs(spectrum.argmax().item() * SR / 1600 - 440) <= SR / 1600


@pytest.mark.parametrize("kind, message", [("corrupt", "cannot decode"), ("empty", "zero samples")])
def test_read_clip_names_bad_files(tmp_path, kind, message):
    path = write_odd_files(tmp_path, "x_{kind}.wav")[kind]
    with pytest.raises(ValueError, match=message) as err:
        read_clip(path, SR, N)
    assert str(path) in str(err.value)


def test_read_clip_names_missing_file(tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        read_clip(tmp_path / "gone.wav", SR, N)


# ---- the dataset object --------------------------------------------------------------------------
def small_dataset(**changes) -> AudioDataset:
    rng = np.random.default_rng(0)
    fields = dict(
        name="toy", waveforms=torch.from_numpy(rng.standard_normal((9, 80)).astype(np.float32)),
        labels=torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]), class_names=["a", "b", "c"],
        sample_rate=8000, clip_ms=10,
        splits={"train": np.array([0, 3, 6]), "val": np.array([1, 4, 7]), "test": np.array([2, 5, 8])})
    fields.update(changes)
    return AudioDataset(**fields)


def test_dataset_fingerprint_follows_content():
    ds = small_dataset()
    assert ds.n_classes == 3 and len(ds.fingerprint) == 32
    assert small_dataset().fingerprint == ds.fingerprint
    other = ds.waveforms.clone()
    other[0, 0] += 1e-3
    assert small_dataset(waveforms=other).fingerprint != ds.fingerprint
    resplit = {"train": np.array([0, 4, 6]), "val": np.array([1, 3, 7]), "test": np.array([2, 5, 8])}
    assert small_dataset(splits=resplit).fingerprint != ds.fingerprint
    assert "waveforms" not in repr(ds)


def test_dataset_rejects_class_without_training_example():
    splits = {"train": np.array([0, 3]), "val": np.array([1, 4, 6]), "test": np.array([2, 5, 7, 8])}
    with pytest.raises(ValueError, match=r"\['c'\] have no example in the train split"):
        small_dataset(splits=splits)


@pytest.mark.parametrize("changes, message", [
    (dict(labels=torch.tensor([0, 1, 2])), "9 waveforms but 3 labels"),
    (dict(labels=torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2], dtype=torch.int32)), "int64"),
    (dict(labels=torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3])), r"labels must lie in \[0, 3\)"),
    (dict(clip_ms=20), "80 samples, but 20 ms at 8000 Hz is 160"),
    (dict(waveforms=torch.zeros((9, 80), dtype=torch.float64)), "float32"),
    (dict(class_names=["a", "b", "b"]), "duplicate class names"),
    (dict(splits={"train": np.array([0, 3, 6]), "val": np.array([1, 4, 7])}), "exactly the keys"),
    (dict(splits={"train": np.array([0, 3, 6, 1]), "val": np.array([4, 7]), "test": np.array([2, 5])}),
     "sorted"),
    (dict(splits={"train": np.array([0, 3, 6]), "val": np.array([1, 3]), "test": np.array([2])}),
     "'train' and 'val' share example"),
    (dict(splits={"train": np.array([0, 3, 6]), "val": np.array([1, 9]), "test": np.array([2])}),
     "outside"),
    (dict(splits={"train": np.array([0, 3, 6]), "val": np.array([], dtype=int), "test": np.array([2])}),
     "'val' is empty"),
    (dict(fingerprint="not hex!"), "hex"),
])
def test_dataset_validation_names_the_problem(changes, message):
    with pytest.raises(ValueError, match=message):
        small_dataset(**changes)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dataset_rejects_non_finite_samples(bad):
    w = small_dataset().waveforms.clone()
    w[4, 7] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite samples in example\(s\) \[4\]"):
        small_dataset(waveforms=w)


def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = np.repeat(np.arange(4), [10, 20, 5, 1])
    a, b = stratified_split(labels, 3), stratified_split(labels, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], stratified_split(labels, 4)[k]) for k in a)
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), np.arange(len(labels)))
    counts = {k: np.bincount(labels[v], minlength=4).tolist() for k, v in a.items()}
    assert counts == {"train": [6, 12, 3, 1], "val": [2, 4, 1, 0], "test": [2, 4, 1, 0]}


# ---- the built-in dataset ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def builtin_default():
    start = time.process_time()
    ds = builtin_sound_events()
    return ds, time.process_time() - start


def test_builtin_default_is_fast_and_well_formed(builtin_default):
    ds, cpu_seconds = builtin_default
    assert cpu_seconds < 5.0
    assert ds.name == "builtin" and ds.class_names == BUILTIN_CLASSES and ds.n_classes >= 10
    assert_split_contract(ds)
    assert ds.waveforms.shape == (60 * ds.n_classes, 16000)
    assert np.bincount(ds.labels.numpy()).tolist() == [60] * ds.n_classes
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 36 * 12, "val": 144, "test": 144}
    peaks = ds.waveforms.abs().amax(dim=1)
    assert peaks.max() < 1.0 and peaks.min() > 10 ** (-31 / 20)


def test_builtin_is_deterministic_and_seeded():
    a = builtin_sound_events(n_per_class=3, clip_ms=300, sample_rate=8000)
    b = builtin_sound_events(n_per_class=3, clip_ms=300, sample_rate=8000)
    assert a.fingerprint == b.fingerprint and torch.equal(a.waveforms, b.waveforms)
    c = builtin_sound_events(n_per_class=3, clip_ms=300, sample_rate=8000, seed=1)
    assert c.fingerprint != a.fingerprint and not torch.equal(a.waveforms, c.waveforms)
    # clip i of class c depends on (seed, c, i) only: a larger set keeps the smaller one's clips
    d = builtin_sound_events(n_per_class=5, clip_ms=300, sample_rate=8000)
    assert torch.equal(a.waveforms[:3], d.waveforms[:3])


def test_builtin_is_learnable_but_not_trivial(builtin_default):
    """A linear model on time-pooled log-mel beats chance by far but is not perfect."""
    from sklearn.linear_model import LogisticRegression

    ds, _ = builtin_default
    features = compute_features(ds, FrontEnd())

    def pooled(split):
        x, y = features.split(split)
        return torch.cat([x.mean(2), x.std(2)], 1).numpy(), y.numpy()

    model = LogisticRegression(max_iter=2000).fit(*pooled("train"))
    accuracy = model.score(*pooled("test"))
    assert 0.5 < accuracy < 0.95, accuracy


@pytest.mark.parametrize("options, message", [
    (dict(n_per_class=2), "n_per_class"),
    (dict(snr_db=(10, 0)), "snr_db"),
    (dict(sample_rate=4000), "at least 8000"),
    (dict(clip_ms=0), "clip_ms"),
    (dict(seed=-1), "seed"),
])
def test_builtin_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        builtin_sound_events(**options)


# ---- registry ------------------------------------------------------------------------------------
def test_registry_names_and_options():
    assert set(LOADERS) == {"builtin", "fsdd", "esc50", "speech_commands", "audioset", "folder"}
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'.*'audioset'.*'builtin'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_clips'\]"):
        load_dataset("builtin", n_clips=3)
    with pytest.raises(ValueError, match=r"missing required option\(s\) \['root'\]"):
        load_dataset("fsdd")
    ds = load_dataset("builtin", n_per_class=3, clip_ms=200)
    assert ds.fingerprint == builtin_sound_events(n_per_class=3, clip_ms=200).fingerprint


@pytest.mark.parametrize("name, extra", [
    ("folder", {}), ("fsdd", {}), ("esc50", {}), ("speech_commands", {}),
    ("audioset", {"segments": "x.csv", "classes": ["Speech", "Dog"],
                  "ontology": {"Speech": "/m/1", "Dog": "/m/2"}}),
])
def test_missing_root_is_named(tmp_path, name, extra):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        load_dataset(name, root=missing, **extra)


# ---- folder per class ----------------------------------------------------------------------------
def make_folder(root: Path) -> dict[str, Path]:
    for c, freq in enumerate((300, 900, 2000)):
        for i in range(5):
            write_wav(root / f"class_{c}" / f"clip{i}.wav", tone(freq * (1 + 0.02 * i)))
    (root / "class_0" / "notes.txt").write_text("not audio")
    return write_odd_files(root / "class_1")


def test_folder_loader(tmp_path):
    odd = make_folder(tmp_path)
    with pytest.warns(SkippedFileWarning) as record:
        ds = load_folder(tmp_path, sample_rate=SR, clip_ms=CLIP_MS)
    message = skipped_names(record)
    assert str(odd["corrupt"]) in message and str(odd["empty"]) in message
    assert str(odd["stereo"]) not in message and str(odd["rate"]) not in message
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    assert np.bincount(ds.labels.numpy()).tolist() == [5, 7, 5]
    assert_split_contract(ds)
    assert sum(len(v) for v in ds.splits.values()) == 17
    for c in range(3):  # stratified: every class in every split
        assert all(c in ds.labels[v].tolist() for v in ds.splits.values())
    with pytest.warns(SkippedFileWarning):
        again = load_dataset("folder", root=tmp_path, sample_rate=SR, clip_ms=CLIP_MS)
    assert again.fingerprint == ds.fingerprint


def test_folder_loader_raise_names_the_file(tmp_path):
    odd = make_folder(tmp_path)
    with pytest.raises(ValueError, match="corrupt.wav: cannot decode"):
        load_folder(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, on_error="raise")
    odd["corrupt"].unlink()
    with pytest.raises(ValueError, match="empty.wav: empty audio file"):
        load_folder(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, on_error="raise")
    with pytest.raises(ValueError, match="on_error must be one of"):
        load_folder(tmp_path, on_error="ignore")


def test_folder_loader_names_an_empty_class(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "class_3").mkdir()
    with pytest.warns(SkippedFileWarning), pytest.raises(ValueError, match=r"\['class_3'\] have no example"):
        load_folder(tmp_path, sample_rate=SR, clip_ms=CLIP_MS)


# ---- FSDD ----------------------------------------------------------------------------------------
SPEAKERS = ("ann", "bob", "cid", "dee")


def make_fsdd(root: Path, takes: int = 2) -> dict[str, Path]:
    """Speaker ``k`` speaks at amplitude ``0.1 (k + 1)``, so that examples reveal their speaker."""
    for digit in range(3):
        for k, speaker in enumerate(SPEAKERS):
            for i in range(takes):
                clip = tone(200 + 300 * digit + 10 * i, amp=0.1 * (k + 1))
                write_wav(root / f"{digit}_{speaker}_{i}.wav", clip)
    odd = write_odd_files(root, "2_dee_9{i}.wav", amp=0.4)
    return {**odd, "misnamed": write_wav(root / "readme.wav", tone(100))}


def speakers_of(ds: AudioDataset, split: str) -> set[str]:
    peaks = ds.waveforms[ds.splits[split]].abs().amax(dim=1)
    return {SPEAKERS[int(k)] for k in torch.round(peaks * 10) - 1}


def test_fsdd_speaker_split(tmp_path):
    odd = make_fsdd(tmp_path)
    with pytest.warns(SkippedFileWarning) as record:
        ds = load_fsdd(tmp_path, clip_ms=CLIP_MS)
    message = skipped_names(record)
    for kind in ("corrupt", "empty", "misnamed"):
        assert str(odd[kind]) in message
    assert str(odd["stereo"]) not in message and str(odd["rate"]) not in message
    assert ds.class_names == ["0", "1", "2"] and len(ds.labels) == 24 + 2
    assert_split_contract(ds)
    groups = {s: speakers_of(ds, s) for s in ("train", "val", "test")}
    assert len(groups["val"]) == 1 and len(groups["test"]) == 1 and len(groups["train"]) == 2
    assert set().union(*groups.values()) == set(SPEAKERS)
    with pytest.warns(SkippedFileWarning):
        assert load_fsdd(tmp_path, clip_ms=CLIP_MS).fingerprint == ds.fingerprint


def test_fsdd_named_speakers_and_random_split(tmp_path):
    make_fsdd(tmp_path, takes=5)
    for p in tmp_path.glob("2_dee_9*.wav"):
        p.unlink()
    (tmp_path / "readme.wav").unlink()
    ds = load_fsdd(tmp_path, clip_ms=CLIP_MS, val_speakers="bob", test_speakers=["ann", "cid"])
    assert speakers_of(ds, "val") == {"bob"}
    assert speakers_of(ds, "test") == {"ann", "cid"}
    assert speakers_of(ds, "train") == {"dee"}
    rnd = load_fsdd(tmp_path, clip_ms=CLIP_MS, split="random")
    assert_split_contract(rnd)
    assert [np.bincount(rnd.labels[v].numpy()).tolist() for v in rnd.splits.values()] == \
        [[12, 12, 12], [4, 4, 4], [4, 4, 4]]
    with pytest.raises(ValueError, match=r"unknown speaker\(s\) \['zed'\]"):
        load_fsdd(tmp_path, val_speakers=["zed"])
    with pytest.raises(ValueError, match="both val_speakers and test_speakers"):
        load_fsdd(tmp_path, val_speakers=["bob"], test_speakers=["bob"])
    with pytest.raises(ValueError, match="a speaker each for train"):
        load_fsdd(tmp_path, val_speakers=["bob", "dee"], test_speakers=["ann", "cid"])
    with pytest.raises(ValueError, match="need split='speaker'"):
        load_fsdd(tmp_path, split="random", val_speakers=["bob"])
    with pytest.raises(ValueError, match="split must be"):
        load_fsdd(tmp_path, split="by_digit")


def test_fsdd_raise_names_the_file(tmp_path):
    make_fsdd(tmp_path)
    with pytest.raises(ValueError, match="readme.wav: name does not follow"):
        load_fsdd(tmp_path, on_error="raise")


@pytest.fixture(scope="module")
def real_fsdd() -> Path:
    root = SHARED / "data" / "fsdd" / "recordings"
    if not root.is_dir():
        pytest.skip(f"real FSDD not found at {root} (set MOO_AUDIO_SHARED to the shared/ folder)")
    return root


def test_real_fsdd_speaker_split(real_fsdd):
    ds = load_dataset("fsdd", root=real_fsdd)
    assert ds.waveforms.shape == (2500, 8000) and ds.class_names == [str(d) for d in range(10)]
    assert_split_contract(ds)
    names = np.array(sorted(p.name for p in real_fsdd.glob("*.wav")))
    groups = {s: {n.split("_")[1] for n in names[v]} for s, v in ds.splits.items()}
    assert groups == {"train": {"george", "jackson", "nicolas"}, "val": {"lucas"}, "test": {"yweweler"}}
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 1500, "val": 500, "test": 500}
    assert float(ds.waveforms.abs().amax(dim=1).min()) > 0.01  # no silent clip from a bad decode


# ---- ESC-50 --------------------------------------------------------------------------------------
ESC_HEADER = "filename,fold,target,category,esc10,src_file,take\n"
ESC_CLASSES = [(0, "dog", True), (10, "rain", False), (41, "chainsaw", True)]


def make_esc50(root: Path) -> dict[str, Path]:
    rows = []
    for fold in range(1, 6):
        for target, category, esc10 in ESC_CLASSES:
            name = f"{fold}-{target}-A-{category}.wav"
            write_wav(root / "audio" / name, tone(300 + 10 * target + fold, seconds=0.3))
            rows.append(f"{name},{fold},{target},{category},{esc10},{target}{fold},A")
    odd = write_odd_files(root / "audio", "1-0-B-{kind}.wav")
    rows += [f"{p.name},1,0,dog,True,x,B" for p in odd.values()]
    rows.append("1-0-C-missing.wav,1,0,dog,True,y,C")
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text(ESC_HEADER + "\n".join(rows) + "\n")
    return {**odd, "missing": root / "audio" / "1-0-C-missing.wav"}


def test_esc50_loader(tmp_path):
    odd = make_esc50(tmp_path)
    with pytest.warns(SkippedFileWarning) as record:
        ds = load_esc50(tmp_path, sample_rate=SR, clip_ms=CLIP_MS)
    message = skipped_names(record)
    for kind in ("corrupt", "empty", "missing"):
        assert str(odd[kind]) in message
    assert ds.class_names == ["dog", "rain", "chainsaw"]
    assert_split_contract(ds)
    assert [len(v) for v in ds.splits.values()] == [9 + 2, 3, 3]
    for split in ("val", "test"):
        assert sorted(ds.labels[ds.splits[split]].tolist()) == [0, 1, 2]
    with pytest.warns(SkippedFileWarning):
        esc10 = load_dataset("esc50", root=tmp_path, sample_rate=SR, clip_ms=CLIP_MS, esc10_only=True,
                             val_fold=1, test_fold=2)
    assert esc10.class_names == ["dog", "chainsaw"]
    assert len(esc10.splits["val"]) == 2 + 2 and len(esc10.splits["test"]) == 2


def test_esc50_validation(tmp_path):
    make_esc50(tmp_path)
    with pytest.raises(ValueError, match="1-0-B-corrupt.wav: cannot decode"):
        load_esc50(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, on_error="raise")
    with pytest.raises(ValueError, match="must differ"):
        load_esc50(tmp_path, val_fold=3, test_fold=3)
    with pytest.raises(ValueError, match=r"test_fold=7 is not a fold .* \(folds \[1, 2, 3, 4, 5\]\)"):
        load_esc50(tmp_path, test_fold=7)
    meta = tmp_path / "meta" / "esc50.csv"
    meta.write_text(meta.read_text().replace(",10,rain,", ",10,snow,", 1))
    with pytest.raises(ValueError, match="target 10 two categories"):
        load_esc50(tmp_path)
    meta.write_text("filename,fold,category\nx.wav,1,dog\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['target', 'esc10'\]"):
        load_esc50(tmp_path)
    meta.write_text(ESC_HEADER + "x.wav,one,0,dog,True,x,A\n")
    with pytest.raises(ValueError, match=r"esc50.csv:2: column 'fold' has invalid value 'one'"):
        load_esc50(tmp_path)
    meta.unlink()
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        load_esc50(tmp_path)


# ---- Speech Commands -----------------------------------------------------------------------------
def make_speech_commands(root: Path) -> dict[str, Path]:
    for w, word in enumerate(("yes", "no", "up", "down")):
        for i in range(5):
            write_wav(root / word / f"spk{i}_nohash_0.wav", tone(300 + 200 * w + 5 * i))
    write_wav(root / "_background_noise_" / "white_noise.wav", np.random.default_rng(0).normal(0, 0.1, 4000))
    odd = write_odd_files(root / "yes", "odd_{kind}.wav")
    (root / "validation_list.txt").write_text(
        "yes/spk0_nohash_0.wav\nno/spk0_nohash_0.wav\nup/spk0_nohash_0.wav\ndown/spk0_nohash_0.wav\n"
        "no/spk9_nohash_0.wav\n")
    (root / "testing_list.txt").write_text(
        "yes/spk1_nohash_0.wav\nno/spk1_nohash_0.wav\nup/spk1_nohash_0.wav\ndown/spk1_nohash_0.wav\n")
    return {**odd, "missing": root / "no" / "spk9_nohash_0.wav"}


def test_speech_commands_loader(tmp_path):
    odd = make_speech_commands(tmp_path)
    with pytest.warns(SkippedFileWarning) as record:
        ds = load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS)
    message = skipped_names(record)
    for kind in ("corrupt", "empty", "missing"):
        assert str(odd[kind]) in message
    assert "white_noise" not in message
    assert ds.class_names == ["down", "no", "up", "yes"]
    assert_split_contract(ds)
    assert [len(v) for v in ds.splits.values()] == [12 + 2, 4, 4]
    assert len(ds.labels) == 22

    with pytest.warns(SkippedFileWarning):
        sub = load_dataset("speech_commands", root=tmp_path, sample_rate=SR, clip_ms=CLIP_MS,
                           words=["yes", "no"], fold_unknown=True)
    assert sub.class_names == ["yes", "no", "_unknown_"]
    assert np.bincount(sub.labels.numpy()).tolist() == [7, 5, 10]
    only = load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, words=["up", "down"])
    assert only.class_names == ["up", "down"] and len(only.labels) == 10


def test_speech_commands_validation(tmp_path):
    make_speech_commands(tmp_path)
    with pytest.raises(ValueError, match=r"unknown word\(s\) \['left'\]"):
        load_speech_commands(tmp_path, words=["yes", "left"])
    with pytest.raises(ValueError, match="fold_unknown=True needs"):
        load_speech_commands(tmp_path, fold_unknown=True)
    with pytest.raises(ValueError, match="odd_corrupt.wav: cannot decode"):
        load_speech_commands(tmp_path, words=["yes", "up"], on_error="raise", clip_ms=CLIP_MS)
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt"):
        load_speech_commands(tmp_path)


def make_speech_commands_12(root: Path) -> None:
    """The layout of the 12-class test set: two keywords, _unknown_, _silence_, _background_noise_."""
    for w, word in enumerate(("yes", "no")):
        for spk in range(6):
            for n in range(2):
                write_wav(root / word / f"{spk:08x}_nohash_{n}.wav", tone(300 + 200 * w + 5 * spk))
    for spk in range(6):
        write_wav(root / "_unknown_" / f"bed_{spk:08x}_nohash_0.wav.wav", tone(900 + 5 * spk))
    rng = np.random.default_rng(0)
    for n in range(5):
        write_wav(root / "_silence_" / f"{n}.wav", rng.normal(0, 0.05, SR // 4))
    write_wav(root / "_background_noise_" / "pink.wav", rng.normal(0, 0.1, SR))


def test_speech_commands_12_class_layout_split_by_speaker(tmp_path):
    make_speech_commands_12(tmp_path)
    ds = load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, words=["yes", "no"], fold_unknown=True,
                              silence=True, split="speaker", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert ds.class_names == ["yes", "no", "_unknown_", "_silence_"]
    assert_split_contract(ds)
    assert np.bincount(ds.labels.numpy()).tolist() == [12, 12, 6, 5]
    speakers = {s: set(ds.groups[ds.splits[s]]) - {""} for s in SPLITS}
    assert all(speakers[a].isdisjoint(speakers[b]) for a in SPLITS for b in SPLITS if a < b)
    assert len(speakers["val"]) == len(speakers["test"]) == 1  # 20% of 6 speakers
    assert set(ds.groups[ds.labels.numpy() == 3]) == {""}  # silence has no speaker
    assert ds.noise.shape == (7, SR * CLIP_MS // 1000)  # 1 s of noise in half-overlapping 250 ms segments
    again = load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, words=["yes", "no"], fold_unknown=True,
                                 silence=True, split="speaker", val_fraction=0.2, test_fraction=0.2, seed=3)
    assert again.fingerprint == ds.fingerprint
    with pytest.raises(FileNotFoundError, match="split='speaker'.*validation_list.txt"):
        load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, words=["yes", "no"])


def test_speech_commands_silence_cut_from_background_noise(tmp_path):
    make_speech_commands(tmp_path)
    with pytest.warns(SkippedFileWarning):
        ds = load_speech_commands(tmp_path, sample_rate=SR, clip_ms=CLIP_MS, silence=True)
    assert ds.class_names[-1] == "_silence_"
    silence = ds.labels.numpy() == len(ds.class_names) - 1
    assert silence.sum() == round((len(ds.labels) - silence.sum()) / 4)  # a word class's mean size
    assert ds.waveforms[torch.from_numpy(silence)].abs().max() > 0


def test_speech_commands_download_goes_through_torchaudio(tmp_path, monkeypatch):
    import torchaudio

    calls = []

    def fake(root, url, download):
        calls.append((root, url, download))
        make_speech_commands(Path(root) / "SpeechCommands" / "speech_commands_v0.02")

    monkeypatch.setattr(torchaudio.datasets, "SPEECHCOMMANDS", fake)
    root = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    with pytest.warns(SkippedFileWarning):
        ds = load_speech_commands(root, sample_rate=SR, clip_ms=CLIP_MS, download=True)
    assert calls == [(str(tmp_path), "speech_commands_v0.02", True)] and len(ds.class_names) == 4
    with pytest.raises(ValueError, match="download=True needs root to end in SpeechCommands"):
        load_speech_commands(tmp_path / "elsewhere", download=True)


def test_real_speech_commands_12_class_test_set():
    from moo_audio.problem_files import load_problem

    if not (SHARED / "data" / "speech_commands_v2_test").is_dir():
        pytest.skip(f"the shared Speech Commands test set is not at {SHARED} (set MOO_AUDIO_SHARED)")
    ds = load_problem("speech_commands_12").load_dataset()
    assert len(ds.class_names) == 12 and ds.class_names[-2:] == ["_unknown_", "_silence_"]
    assert len(ds.labels) == 4168 and ds.noise is not None
    speakers = {s: set(ds.groups[ds.splits[s]]) - {""} for s in SPLITS}
    assert sum(len(v) for v in speakers.values()) == 197
    assert all(speakers[a].isdisjoint(speakers[b]) for a in SPLITS for b in SPLITS if a < b)


# ---- AudioSet ------------------------------------------------------------------------------------
ONTOLOGY = [{"id": "/m/09x0r", "name": "Speech", "child_ids": []},
            {"id": "/m/0bt9lr", "name": "Dog", "child_ids": []},
            {"id": "/m/04rlf", "name": "Music", "child_ids": []},
            {"id": "/m/0jbk", "name": "Animal", "child_ids": ["/m/0bt9lr"]}]


def make_audioset(root: Path) -> dict[str, Path]:
    clips = root / "clips"
    lines = ["# Segments csv created Sun Mar  5 10:54:31 2017",
             "# num_ytids=12, num_segs=12, num_unique_labels=3, num_positive_labels=14",
             "# YTID, start_seconds, end_seconds, positive_labels"]
    for i in range(5):
        write_wav(clips / f"sp{i}.wav", tone(250 + 10 * i, seconds=0.3))
        lines.append(f'sp{i}, 30.000, 40.000, "/m/09x0r,/m/04rlf"')
        write_wav(clips / f"dg{i}_{10 * i}.000.wav", tone(900 + 10 * i, seconds=0.3))
        lines.append(f'dg{i}, {10 * i}.000, {10 * i + 10}.000, "/m/0jbk,/m/0bt9lr"')
    write_wav(clips / "mu0_7.wav", tone(2000, seconds=0.3))
    lines.append('mu0, 7.500, 17.500, "/m/04rlf"')  # no chosen class: dropped quietly
    odd = write_odd_files(clips, "od{kind}.wav")
    for kind in odd:
        lines.append(f'od{kind}, 0.000, 10.000, "/m/09x0r"')
    lines.append('gone1, 0.000, 10.000, "/m/0bt9lr"')
    (root / "segments.csv").write_text("\n".join(lines) + "\n")
    (root / "ontology.json").write_text(json.dumps(ONTOLOGY))
    return {**odd, "missing": clips / "gone1.wav"}


def test_audioset_loader(tmp_path):
    odd = make_audioset(tmp_path)
    options = dict(segments=tmp_path / "segments.csv", sample_rate=SR, clip_ms=CLIP_MS)
    with pytest.warns(SkippedFileWarning) as record:
        ds = load_audioset(tmp_path / "clips", classes=["Speech", "Dog"],
                           ontology=tmp_path / "ontology.json", **options)
    message = skipped_names(record)
    for kind in ("corrupt", "empty", "missing"):
        assert str(odd[kind]) in message
    assert "mu0" not in message
    assert ds.class_names == ["Speech", "Dog"]
    assert np.bincount(ds.labels.numpy()).tolist() == [7, 5]
    assert_split_contract(ds)
    # a clip takes the first chosen class among its labels; a name->MID mapping works too
    with pytest.warns(SkippedFileWarning):
        music = load_dataset("audioset", root=tmp_path / "clips", classes=["Music", "Speech"],
                             ontology={"Music": "/m/04rlf", "Speech": "/m/09x0r"}, **options)
    assert np.bincount(music.labels.numpy()).tolist() == [6, 2]


def test_audioset_validation(tmp_path):
    make_audioset(tmp_path)
    options = dict(root=tmp_path / "clips", segments=tmp_path / "segments.csv", sample_rate=SR,
                   clip_ms=CLIP_MS, ontology=tmp_path / "ontology.json")
    subset = {**options, "segments": _only(tmp_path, ["dg0", "gone1", "sp0"])}
    with pytest.raises(ValueError, match=r"gone1.wav: clip file missing"):
        load_audioset(classes=["Dog", "Speech"], on_error="raise", **subset)
    with pytest.raises(ValueError, match=r"\['Cat'\] are not in the ontology"):
        load_audioset(classes=["Speech", "Cat"], **options)
    (tmp_path / "bad.json").write_text(json.dumps([{"mid": "/m/1", "label": "x"}]))
    with pytest.raises(ValueError, match="not an AudioSet ontology"):
        load_audioset(classes=["Speech", "Dog"], **{**options, "ontology": tmp_path / "bad.json"})
    (tmp_path / "bad.csv").write_text("# header\nsp0, 30.000, 40.000\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected YTID"):
        load_audioset(classes=["Speech", "Dog"], **{**options, "segments": tmp_path / "bad.csv"})


def _only(root: Path, ytids: list[str]) -> Path:
    """A copy of the segment CSV keeping the rows of ``ytids``."""
    lines = (root / "segments.csv").read_text().splitlines()
    out = root / "subset.csv"
    out.write_text("\n".join(l for l in lines if l.split(",")[0] in ytids) + "\n")
    return out
