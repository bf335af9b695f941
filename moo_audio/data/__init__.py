"""Datasets (fixed-length mono clips with a train/val/test split) and cached log-mel features.

    from moo_audio.data import FeatureCache, load_dataset
    from moo_audio.space import FrontEnd

    dataset = load_dataset("builtin")
    x, y = FeatureCache().get(dataset, FrontEnd()).split("train")
"""

from moo_audio.data.audio_io import SkippedFileWarning, fit_length, read_clip
from moo_audio.data.builtin import CLASS_NAMES as BUILTIN_CLASSES
from moo_audio.data.builtin import builtin_sound_events
from moo_audio.data.dataset import SPLITS, AudioDataset, stratified_split
from moo_audio.data.features import (
    CorruptCacheWarning,
    FeatureCache,
    FeatureSet,
    compute_features,
    default_cache_root,
    log_mel,
)
from moo_audio.data.loaders import (
    LOADERS,
    load_audioset,
    load_dataset,
    load_esc50,
    load_folder,
    load_fsdd,
    load_speech_commands,
)

__all__ = [
    "BUILTIN_CLASSES",
    "LOADERS",
    "SPLITS",
    "AudioDataset",
    "CorruptCacheWarning",
    "FeatureCache",
    "FeatureSet",
    "SkippedFileWarning",
    "builtin_sound_events",
    "compute_features",
    "default_cache_root",
    "fit_length",
    "load_audioset",
    "load_dataset",
    "load_esc50",
    "load_folder",
    "load_fsdd",
    "load_speech_commands",
    "log_mel",
    "read_clip",
    "stratified_split",
]
