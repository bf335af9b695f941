"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture
def tiny_problem_text() -> str:
    """A problem file small enough for a search and its evaluation in seconds (the built-in data, 6 clips
    per class, 2 epochs, one small baseline)."""
    return """
name = "tiny"
[dataset]
name = "builtin"
n_per_class = 6
[space]
n_mels = [16]
win_ms = [25]
hop_ms = [20]
max_blocks = 2
channels = [8, 16]
kernels = [3]
[training]
max_epochs = 2
[search]
algorithm = "random"
evaluations = 4
workers = 1
[report]
baselines = [{ model = "ds_cnn_s", width = 0.25 }]
"""
