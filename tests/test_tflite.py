"""Tests of moo_audio.tflite_io: float32 and fully-int8 TFLite files that LiteRT runs like torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moo_audio import tflite_io
from moo_audio.energy.measure import random_network
from moo_audio.problem_files import load_problem

pytest.importorskip("litert_torch", reason=tflite_io.EXTRA_HINT)


@pytest.fixture(scope="module", params=["2d", "1d"])
def network(request):
    space = load_problem("builtin").declared_space()
    genome = next(g for g in space.sample(40, seed=3) if g.frontend.representation == request.param)
    return genome, random_network(genome, seed=1).eval()


def test_float32_tflite_matches_torch(tmp_path, network):
    genome, model = network
    shape = genome.frontend.input_shape
    path = tflite_io.export_tflite(model, shape, tmp_path / "m.tflite")
    x = np.random.default_rng(0).standard_normal((4, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    runner = tflite_io.TFLiteModel(path)
    assert runner.dtype == "float32"
    np.testing.assert_allclose(runner(x), expected, rtol=1e-3, atol=1e-4)


def test_int8_tflite_is_fully_quantized_and_close_to_torch(tmp_path, network):
    genome, model = network
    shape = genome.frontend.input_shape
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((16, 1, *shape)).astype(np.float32)
    path = tflite_io.export_tflite(model, shape, tmp_path / "m8.tflite", calibration)
    runner = tflite_io.TFLiteModel(path)
    assert runner.dtype == "int8"  # int8 input and output tensors, as TFLite Micro runs it
    x = rng.standard_normal((16, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = runner(x)
    spread = expected.max() - expected.min()
    assert np.abs(got - expected).max() < 0.1 * spread  # int8 rounding, not a different network
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.98
    assert runner.latency_ms(repeats=5, rounds=2) > 0
    assert path.stat().st_size < tflite_io.export_tflite(model, shape, tmp_path / "f.tflite").stat().st_size


def test_int8_export_needs_calibration(tmp_path, network):
    genome, model = network
    with pytest.raises(ValueError, match="at least one calibration input"):
        tflite_io.export_tflite(model, genome.frontend.input_shape, tmp_path / "m.tflite", [])


def test_missing_extra_is_named(monkeypatch, tmp_path, network):
    monkeypatch.setattr(tflite_io, "available", lambda: False)
    genome, model = network
    with pytest.raises(ImportError, match=r"pip install 'moo-audio\[tflite\]'"):
        tflite_io.export_tflite(model, genome.frontend.input_shape, tmp_path / "m.tflite")
