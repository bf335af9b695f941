"""ONNX in and out: a torch network to float32 ONNX, static int8 quantization, onnxruntime sessions.

One path for every ONNX file moo_audio writes: the energy harness (random weights, random
calibration inputs; :mod:`moo_audio.energy.measure`), device bundles and ``moo-audio export``
(trained weights, calibration on real training clips). Files have batch 1, input :data:`INPUT_NAME`
(the standardised log-mel) and output :data:`OUTPUT_NAME` (logits), opset :data:`OPSET`.
int8 is onnxruntime's static QDQ quantization: per-channel int8 weights, uint8 activations,
min-max calibration.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

INPUT_NAME, OUTPUT_NAME, OPSET = "logmel", "logits", 17
RUNTIME = f"onnxruntime {ort.__version__} CPUExecutionProvider"


def export_float32(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike) -> Path:
    """A network (put in eval mode) as a float32 ONNX file of batch 1."""
    path = Path(path)
    example = torch.zeros(1, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)   # the input-shape check
        warnings.simplefilter("ignore", DeprecationWarning)        # the TorchScript exporter
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    return path


def quantize_int8(float_path: str | os.PathLike, path: str | os.PathLike,
                  calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization (QDQ) of a float32 ONNX file, calibrated on ``calibration``: input
    batches ``[1, *input_shape]`` float32, fed one at a time."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = ({INPUT_NAME: np.asarray(x, dtype=np.float32)} for x in calibration)

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        quant_pre_process(str(float_path), str(pre))
        quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
    return Path(path)


def export(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike, dtype: str,
           calibration: Iterable[np.ndarray] = ()) -> Path:
    """The network as an ONNX file of ``dtype``: float32, or int8 quantized with ``calibration``."""
    if dtype == "float32":
        return export_float32(model, input_shape, path)
    if dtype != "int8":
        raise ValueError(f"unknown dtype {dtype!r}; expected 'int8' or 'float32'")
    with tempfile.TemporaryDirectory() as tmp:
        return quantize_int8(export_float32(model, input_shape, Path(tmp) / "float32.onnx"), path, calibration)


def make_session(path: str | os.PathLike, threads: int = 1, *,
                 memory_arena: bool = False) -> ort.InferenceSession:
    """An onnxruntime CPU session: ``threads`` intra-op threads, sequential execution, no
    spin-waiting and, unless ``memory_arena``, no memory arena or memory pattern.

    With onnxruntime's arena and memory pattern, two sessions of the same model differ much more
    in latency than without them (``benchmarks/timing_noise.py``, docs/energy.md). Allocating per
    run is also closer to the static arena of a microcontroller runtime.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = memory_arena
    options.enable_mem_pattern = memory_arena
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_logits(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Logits of examples ``[n, *input_shape]`` from an ONNX file, one example per run."""
    session = make_session(path)
    return np.concatenate([session.run(None, {INPUT_NAME: xi[None]})[0] for xi in x])
