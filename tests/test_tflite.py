"""Tests of moo_audio.tflite_io: float32 and fully-int8 TFLite files that LiteRT runs like torch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from moo_audio import tflite_io
from moo_audio.costs import network_cost
from moo_audio.energy.measure import export_tflite_int8, random_network
from moo_audio.problem_files import load_problem
from moo_audio.space import Block, FrontEnd, Genome

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


SKIP_2D = Genome(FrontEnd(16000, 1000, 20, 25, 20, "2d"),
                 (Block("conv", 16, 3, 1), Block("mbconv", 16, 3, 1, expansion=2, skip=True)), 12)
SKIP_1D = Genome(FrontEnd(16000, 1000, 20, 25, 20, "1d"),
                 (Block("conv", 16, 3, 1), Block("dsconv", 16, 3, 1, skip=True, pool=True)), 12)


@pytest.mark.parametrize("genome", [SKIP_2D, SKIP_1D], ids=["2d", "1d"])
def test_int8_tflite_of_a_residual_network_has_no_float_tensor(tmp_path, genome):
    """The residual add is quantized too (it stayed float between a dequantize and a quantize, with
    a float input, when the graph was exported non-strictly: the quantizer did not see the add)."""
    from ai_edge_litert.interpreter import Interpreter

    path = export_tflite_int8(genome, tmp_path / "m.tflite")
    interpreter = Interpreter(model_path=str(path))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "ADD" in ops and not ops & {"QUANTIZE", "DEQUANTIZE"}
    assert {t["dtype"] for t in interpreter.get_tensor_details()} <= {np.int8, np.int32}


@pytest.mark.parametrize("genome", [
    Genome(FrontEnd(16000, 1000, 20, 25, 20, "2d"), (Block("conv", 8, 3, 1), Block("dsconv", 16, 3, 1),
                                                     Block("conv", 16, 3, 1, pool=True)), 12),
    SKIP_2D,
    Genome(FrontEnd(16000, 1000, 21, 25, 20, "2d"), (Block("conv", 8, 3, 2), Block("dsconv", 16, 3, 1)), 12),
], ids=["plain", "residual", "stride-2-odd-sizes"])
def test_tflite_micro_plans_the_analytic_arena(tmp_path, genome):
    """Where the converter emits one operator per layer, TFLite Micro's planner lays out exactly the
    analytic peak arena of moo_audio.costs (benchmarks/tflm_arena.py measures where it does not)."""
    from tflite_micro.python.tflite_micro import runtime

    path = export_tflite_int8(genome, tmp_path / "m.tflite")
    arena = tflite_io.micro_arena(path)
    assert arena.head == network_cost(genome).peak_activation_bytes("int8")
    assert 0 < arena.tail < arena.total == arena.head + arena.tail
    runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=arena.total)  # the reported total is enough


def test_native_output_is_captured_and_the_streams_restored(capfd):
    with tflite_io._native_output() as printed:
        os.write(1, b"from native code\n")
    assert printed() == "from native code\n"
    print("after")
    assert capfd.readouterr().out == "after\n"
