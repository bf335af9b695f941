"""Loaders of datasets on disk, and the registry :func:`load_dataset`.

Every loader validates its options first, lists the files its layout defines, then decodes them
through :func:`~moo_audio.data.audio_io.load_clips` (mono, resampled, centre-cropped or
zero-padded). Bad files follow ``on_error``: ``"warn"`` skips them with one warning naming each,
``"raise"`` raises a ``ValueError`` naming the first. Malformed metadata (CSV, lists, ontology)
always raises, naming the file and line.
"""

from __future__ import annotations

import csv
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moo_audio.data.audio_io import (
    AUDIO_SUFFIXES,
    BadFiles,
    check_rate_and_clip,
    load_clips,
    n_samples_of,
    read_audio,
    require_dir,
    require_file,
    torchaudio,
)
from moo_audio.data.builtin import builtin_sound_events
from moo_audio.data.dataset import SPLITS, AudioDataset, make_dataset, stratified_split

PathLike = str | Path


# ---- shared steps --------------------------------------------------------------------------------
def _audio_files(folder: Path) -> list[Path]:
    """Audio files directly in ``folder``, sorted by name (hidden files ignored)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def _subfolders(folder: Path, skip_prefixes: tuple[str, ...] = (".",)) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(skip_prefixes))


def _check_seed(seed: Any, where: str) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {seed!r}")


def _names(value: str | Sequence[str] | None, option: str, where: str) -> list[str]:
    """A name or list of names -> list (``None`` -> empty), rejecting repeats and non-strings."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in names):
        raise ValueError(f"{where}: {option} must be names (strings), got {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: {option} repeats a name: {names}")
    return names


def _build(
    name: str,
    paths: list[Path],
    labels: list[int],
    class_names: list[str],
    sample_rate: int,
    clip_ms: int,
    bad: BadFiles,
    options: Mapping[str, Any],
    split_of: list[str] | None = None,
    seed: int = 0,
    groups: list[str] | None = None,
    noise: torch.Tensor | None = None,
    extra: tuple[torch.Tensor, list[int], list[str]] | None = None,
) -> AudioDataset:
    """Decode ``paths`` and assemble the dataset; ``split_of[i]`` names the split of file ``i``
    (``None``: a stratified 60/20/20 split drawn with ``seed``), ``groups[i]`` its group (speaker).
    ``extra``: clips made rather than read (waveforms, labels, splits), appended, with no group."""
    waveforms, kept = load_clips(paths, sample_rate, clip_ms, bad)
    if not kept and extra is None:
        raise ValueError(f"{name}: none of the {len(paths)} audio file(s) could be decoded")
    y = np.asarray(labels, dtype=np.int64)[kept]
    kept_splits = None if split_of is None else np.asarray(split_of, dtype=object)[kept]
    kept_groups = None if groups is None else np.asarray(groups, dtype=object)[kept]
    if extra is not None:
        waveforms = torch.cat([waveforms, extra[0]])
        y = np.concatenate([y, np.asarray(extra[1], dtype=np.int64)])
        kept_splits = np.concatenate([kept_splits, np.asarray(extra[2], dtype=object)])
        kept_groups = None if kept_groups is None else np.concatenate([kept_groups, [""] * len(extra[1])])
    if kept_splits is None:
        splits = stratified_split(y, seed)
    else:
        splits = {s: np.flatnonzero(kept_splits == s) for s in SPLITS}
    return make_dataset(name, waveforms, torch.from_numpy(y), class_names, sample_rate, clip_ms,
                        splits, options, kept_groups, noise)


def _read_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, as ``(line number, row)`` with stripped values (``""`` where
    a row is short); missing columns are named."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f, restval="")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return [(reader.line_num, {k: v.strip() for k, v in row.items() if k is not None})
                for row in reader]


def _parse(value: str, kind: Callable[[str], Any], where: str, column: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} has invalid value {value!r}") from None


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ValueError(text)


# ---- folder per class ----------------------------------------------------------------------------
def load_folder(
    root: PathLike,
    sample_rate: int = 16000,
    clip_ms: int = 1000,
    seed: int = 0,
    on_error: str = "warn",
) -> AudioDataset:
    """``root/<class>/*.wav`` (or ``.flac``); classes in name order; stratified 60/20/20 split."""
    check_rate_and_clip(sample_rate, clip_ms)
    _check_seed(seed, "folder")
    bad = BadFiles(on_error)
    root = require_dir(root, "dataset")
    with bad:
        class_dirs = _subfolders(root)
        if len(class_dirs) < 2:
            raise ValueError(f"folder dataset {root}: needs at least two class folders, "
                             f"found {[d.name for d in class_dirs]}")
        paths, labels = [], []
        for label, folder in enumerate(class_dirs):
            files = _audio_files(folder)
            paths += files
            labels += [label] * len(files)
        return _build("folder", paths, labels, [d.name for d in class_dirs], sample_rate, clip_ms,
                      bad, {"seed": seed}, seed=seed)


# ---- Free Spoken Digit Dataset -------------------------------------------------------------------
_FSDD_NAME = re.compile(r"(\d)_([^_]+)_(\d+)\.wav")


def load_fsdd(
    root: PathLike,
    sample_rate: int = 8000,
    clip_ms: int = 1000,
    split: str = "speaker",
    val_speakers: str | Sequence[str] | None = None,
    test_speakers: str | Sequence[str] | None = None,
    seed: int = 0,
    on_error: str = "warn",
) -> AudioDataset:
    """Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav`` files in ``root`` (or in
    ``root/recordings``). Classes are the digits.

    ``split="speaker"``: speaker-disjoint; speakers not named in ``val_speakers`` /
    ``test_speakers`` are shuffled with ``seed`` and fill an empty val, then an empty test, with
    one speaker each; the rest train. ``split="random"``: stratified 60/20/20 by digit.
    """
    check_rate_and_clip(sample_rate, clip_ms)
    _check_seed(seed, "fsdd")
    if split not in ("speaker", "random"):
        raise ValueError(f"fsdd: split must be 'speaker' or 'random', got {split!r}")
    val, test = _names(val_speakers, "val_speakers", "fsdd"), _names(test_speakers, "test_speakers", "fsdd")
    if split == "random" and (val or test):
        raise ValueError("fsdd: val_speakers/test_speakers need split='speaker'")
    bad = BadFiles(on_error)
    root = require_dir(root, "FSDD")
    if not any(root.glob("*.wav")) and (root / "recordings").is_dir():
        root = root / "recordings"
    with bad:
        entries = []
        for path in _audio_files(root):
            match = _FSDD_NAME.fullmatch(path.name)
            if match:
                entries.append((path, int(match[1]), match[2]))
            else:
                bad.add(f"{path}: name does not follow {{digit}}_{{speaker}}_{{index}}.wav")
        if not entries:
            raise ValueError(f"fsdd: no {{digit}}_{{speaker}}_{{index}}.wav files in {root}")
        digits = sorted({d for _, d, _ in entries})
        split_of = None
        if split == "speaker":
            assignment = _speaker_split(sorted({s for _, _, s in entries}), val, test, seed)
            split_of = [assignment[s] for _, _, s in entries]
        options = {"split": split, "val_speakers": val, "test_speakers": test, "seed": seed}
        return _build("fsdd", [p for p, _, _ in entries], [digits.index(d) for _, d, _ in entries],
                      [str(d) for d in digits], sample_rate, clip_ms, bad, options, split_of, seed,
                      groups=[s for _, _, s in entries])


def _speaker_split(speakers: list[str], val: list[str], test: list[str], seed: int) -> dict[str, str]:
    unknown = sorted(set(val + test) - set(speakers))
    if unknown:
        raise ValueError(f"fsdd: unknown speaker(s) {unknown}; the folder has {speakers}")
    both = sorted(set(val) & set(test))
    if both:
        raise ValueError(f"fsdd: speaker(s) {both} are in both val_speakers and test_speakers")
    free = [s for s in speakers if s not in val + test]
    rest = [str(s) for s in np.random.default_rng(seed).permutation(free)]
    if not val and rest:
        val = [rest.pop(0)]
    if not test and rest:
        test = [rest.pop(0)]
    if not (val and test and rest):
        raise ValueError(f"fsdd: a speaker split needs a speaker each for train, val and test; "
                         f"speakers {speakers}, val {val}, test {test} (use split='random')")
    return {s: "val" if s in val else "test" if s in test else "train" for s in speakers}


# ---- ESC-50 --------------------------------------------------------------------------------------
def load_esc50(
    root: PathLike,
    sample_rate: int = 16000,
    clip_ms: int = 5000,
    val_fold: int = 4,
    test_fold: int = 5,
    esc10_only: bool = False,
    on_error: str = "warn",
) -> AudioDataset:
    """ESC-50: ``root/meta/esc50.csv`` (filename, fold, target, category, esc10, ...) and
    ``root/audio/``. Classes ordered by ``target``; fold ``test_fold`` is test, ``val_fold`` val,
    the others train. ``esc10_only`` keeps the ESC-10 subset."""
    check_rate_and_clip(sample_rate, clip_ms)
    for option, fold in (("val_fold", val_fold), ("test_fold", test_fold)):
        if not isinstance(fold, (int, np.integer)) or isinstance(fold, bool):
            raise ValueError(f"esc50: {option} must be an integer, got {fold!r}")
    if val_fold == test_fold:
        raise ValueError(f"esc50: val_fold and test_fold must differ, both are {val_fold}")
    bad = BadFiles(on_error)
    root = require_dir(root, "ESC-50")
    meta = require_file(root / "meta" / "esc50.csv", "ESC-50 metadata file")
    audio = require_dir(root / "audio", "ESC-50 audio")
    records = []
    for line, row in _read_csv(meta, ("filename", "fold", "target", "category", "esc10")):
        where = f"{meta}:{line}"
        records.append((row["filename"], _parse(row["fold"], int, where, "fold"),
                        _parse(row["target"], int, where, "target"), row["category"],
                        _parse(row["esc10"], _bool, where, "esc10")))
    folds = sorted({r[1] for r in records})
    for option, fold in (("val_fold", val_fold), ("test_fold", test_fold)):
        if fold not in folds:
            raise ValueError(f"esc50: {option}={fold} is not a fold of {meta} (folds {folds})")
    if esc10_only:
        records = [r for r in records if r[4]]
    categories: dict[int, str] = {}
    for _, _, target, category, _ in records:
        if categories.setdefault(target, category) != category:
            raise ValueError(f"esc50: {meta} gives target {target} two categories, "
                             f"{categories[target]!r} and {category!r}")
    targets = sorted(categories)
    split_of = ["test" if r[1] == test_fold else "val" if r[1] == val_fold else "train" for r in records]
    options = {"val_fold": int(val_fold), "test_fold": int(test_fold), "esc10_only": bool(esc10_only)}
    with bad:
        return _build("esc50", [audio / r[0] for r in records], [targets.index(r[2]) for r in records],
                      [categories[t] for t in targets], sample_rate, clip_ms, bad, options, split_of)


# ---- Speech Commands -----------------------------------------------------------------------------
UNKNOWN_WORD = "_unknown_"
SILENCE = "_silence_"
NOISE_FOLDER = "_background_noise_"
SPEECH_COMMANDS_SPLITS = ("lists", "speaker")
_SPEAKER = re.compile(r"(?:^|_)([0-9a-f]{8})_nohash_")


def load_speech_commands(
    root: PathLike,
    sample_rate: int = 16000,
    clip_ms: int = 1000,
    words: Sequence[str] | None = None,
    fold_unknown: bool = False,
    silence: bool = False,
    split: str = "lists",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    on_error: str = "warn",
) -> AudioDataset:
    """Speech Commands, in the release's layout or as the 12-class test set.

    The release: one folder per word, ``validation_list.txt`` / ``testing_list.txt`` of
    ``word/file.wav`` paths (files in neither train) and ``_background_noise_``. The 12-class test
    set: folders of the ten keywords, ``_unknown_`` (other words, ``<word>_<speaker>_nohash_<n>.wav``)
    and ``_silence_`` (1-s cuts of background noise). Folders starting with ``_`` are not words.

    Args:
        words: the word classes (in this order; default every word folder, sorted).
        fold_unknown: every other word (and an ``_unknown_`` folder's clips) becomes the class
            ``_unknown_``.
        silence: add the class ``_silence_``: the ``_silence_`` folder's clips, or, without one, as many
            1-s cuts of the background noise at a random level as a word class has on average.
        split: ``"lists"`` (the release's lists) or ``"speaker"``: a seeded split by speaker (the 8 hex
            digits before ``_nohash_``), ``val_fraction`` and ``test_fraction`` of the speakers, every
            clip of a speaker on one side; clips without a speaker (silence) are split at random in the
            same proportions.
        download: fetch the release with ``torchaudio.datasets.SPEECHCOMMANDS`` when ``root`` is
            missing (``root`` must then end in ``SpeechCommands/speech_commands_v0.02``).

    The speaker of each clip is the dataset's group; ``_background_noise_``, cut into clip-length
    segments, is its noise for augmentation.
    """
    check_rate_and_clip(sample_rate, clip_ms)
    _check_seed(seed, "speech_commands")
    if split not in SPEECH_COMMANDS_SPLITS:
        raise ValueError(f"speech_commands: split must be one of {SPEECH_COMMANDS_SPLITS}, got {split!r}")
    for option, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ValueError(f"speech_commands: {option} must be in (0, 1), got {fraction!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError("speech_commands: val_fraction + test_fraction must leave speakers to train on")
    root = Path(root)
    if download and not root.is_dir():
        _download_speech_commands(root)
    bad = BadFiles(on_error)
    root = require_dir(root, "Speech Commands")
    available = [d.name for d in _subfolders(root, (".", "_"))]
    chosen = _names(words, "words", "speech_commands") if words is not None else available
    if not chosen:
        raise ValueError(f"speech_commands: no word folders in {root}" if words is None
                         else "speech_commands: words must name at least one word")
    unknown = [w for w in chosen if w not in available]
    if unknown:
        raise ValueError(f"speech_commands: unknown word(s) {unknown}; {root} has {available}")
    others = [w for w in available if w not in chosen]
    unknown_folder = root / UNKNOWN_WORD
    if fold_unknown and not others and not unknown_folder.is_dir():
        raise ValueError("speech_commands: fold_unknown=True needs words to leave out some words "
                         f"(or an {UNKNOWN_WORD} folder)")
    class_names = chosen + ([UNKNOWN_WORD] if fold_unknown else []) + ([SILENCE] if silence else [])
    listed = None
    if split == "lists":
        listed = {"val": _read_list(root / "validation_list.txt"), "test": _read_list(root / "testing_list.txt")}
        both = sorted(listed["val"] & listed["test"])
        if both:
            raise ValueError(f"speech_commands: {both[:5]} are listed in both validation_list.txt "
                             "and testing_list.txt")
    noise = _noise_segments(root / NOISE_FOLDER, sample_rate, clip_ms, bad)
    with bad:
        files: list[tuple[Path, int, str]] = []  # path, label, speaker
        folders = [(w, root / w) for w in chosen + (others if fold_unknown else [])]
        if fold_unknown and unknown_folder.is_dir():
            folders.append((UNKNOWN_WORD, unknown_folder))
        if silence and (root / SILENCE).is_dir():
            folders.append((SILENCE, root / SILENCE))
        for word, folder in folders:
            label = class_names.index(word) if word in class_names else class_names.index(UNKNOWN_WORD)
            for path in _audio_files(folder):
                match = _SPEAKER.search(path.name)
                files.append((path, label, match[1] if match else ""))
        if listed is not None:
            present = {f"{p.parent.name}/{p.name}" for p, _, _ in files}
            for name, list_name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
                for rel in sorted(listed[name] - present):
                    if rel.split("/")[0] in chosen + (others if fold_unknown else []):
                        bad.add(f"{root / rel}: listed in {list_name} but missing")
        extra = None
        if silence and not (root / SILENCE).is_dir():
            if noise is None:
                raise ValueError(f"speech_commands: silence=True needs a {SILENCE} or {NOISE_FOLDER} folder in {root}")
            n_silence = max(1, round(len(files) / max(1, len(class_names) - 1)))
            extra = (_silence_clips(noise, n_silence, seed), [class_names.index(SILENCE)] * n_silence)
        speakers = [s for _, _, s in files]
        rng = np.random.default_rng(seed)
        if listed is not None:
            split_of = [next((s for s in ("val", "test") if f"{p.parent.name}/{p.name}" in listed[s]), "train")
                        for p, _, _ in files]
        else:
            split_of = _split_speakers(speakers, val_fraction, test_fraction, rng)
        if extra is not None:
            extra = (*extra, _split_speakers([""] * len(extra[1]), val_fraction, test_fraction, rng))
        options = {"words": chosen, "fold_unknown": bool(fold_unknown), "silence": bool(silence), "split": split,
                   "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
        return _build("speech_commands", [p for p, _, _ in files], [lab for _, lab, _ in files], class_names,
                      sample_rate, clip_ms, bad, options, split_of, groups=speakers, noise=noise, extra=extra)


def _split_speakers(speakers: Sequence[str], val_fraction: float, test_fraction: float,
                    rng: np.random.Generator) -> list[str]:
    """The split of each clip: speakers shuffled and cut by the fractions (every clip of a speaker
    on one side); clips without a speaker (``""``) drawn at random in the same proportions."""
    named = sorted({s for s in speakers if s})
    order = [str(s) for s in rng.permutation(named)] if named else []
    n_val, n_test = round(val_fraction * len(order)), round(test_fraction * len(order))
    side = {s: "val" for s in order[:n_val]} | {s: "test" for s in order[n_val:n_val + n_test]}
    draws = rng.random(len(speakers))
    return [side.get(s, "train") if s else
            "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"
            for s, u in zip(speakers, draws)]


def _noise_segments(folder: Path, sample_rate: int, clip_ms: int, bad: BadFiles) -> torch.Tensor | None:
    """Clip-length segments (half-overlapping) of every noise recording in ``folder``, or ``None``."""
    if not folder.is_dir():
        return None
    n = n_samples_of(sample_rate, clip_ms)
    segments = []
    for path in _audio_files(folder):
        try:
            x = read_audio(path, sample_rate)
        except ValueError as err:
            bad.add(str(err))
            continue
        segments += [x[i:i + n] for i in range(0, len(x) - n + 1, n // 2)]
    return torch.stack(segments).contiguous() if segments else None


def _silence_clips(noise: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` silence clips: random noise segments at a random level in [0, 1] (as the release's
    training scripts make them)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(noise), size=n)
    return noise[torch.from_numpy(picks)] * torch.from_numpy(rng.random((n, 1)).astype(np.float32))


def _download_speech_commands(root: Path) -> None:
    """Fetch the release with torchaudio into ``root`` (``.../SpeechCommands/speech_commands_v0.02``)."""
    if root.name != "speech_commands_v0.02" or root.parent.name != "SpeechCommands":
        raise ValueError(f"speech_commands: download=True needs root to end in "
                         f"SpeechCommands/speech_commands_v0.02 (torchaudio's layout), got {root}")
    root.parent.parent.mkdir(parents=True, exist_ok=True)
    torchaudio.datasets.SPEECHCOMMANDS(str(root.parent.parent), url="speech_commands_v0.02", download=True)


def _read_list(path: Path) -> set[str]:
    require_file(path, "Speech Commands split list (or use split='speaker')")
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


# ---- AudioSet ------------------------------------------------------------------------------------
def load_audioset(
    root: PathLike,
    segments: PathLike,
    classes: Sequence[str],
    ontology: PathLike | Mapping[str, str],
    sample_rate: int = 16000,
    clip_ms: int = 10000,
    seed: int = 0,
    on_error: str = "warn",
) -> AudioDataset:
    """AudioSet clips of the chosen ``classes`` (ontology names).

    ``segments``: a segment CSV in AudioSet's format (``#`` comment lines; ``YTID,
    start_seconds, end_seconds, "mid1,mid2,..."``). ``ontology``: AudioSet's ``ontology.json``
    (a list of objects with ``id`` and ``name``) or a ``{name: MID}`` mapping. Clips lie in
    ``root`` as ``{YTID}.wav``, ``{YTID}_{start}.wav`` (start as in the CSV, or whole seconds),
    or the same with ``.flac``. A clip takes the first of ``classes`` among its labels; clips
    with none are dropped; a missing clip file is a bad file. Stratified 60/20/20 split.
    """
    check_rate_and_clip(sample_rate, clip_ms)
    _check_seed(seed, "audioset")
    bad = BadFiles(on_error)
    class_names = _names(classes, "classes", "audioset")
    mids = _class_mids(class_names, ontology)
    root = require_dir(root, "AudioSet clips")
    segments = require_file(segments, "AudioSet segment CSV")
    files = {p.name: p for p in _audio_files(root)}
    with bad:
        paths, labels, seen = [], [], set()
        for line, ytid, start, positive in _read_segments(segments):
            label = next((i for i, mid in enumerate(mids) if mid in positive), None)
            if label is None:
                continue
            if (ytid, start) in seen:
                bad.add(f"{segments}:{line}: segment {ytid} at {start} s repeated")
                continue
            seen.add((ytid, start))
            names = [f"{stem}{ext}" for stem in (ytid, f"{ytid}_{start}", f"{ytid}_{int(float(start))}")
                     for ext in AUDIO_SUFFIXES]
            path = next((files[n] for n in names if n in files), None)
            if path is None:
                bad.add(f"{root / (ytid + '.wav')}: clip file missing (segment {ytid} at {start} s)")
                continue
            paths.append(path)
            labels.append(label)
        if not paths:
            raise ValueError(f"audioset: no clip of {segments} has one of the classes {class_names} "
                             f"and a file in {root}")
        options = {"classes": class_names, "mids": mids, "seed": seed}
        return _build("audioset", paths, labels, class_names, sample_rate, clip_ms, bad, options,
                      seed=seed)


def _class_mids(classes: list[str], ontology: PathLike | Mapping[str, str]) -> list[str]:
    """MID of each class name, from ``ontology.json`` or a ``{name: MID}`` mapping."""
    if isinstance(ontology, Mapping):
        table = dict(ontology)
    else:
        path = require_file(ontology, "AudioSet ontology")
        try:
            nodes = json.loads(Path(path).read_text())
            table = {node["name"]: node["id"] for node in nodes}
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{path}: not an AudioSet ontology (a JSON list of objects with "
                             f"'id' and 'name'): {err!r}") from None
    unknown = [c for c in classes if c not in table]
    if unknown:
        raise ValueError(f"audioset: class name(s) {unknown} are not in the ontology")
    return [table[c] for c in classes]


def _read_segments(path: Path) -> list[tuple[int, str, str, set[str]]]:
    """``(line, YTID, start, {MIDs})`` of each segment line of an AudioSet CSV."""
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = next(csv.reader([line], skipinitialspace=True))
        if len(fields) != 4:
            raise ValueError(f"{path}:{line_no}: expected YTID, start_seconds, end_seconds, "
                             f"positive_labels; got {len(fields)} field(s)")
        ytid, start, end, positive = (f.strip() for f in fields)
        for column, value in (("start_seconds", start), ("end_seconds", end)):
            _parse(value, float, f"{path}:{line_no}", column)
        out.append((line_no, ytid, start, {m.strip() for m in positive.split(",") if m.strip()}))
    return out


# ---- registry ------------------------------------------------------------------------------------
LOADERS: dict[str, Callable[..., AudioDataset]] = {
    "builtin": builtin_sound_events,
    "fsdd": load_fsdd,
    "esc50": load_esc50,
    "speech_commands": load_speech_commands,
    "audioset": load_audioset,
    "folder": load_folder,
}


def load_dataset(name: str, **options: Any) -> AudioDataset:
    """Load the dataset ``name`` (one of :data:`LOADERS`) with the loader's keyword ``options``."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(LOADERS)}")
    params = inspect.signature(LOADERS[name]).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"dataset {name!r}: unknown option(s) {unknown}; options are {list(params)}")
    missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options]
    if missing:
        raise ValueError(f"dataset {name!r}: missing required option(s) {missing}")
    return LOADERS[name](**options)
