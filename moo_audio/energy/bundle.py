"""Measurements from a real device: a bundle of ONNX models out, a results CSV back in.

:func:`design` picks the networks (a space-filling sample of the search space plus the
MobileNet baselines), :func:`write_bundle` exports them with a ``manifest.json`` and a README
for whoever runs them on the device, and :func:`import_results` validates and ingests the
latency/energy CSV that comes back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from scipy.stats import qmc

from moo_audio.costs import DEFAULT_DTYPE
from moo_audio.energy.measure import export_onnx
from moo_audio.energy.profiles import DeviceProfile
from moo_audio.energy.records import (
    DTYPES,
    Measurement,
    check_unique,
    genome_id,
    parse_number,
    read_table,
)
from moo_audio.nets import BASELINES, WIDTHS, baseline
from moo_audio.onnx_io import INPUT_NAME, OPSET, OUTPUT_NAME
from moo_audio.space import FrontEnd, Genome, SearchSpace

BUNDLE_FORMAT = "moo-audio-energy-bundle/1"
RESULT_COLUMNS = ("model_id", "latency_ms")
OPTIONAL_RESULT_COLUMNS = ("latency_iqr_ms", "repeats", "energy_mj")


def design(n: int, space: SearchSpace | Sequence[SearchSpace] = SearchSpace(), seed: int = 0,
           baselines: bool = True) -> dict[str, Genome]:
    """``n`` distinct genomes spread over ``space`` (or over several spaces, ``n`` split evenly
    between them), plus (``baselines``) every baseline network.

    Points of a scrambled Sobol sequence over the unit-cube encoding are decoded to genomes
    and deduplicated (several points can decode to the same genome); more points are drawn
    until ``n`` distinct genomes are found. Genomes are keyed by :func:`genome_id`, baselines
    by ``<name>_xW`` (each on its own front end or the default one, every width of
    :data:`~moo_audio.nets.WIDTHS`).
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    spaces = [space] if isinstance(space, SearchSpace) else list(space)
    out: dict[str, Genome] = {}
    for i, one in enumerate(spaces):
        share = n * (i + 1) // len(spaces) - n * i // len(spaces)
        out.update({k: g for k, g in _sample(one, share, seed + i).items() if k not in out})
    if baselines:
        first = spaces[0]
        for name, entry in BASELINES.items():
            frontend = (entry.frontend(first.sample_rate, first.clip_ms[0]) if entry.frontend is not None
                        else FrontEnd(sample_rate=first.sample_rate))
            for width in WIDTHS:
                out[f"{name}_x{width:.2f}"] = baseline(name, width, frontend, first.n_classes)
    return out


def _sample(space: SearchSpace, n: int, seed: int) -> dict[str, Genome]:
    """``n`` distinct genomes of a scrambled Sobol sequence over ``space``."""
    out: dict[str, Genome] = {}
    sobol = qmc.Sobol(space.n_var, scramble=True, seed=seed)
    size = 2 ** math.ceil(math.log2(max(n, 1)))
    for _ in range(8):  # each round doubles the points drawn, keeping Sobol's balance
        if len(out) >= n:
            break
        for x in sobol.random(size if sobol.num_generated == 0 else sobol.num_generated):
            genome = space.decode(x)
            out.setdefault(genome_id(genome), genome)
            if len(out) == n:
                break
    if len(out) < n:
        raise ValueError(f"found only {len(out)} distinct genomes in the space; ask for fewer")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_README = """# moo-audio energy bundle

{n} ONNX models ({dtype}, batch 1, input `{input}` float32, output `{output}`, opset {opset}) listed
in `manifest.json` with their genome, input shape and SHA-256.

## Run them on the device

Run every model with the runtime you deploy with, on the core(s) you deploy on, the device
otherwise idle, screen off where possible. For example, onnxruntime's perf test
(`onnxruntime_perf_test -e cpu -x 1 -y 1 -r 200 -I models/<model_id>.onnx`), or after
conversion to TFLite the TFLite `benchmark_model` tool (`--num_threads=1 --num_runs=200`).
Report the median latency of at least 100 runs after a warm-up.

## Return a CSV

One row per model, a header row, these columns (any other column is refused):

| column | required | meaning |
| --- | --- | --- |
| `model_id` | yes | the id in `manifest.json` |
| `latency_ms` | yes | median latency of one inference, milliseconds |
| `latency_iqr_ms` | no | interquartile range of the latencies, milliseconds |
| `repeats` | no | number of timed inferences |
| `energy_mj` | no | measured energy of one inference, millijoules (power monitor or energy counter) |

Without `energy_mj`, energy is computed as latency x the device profile's active power.
Import with:

    moo-audio energy import results.csv --bundle {bundle} --out measurements.csv \\
        --profile phone-big-core --hardware "make, model, SoC, core"
"""


def write_bundle(genomes: Mapping[str, Genome], out: str | os.PathLike, dtype: str = DEFAULT_DTYPE,
                 progress: Callable[[int, str], None] | None = None) -> Path:
    """Export ``model_id -> genome`` to ``out/models/*.onnx`` with a manifest and a README.

    Returns the manifest's path. A directory that already holds a bundle is refused.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if not genomes:
        raise ValueError("a bundle needs at least one genome")
    out = Path(out)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        raise ValueError(f"{out} already holds a bundle; choose another directory")
    (out / "models").mkdir(parents=True, exist_ok=True)
    models = []
    for i, (model_id, genome) in enumerate(genomes.items()):
        path = export_onnx(genome, out / "models" / f"{model_id}.onnx", dtype)
        models.append({"model_id": model_id, "file": f"models/{path.name}", "dtype": dtype,
                       "input_shape": [1, *genome.frontend.input_shape], "sha256": _sha256(path),
                       "genome": genome.to_dict()})
        if progress is not None:
            progress(i, model_id)
    (out / "README.md").write_text(_README.format(n=len(models), dtype=dtype, input=INPUT_NAME,
                                                  output=OUTPUT_NAME, opset=OPSET, bundle=out))
    manifest_path.write_text(json.dumps({"format": BUNDLE_FORMAT, "input_name": INPUT_NAME,
                                         "output_name": OUTPUT_NAME, "opset": OPSET,
                                         "models": models}, indent=1))
    return manifest_path


def load_manifest(bundle: str | os.PathLike) -> dict[str, dict]:
    """The bundle's models by id, with their genomes parsed."""
    path = Path(bundle) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no bundle manifest at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{path}: not a {BUNDLE_FORMAT} manifest")
    models = {}
    for i, entry in enumerate(data.get("models", [])):
        try:
            models[entry["model_id"]] = {**entry, "genome": Genome.from_dict(entry["genome"])}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: models[{i}] is malformed ({e})") from None
    return models


def import_results(results: str | os.PathLike, bundle: str | os.PathLike, profile: DeviceProfile,
                   hardware: str, runtime: str = "unspecified", threads: int = 1) -> list[Measurement]:
    """Validate a device's results CSV against its bundle and turn it into measurements.

    Args:
        results: CSV with the columns of :data:`RESULT_COLUMNS` (and optionally
            :data:`OPTIONAL_RESULT_COLUMNS`); every error names its line and column.
        profile: the device; with no ``energy_mj`` column, energy = latency x its power
            (``power_x_time``), else the measured energy is kept (``counter``).
        hardware: a description of the device (make, model, SoC, core), recorded as its
            fingerprint.
        runtime: the runtime and version that ran the models.
    """
    if not hardware.strip():
        raise ValueError("hardware: describe the device the results come from")
    manifest = load_manifest(bundle)
    rows = read_table(results, RESULT_COLUMNS, OPTIONAL_RESULT_COLUMNS)
    measured_energy = "energy_mj" in rows[0][1]
    records, seen = [], {}
    for where, row in rows:
        check_unique(row["model_id"], where, seen)
        entry = manifest.get(row["model_id"])
        if entry is None:
            raise ValueError(f"{where}, column model_id: unknown model id {row['model_id']!r} "
                             f"(not in {Path(bundle) / 'manifest.json'})")
        latency = parse_number(row, "latency_ms", where)
        energy = (parse_number(row, "energy_mj", where) if measured_energy
                  else latency * profile.active_power_w)
        records.append(Measurement(
            model_id=row["model_id"], genome=entry["genome"], dtype=entry["dtype"], threads=threads,
            latency_ms=latency,
            latency_iqr_ms=parse_number(row, "latency_iqr_ms", where, optional=True, allow_zero=True),
            repeats=parse_number(row, "repeats", where, integer=True, optional=True),
            energy_mj=energy, method="counter" if measured_energy else "power_x_time",
            device_profile=profile.name, active_power_w=profile.active_power_w,
            hardware=hardware.strip(), runtime=runtime, latency_statistic="reported"))
    return records
