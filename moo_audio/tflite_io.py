"""TFLite in and out: a torch network to a float32 or fully-int8 ``.tflite`` file, and LiteRT runs.

TFLite is what always-on audio ships on (Android's LiteRT, TFLite Micro on microcontrollers). The
converter is litert-torch (Google's torch-to-TFLite path); int8 is its PT2E quantizer (torchao's
``prepare_pt2e``/``convert_pt2e``): per-channel symmetric int8 weights, int8 activations calibrated
on given inputs, and int8 input and output tensors, as TFLite Micro's kernels expect. Files have
batch 1 and the same input (the standardised log-mel) as the ONNX files of :mod:`moo_audio.onnx_io`.
The LiteRT interpreter runs them; :func:`run_logits` quantizes the input and dequantizes the logits
with the file's own parameters, so callers see floats either way.

:func:`micro_arena` asks TFLite Micro's own interpreter (the ``tflite-micro`` package) how much
arena a file needs: the memory oracle of the analytic arena of :mod:`moo_audio.costs`.

These packages are the ``tflite`` extra (``pip install 'moo-audio[tflite]'``); without them every
function here raises an :class:`ImportError` that says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EXTRA_HINT = "TFLite export needs the 'tflite' extra: pip install 'moo-audio[tflite]'"


class ConversionError(RuntimeError):
    """litert-torch could not convert a network (e.g. its int8 passes refuse a graph)."""


def available() -> bool:
    """Whether the ``tflite`` extra (litert-torch, ai-edge-litert, tflite-micro) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
        import tflite_micro  # noqa: F401
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
        ConversionError: the converter refused the int8 graph (it refused 1-D networks with skip
            connections while the graph was exported non-strictly; ``benchmarks/tflm_arena.py``
            counts refusals).
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
        # strict: a non-strict export leaves no source function on the residual add, so the quantizer
        # skipped it and the file computed it in float between a dequantize and a quantize
        observed = quantize_pt2e.prepare_pt2e(torch.export.export(model, example, strict=True).module(), quantizer)
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


@dataclass(frozen=True)
class MicroArena:
    """The tensor arena TFLite Micro's interpreter needs for one ``.tflite`` file, in bytes, as its
    recording allocator reports it: ``head``, the non-persistent part its memory planner lays out
    (activation tensors and kernels' scratch buffers), and ``tail``, the persistent part (tensor and
    operator structures, kernels' per-channel quantization data). Their sum is the arena to give it.
    """

    head: int
    tail: int

    @property
    def total(self) -> int:
        return self.head + self.tail


#: the arena :func:`micro_arena` allocates in, then reads the use of: far above any always-on network's
MICRO_PROBE_ARENA = 256 << 20


def micro_arena(path: str | os.PathLike) -> MicroArena:
    """What TFLite Micro's own interpreter needs for the ``.tflite`` file (see :class:`MicroArena`).

    The interpreter allocates in a generous arena and reports what it used. (Searching for the
    smallest arena that allocates gives the same total, but the interpreter's failed allocations
    crash the process on some graphs.)
    """
    _require()
    from tflite_micro.python.tflite_micro import runtime

    try:
        with _native_output() as printed:
            runtime.Interpreter.from_bytes(Path(path).read_bytes(), arena_size=MICRO_PROBE_ARENA).print_allocations()
    except RuntimeError as error:
        raise RuntimeError(f"TFLite Micro could not allocate {path} in {MICRO_PROBE_ARENA >> 20} MB: "
                           f"{printed().strip()[-500:]}") from error
    used = {part: int(b) for part, b in re.findall(r"Arena allocation (head|tail) (\d+) bytes", printed())}
    if set(used) != {"head", "tail"}:
        raise RuntimeError(f"TFLite Micro's allocation report for {path} has no head and tail: {printed()!r}")
    return MicroArena(used["head"], used["tail"])


@contextlib.contextmanager
def _native_output() -> Iterator:
    """Captures what native code writes to this process's stdout and stderr (file descriptors 1 and
    2, which ``contextlib.redirect_stdout`` does not reach); yields a function that returns it."""
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(fd) for fd in (1, 2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            yield lambda: "".join(captured)
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))
