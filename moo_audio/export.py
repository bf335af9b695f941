"""``moo-audio export RUN --pick ...``: retrain a chosen model on the full budget and ship it.

The chosen genome is retrained with the problem's data, budget and training seed but without early
stopping (every epoch of the budget; the best validation epoch is kept), then written as:

* ``model.onnx``: float32, batch 1, input ``logmel`` (the standardised log-mel), output ``logits``;
* ``model_int8.onnx``: statically quantised as every moo_audio ONNX file is (:mod:`moo_audio.onnx_io`:
  QDQ, per-channel int8 weights, uint8 activations, min-max calibration), calibrated on real
  training clips rather than random inputs;
* ``model.tflite`` and ``model_int8.tflite`` (with the ``tflite`` extra, :mod:`moo_audio.tflite_io`):
  float32, and fully int8 (int8 weights, activations, input and output, as TFLite Micro runs it),
  calibrated on the same training clips;
* ``genome.json``, ``weights.pt`` (the torch state dict), ``preprocessing.json`` (front end and
  standardisation) and ``MODEL_CARD.md``.

Both ONNX files are run by onnxruntime on the validation clips and compared with the torch model: the
float32 logits must match within ``rtol=1e-3, atol=1e-4`` (else :class:`ExportError`); the int8
model's agreement with torch and its accuracy are reported in the card. The TFLite files are held to
the same checks, run by the LiteRT interpreter. The test split is not read
here: held-out test accuracy is the final evaluation's (``moo-audio evaluate``).

"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from moo_audio import tflite_io
from moo_audio.costs import network_cost
from moo_audio.data.features import logmel_settings
from moo_audio.jobs import train_model
from moo_audio.onnx_io import INPUT_NAME, OUTPUT_NAME, export_float32, quantize_int8, run_logits
from moo_audio.search import stored_problem
from moo_audio.selection import pick
from moo_audio.store import RunError, RunStore
from moo_audio.training import CurveHistory

FLOAT_RTOL, FLOAT_ATOL = 1e-3, 1e-4


class ExportError(RuntimeError):
    """The exported model does not reproduce the trained one, or it could not be trained."""


@dataclass(frozen=True)
class Exported:
    genome_id: str
    folder: Path
    files: tuple[Path, ...]
    metrics: dict


def export_model(run: str | Path, rule: str = "knee", min_accuracy: float | None = None,
                 out: str | Path | None = None, calibration_examples: int = 64,
                 log: Callable[[str], None] = print) -> Exported:
    """Retrain the model ``rule`` picks (see :func:`moo_audio.selection.pick`) and export it."""
    store = RunStore.open(run, readonly=True)
    meta = store.meta()
    chosen = pick(store.evaluations(), rule, min_accuracy)
    spec = stored_problem(meta)
    folder = Path(out) if out else Path(run) / "export" / chosen.genome_id
    genome = chosen.genome
    log(f"picked {chosen.genome_id} ({rule}): search error {chosen.error:.3f}, {chosen.energy_mj:.4g} mJ, "
        f"{chosen.memory_kb:.1f} KB; retraining for {spec.budget.max_epochs} epochs without early stopping")

    problem = spec.make_problem(seed=meta["seed"])
    if problem.dataset.fingerprint != meta["dataset"]["fingerprint"]:
        raise RunError(f"the data of {spec.path} changed since the run (fingerprint "
                       f"{problem.dataset.fingerprint[:12]}, run {meta['dataset']['fingerprint'][:12]})")
    features = problem.features(genome.frontend)
    model, result = train_model(problem.job(genome, stopping=(), history=CurveHistory()), features)
    if result.failed:
        raise ExportError(f"retraining {chosen.genome_id} failed: {result.failure_reason}")
    model.eval()
    log(f"retrained: validation accuracy {result.val_accuracy:.3f} ({result.epochs} epochs, "
        f"{result.seconds:.0f} s)")

    shape = genome.frontend.input_shape
    x_val, y_val = features.split("val")
    x_val = x_val.reshape(len(x_val), *shape).numpy()
    x_train = features.split("train")[0]
    rng = np.random.default_rng(0)
    calib = x_train[rng.permutation(len(x_train))[:calibration_examples]].reshape(-1, 1, *shape).numpy()

    folder.mkdir(parents=True, exist_ok=True)
    float_path = export_float32(model, shape, folder / "model.onnx")
    int8_path = quantize_int8(float_path, folder / "model_int8.onnx", calib)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_val)).numpy()
    float_logits = run_logits(float_path, x_val)
    int8_logits = run_logits(int8_path, x_val)
    if not np.allclose(float_logits, torch_logits, rtol=FLOAT_RTOL, atol=FLOAT_ATOL):
        raise ExportError(f"{float_path}: onnxruntime logits differ from torch by up to "
                          f"{np.abs(float_logits - torch_logits).max():.3g}")
    labels = y_val.numpy()
    torch_pred = torch_logits.argmax(1)
    metrics = {
        "val_accuracy": result.val_accuracy,
        "val_accuracy_onnx_float32": float((float_logits.argmax(1) == labels).mean()),
        "val_accuracy_onnx_int8": float((int8_logits.argmax(1) == labels).mean()),
        "int8_top1_agreement_with_torch": float((int8_logits.argmax(1) == torch_pred).mean()),
        "float32_max_abs_logit_difference": float(np.abs(float_logits - torch_logits).max()),
        "epochs": result.epochs, "train_seconds": result.seconds,
    }
    log(f"ONNX float32 matches torch (max |diff| {metrics['float32_max_abs_logit_difference']:.2g}); "
        f"int8 validation accuracy {metrics['val_accuracy_onnx_int8']:.3f}, top-1 agreement with torch "
        f"{metrics['int8_top1_agreement_with_torch']:.3f}")
    tflite_files = _export_tflite(model, shape, folder, calib, x_val, torch_logits, labels, metrics, log)

    (folder / "genome.json").write_text(json.dumps(genome.to_dict(), indent=2) + "\n")
    torch.save(model.state_dict(), folder / "weights.pt")
    fe = genome.frontend
    preprocessing = {
        "input": INPUT_NAME, "output": OUTPUT_NAME, "input_shape": [1, *shape],
        "log_mel": {"clip_ms": fe.clip_ms, **logmel_settings(fe)},
        "standardise": {"mean": features.mean, "std": features.std},
        "class_names": features.class_names,
    }
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2) + "\n")
    card = _model_card(chosen, rule, min_accuracy, meta, spec, result, metrics, preprocessing)
    (folder / "MODEL_CARD.md").write_text(card)
    files = tuple(folder / n for n in ("model.onnx", "model_int8.onnx", "genome.json", "weights.pt",
                                       "preprocessing.json", "MODEL_CARD.md")) + tflite_files
    return Exported(chosen.genome_id, folder, files, metrics)


def _export_tflite(model, shape, folder: Path, calib, x_val, torch_logits, labels, metrics: dict,
                   log: Callable[[str], None]) -> tuple[Path, ...]:
    """``model.tflite`` (held to the ONNX float32 tolerance) and ``model_int8.tflite`` when the
    ``tflite`` extra is installed; their accuracies go into ``metrics``. An int8 graph the converter
    refuses is logged and noted in ``metrics``, not fatal: the ONNX files stand."""
    if not tflite_io.available():
        log(f"no .tflite files: {tflite_io.EXTRA_HINT}")
        return ()
    float_path = tflite_io.export_tflite(model, shape, folder / "model.tflite")
    tfl_float = tflite_io.run_logits(float_path, x_val)
    if not np.allclose(tfl_float, torch_logits, rtol=FLOAT_RTOL, atol=FLOAT_ATOL):
        raise ExportError(f"{float_path}: LiteRT logits differ from torch by up to "
                          f"{np.abs(tfl_float - torch_logits).max():.3g}")
    metrics["val_accuracy_tflite_float32"] = float((tfl_float.argmax(1) == labels).mean())
    try:
        int8_path = tflite_io.export_tflite(model, shape, folder / "model_int8.tflite", calib)
    except tflite_io.ConversionError as error:
        metrics["tflite_int8_failure"] = str(error)
        log(f"TFLite float32 matches torch; no model_int8.tflite: {error}")
        return (float_path,)
    tfl_int8 = tflite_io.run_logits(int8_path, x_val)
    agreement = float((tfl_int8.argmax(1) == torch_logits.argmax(1)).mean())
    metrics.update({"val_accuracy_tflite_int8": float((tfl_int8.argmax(1) == labels).mean()),
                    "tflite_int8_top1_agreement_with_torch": agreement})
    try:
        metrics["tflite_micro_arena_bytes"] = tflite_io.micro_arena(int8_path).total
    except RuntimeError as error:  # the file stands; the card says why it has no arena
        metrics["tflite_micro_failure"] = str(error)
    log(f"TFLite float32 matches torch; int8 validation accuracy {metrics['val_accuracy_tflite_int8']:.3f}, "
        f"top-1 agreement with torch {metrics['tflite_int8_top1_agreement_with_torch']:.3f}")
    return float_path, int8_path


def _model_card(chosen, rule, min_accuracy, meta, spec, result, metrics, preprocessing) -> str:
    cost = network_cost(chosen.genome)
    data = meta["dataset"]
    fe = chosen.genome.frontend
    memory_int8 = (f"{cost.memory_bytes('int8') / 1024:.1f} KB ({cost.weight_bytes('int8') / 1024:.1f} KB "
                   f"weights + {cost.peak_activation_bytes('int8') / 1024:.1f} KB peak activations)")
    rule_text = f"`--pick {rule}`" + (f" with `--min-accuracy {min_accuracy}`" if min_accuracy else "")
    tflite_text, tflite_rows = "", ""
    if "val_accuracy_tflite_float32" in metrics:
        tflite_text = "`model.tflite` (float32), "
        tflite_rows = f"| validation (TFLite float32) | {metrics['val_accuracy_tflite_float32']:.3f} |\n"
    if "val_accuracy_tflite_int8" in metrics:
        tflite_text += ("`model_int8.tflite` (fully int8: weights, activations, input and output; for LiteRT "
                        "and TFLite Micro), ")
        tflite_rows += (f"| validation (TFLite int8) | {metrics['val_accuracy_tflite_int8']:.3f} |\n"
                        f"| TFLite int8 top-1 agreement with torch | "
                        f"{metrics['tflite_int8_top1_agreement_with_torch']:.3f} |\n")
        tflite_text += (f"which TFLite Micro's interpreter runs in a {metrics['tflite_micro_arena_bytes']:,}-byte "
                        "tensor arena (its own allocation report; the analytic peak activations above leave out "
                        "its persistent structures and the converter's padding copies), "
                        if "tflite_micro_arena_bytes" in metrics else
                        f"for which TFLite Micro reported no arena ({metrics['tflite_micro_failure']}), ")
    elif "tflite_int8_failure" in metrics:
        tflite_rows += f"| TFLite int8 | not written: {metrics['tflite_int8_failure']} |\n"
    return f"""# Model card: {chosen.genome_id}

An always-on audio classifier found by moo_audio's architecture search and retrained on the full
budget. Exported {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.

## Use
- Input `logmel`, float32 `{preprocessing['input_shape']}`: log-mel of a {fe.clip_ms} ms clip at
  {fe.sample_rate} Hz ({fe.n_mels} mel bins, {fe.win_ms} ms window, {fe.hop_ms} ms hop, power
  spectrogram, `log(x + 1e-6)`), standardised as `(x - mean) / std` with mean
  {preprocessing['standardise']['mean']:.6g} and std {preprocessing['standardise']['std']:.6g} of the
  training clips (`preprocessing.json`). Representation: {fe.representation}.
- Output `logits` over {data['n_classes']} classes: {', '.join(data['class_names'])}.
- Files: `model.onnx` (float32), `model_int8.onnx` (static int8, QDQ), {tflite_text}`weights.pt`
  (torch state dict of `moo_audio.nets.build(genome)`), `genome.json`.

## Accuracy
| | accuracy |
|---|---|
| validation (torch, best epoch) | {metrics['val_accuracy']:.3f} |
| validation (ONNX float32) | {metrics['val_accuracy_onnx_float32']:.3f} |
| validation (ONNX int8) | {metrics['val_accuracy_onnx_int8']:.3f} |
{tflite_rows}
int8 top-1 agreement with the torch model on the validation clips: {metrics['int8_top1_agreement_with_torch']:.3f}.
Held-out test accuracy, with seeds and intervals, is the final evaluation's: `moo-audio evaluate RUN`.
ONNX float32 logits match torch within {metrics['float32_max_abs_logit_difference']:.2g}.
In the search (early-stopped training) this model reached validation error {chosen.error:.3f}.

## Cost
| | value |
|---|---|
| energy per inference | {chosen.energy_mj:.4g} mJ ({meta['energy_model']}) |
| memory, int8 | {memory_int8} |
| memory, float32 | {cost.memory_bytes('float32') / 1024:.1f} KB |
| MACs | {cost.macs:,} (front end {cost.frontend.macs:,} more) |
| parameters | {cost.params:,} |

## Data
Dataset `{data['name']}` (fingerprint `{data['fingerprint'][:16]}`), splits {data['splits']}.
Problem file `{meta['problem']['path']}` (sha256 `{meta['problem']['sha256'][:16]}`).

## Training
Retrained for {result.epochs} epochs ({result.seconds:.0f} s) with no early stopping:
`{json.dumps(asdict(spec.budget))}`, training seed derived from the genome and run seed {meta['seed']}.

## How it was chosen
{rule_text} among the Pareto set of run `{meta['problem']['name']}` / `{meta['algorithm']}` /
seed {meta['seed']} ({meta['budget']} evaluations).
"""

