"""TFLite in and out: a torch network to a float32 or fully-int8 ``.tflite`` file, and LiteRT runs.

TFLite is what always-on audio ships on (Android's LiteRT, TFLite Micro on microcontrollers). The
converter is litert-torch (Google's torch-to-TFLite path); int8 is its PT2E quantizer (torchao's
``prepare_pt2e``/``convert_pt2e``): per-channel symmetric int8 weights, int8 activations calibrated
on given inputs, and int8 input and output tensors, as TFLite Micro's kernels expect. Files have
batch 1 and the same input (the standardised log-mel) as the ONNX files of :mod:`moo_audio.onnx_io`.
The LiteRT interpreter runs them; :func:`run_logits` quantizes the input and dequantizes the logits
with the file's own parameters, so callers see floats either way.

These packages are the ``tflite`` extra (``pip install 'moo-audio[tflite]'``); without them every
function here raises an :class:`ImportError` that says so.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

EXTRA_HINT = "TFLite export needs the 'tflite' extra: pip install 'moo-audio[tflite]'"


class ConversionError(RuntimeError):
    """litert-torch could not convert a network (e.g. its int8 passes refuse a graph)."""


def available() -> bool:
    """Whether the ``tflite`` extra (litert-torch, ai-edge-litert) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def _require() -> None:
    if not available():
        raise ImportError(EXTRA_HINT)


def export_tflite(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | os.PathLike,
                  calibration: Iterable[np.ndarray] | None = None) -> Path:
    """The network (put in eval mode) as a ``.tflite`` file of batch 1: float32, or with
    ``calibration`` (inputs of shape ``(1, *input_shape)``) fully int8.

    Raises:
        ConversionError: the converter refused the int8 graph (some 1-D networks with skip
            connections: its reshape passes demand one scale on both sides; measured in
            ``benchmarks/runtimes.py``).
    """
    _require()
    # the converter prints a progress line per pass unless told not to (a user's setting wins)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    path, model = Path(path), model.eval()
    example = (torch.zeros(1, *input_shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's pytree deprecations, raised inside the converter
        if calibration is None:
            litert_torch.convert(model, example).export(str(path))
            return path
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        observed = quantize_pt2e.prepare_pt2e(torch.export.export(model, example).module(), quantizer)
        seen = 0
        with torch.no_grad():
            for x in calibration:
                observed(torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(1, *input_shape))
                seen += 1
        if not seen:
            raise ValueError("int8 TFLite export needs at least one calibration input")
        quantized = quantize_pt2e.convert_pt2e(observed, fold_quantize=False)
        try:
            converted = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        except ValueError as error:  # the converter's passes report a graph they cannot lower this way
            raise ConversionError(f"litert-torch could not convert the network to int8 TFLite: "
                                  f"{str(error).splitlines()[0][:300]}") from error
    converted.export(str(path))
    return path


class TFLiteModel:
    """A ``.tflite`` file in a LiteRT interpreter (``threads`` CPU threads), batch 1."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        _require()
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        (self._input,), (self._output,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()

    @property
    def dtype(self) -> str:
        """``int8`` for a fully quantized file, else ``float32``."""
        return "int8" if self._input["dtype"] == np.int8 else "float32"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Float logits ``[n, classes]`` of inputs ``[n, *input_shape]`` (one invocation per input)."""
        x = np.asarray(x, dtype=np.float32)
        shape = tuple(self._input["shape"])
        logits = []
        for example in x:
            value = example.reshape(shape)
            if self._input["dtype"] == np.int8:
                scale, zero = self._input["quantization"]
                value = np.clip(np.round(value / scale) + zero, -128, 127).astype(np.int8)
            self.interpreter.set_tensor(self._input["index"], value)
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self._output["index"])
            if self._output["dtype"] == np.int8:
                scale, zero = self._output["quantization"]
                out = (out.astype(np.float32) - zero) * scale
            logits.append(out.reshape(-1))
        return np.stack(logits)

    def latency_ms(self, repeats: int = 200, rounds: int = 5) -> float:
        """Median over ``rounds`` of the mean wall time of ``repeats`` invocations on the tensors set
        last (a plain timing loop: LiteRT has no benchmark API in Python)."""
        self.interpreter.invoke()  # warm-up
        means = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(repeats):
                self.interpreter.invoke()
            means.append((time.perf_counter_ns() - start) / repeats / 1e6)
        return float(np.median(means))


def run_logits(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Float logits of inputs ``[n, *input_shape]`` from a ``.tflite`` file (see :class:`TFLiteModel`)."""
    return TFLiteModel(path)(x)
