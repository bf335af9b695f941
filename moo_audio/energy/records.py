"""Measurement records and their CSV tables.

A table holds the measurements of one *setup*: one method, device profile, hardware, runtime,
dtype and thread count (:data:`SETUP_COLUMNS`). Writing or reading a table that mixes setups
is refused unless ``allow_mixed=True`` is passed, so that a forest is never fitted silently on
energies of different machines or methods.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

from moo_audio.costs import DTYPES
from moo_audio.energy.profiles import METHODS
from moo_audio.space import Genome

SETUP_COLUMNS = ("method", "device_profile", "hardware", "runtime", "dtype", "threads", "latency_statistic")
#: how ``latency_ms`` summarises the timed repeats (see ``TimingSettings.statistic``); ``reported``
#: for figures a device reported (``energy import``)
LATENCY_STATISTICS = ("min", "median", "reported")


@dataclass(frozen=True)
class Measurement:
    """Latency and energy per inference of one network on one setup.

    ``latency_iqr_ms`` (spread) and ``repeats`` are ``None`` where a device did not report
    them; ``predicted_mj`` is an energy model's prediction, when one was compared.
    ``active_power_w`` is the profile's power (used only by the ``power_x_time`` method).
    ``latency_statistic`` says how ``latency_ms`` summarises the repeats (:data:`LATENCY_STATISTICS`).
    """

    model_id: str
    genome: Genome
    dtype: str
    threads: int
    latency_ms: float
    latency_iqr_ms: float | None
    repeats: int | None
    energy_mj: float
    method: str
    device_profile: str
    active_power_w: float
    hardware: str
    runtime: str
    predicted_mj: float | None = None
    latency_statistic: str = "median"

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"{self.model_id}: unknown dtype {self.dtype!r}; expected one of {DTYPES}")
        if self.latency_statistic not in LATENCY_STATISTICS:
            raise ValueError(f"{self.model_id}: unknown latency_statistic {self.latency_statistic!r}; "
                             f"expected one of {LATENCY_STATISTICS}")
        if self.method not in METHODS:
            raise ValueError(f"{self.model_id}: unknown method {self.method!r}; expected one of {METHODS}")
        for name in ("latency_ms", "energy_mj", "active_power_w", "threads"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{self.model_id}: {name} must be positive, got {getattr(self, name)!r}")

    def setup(self) -> dict[str, str]:
        """The columns that must agree across a table."""
        return {c: str(getattr(self, c)) for c in SETUP_COLUMNS}

    def to_row(self) -> dict[str, str]:
        """The CSV row: floats to 6 significant digits, ``None`` as an empty cell."""
        row = {}
        for f in fields(self):
            value = getattr(self, f.name)
            row[f.name] = ("" if value is None else f"{value:.6g}" if isinstance(value, float)
                           else str(value))
        row["genome"] = self.genome.key
        return row


def genome_id(genome: Genome) -> str:
    """A stable id of a genome: ``g`` + 12 hex digits of the SHA-256 of its sorted JSON."""
    return "g" + hashlib.sha256(genome.key.encode()).hexdigest()[:12]


COLUMNS = (*(f.name for f in fields(Measurement) if f.name != "genome"), "genome")  # long JSON last
_OPTIONAL = ("latency_iqr_ms", "repeats", "predicted_mj", "latency_statistic")  # the last: median


def check_same_setup(records: Iterable[Measurement], source: str = "measurements") -> dict[str, str]:
    """The common setup of ``records``; ``ValueError`` naming the column where they differ."""
    records = list(records)
    if not records:
        raise ValueError(f"{source}: no measurements")
    for column in SETUP_COLUMNS:
        values = sorted({r.setup()[column] for r in records})
        if len(values) > 1:
            raise ValueError(f"{source} mix {column} values {values}: a table holds one setup; "
                             "split it (allow_mixed=True reads it as it is)")
    return records[0].setup()


class MeasurementWriter:
    """Writes measurements to CSV one at a time, flushing each, so no result is lost.

    Args:
        path: the CSV to create; an existing file is refused unless ``overwrite``.
        allow_mixed: accept records whose setup differs from the first one's.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, allow_mixed: bool = False):
        self.path, self.overwrite, self.allow_mixed = Path(path), overwrite, allow_mixed
        self._file: IO[str] | None = None
        self._setup: dict[str, str] | None = None

    def __enter__(self) -> MeasurementWriter:
        if self.path.exists() and not self.overwrite:
            raise ValueError(f"{self.path} already exists; choose another path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._writer.writeheader()
        return self

    def write(self, record: Measurement) -> None:
        if self._file is None:
            raise RuntimeError("MeasurementWriter.write outside its `with` block")
        if self._setup is None:
            self._setup = record.setup()
        elif not self.allow_mixed and record.setup() != self._setup:
            differ = [c for c in SETUP_COLUMNS if record.setup()[c] != self._setup[c]]
            raise ValueError(f"{self.path}: {record.model_id} differs from the table's setup in "
                             f"{', '.join(differ)}; pass allow_mixed=True to mix setups")
        self._writer.writerow(record.to_row())
        self._file.flush()

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_measurements(records: Iterable[Measurement], path: str | os.PathLike, *,
                       overwrite: bool = False, allow_mixed: bool = False) -> Path:
    """Write a measurements CSV (see :class:`MeasurementWriter`)."""
    with MeasurementWriter(path, overwrite=overwrite, allow_mixed=allow_mixed) as writer:
        for record in records:
            writer.write(record)
    return writer.path


# ---- reading and validating CSV ---------------------------------------------------------

def read_table(path: str | os.PathLike, required: Sequence[str],
               optional: Sequence[str] = ()) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV as ``(location, row)``, after checking its columns.

    Missing and unknown columns are errors (an unknown column is usually a misspelt one whose
    values would otherwise be ignored). ``location`` reads ``"FILE: line N"``. A ``.gz`` file is
    read decompressed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with (gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="")) as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            raise ValueError(f"{path}: empty file; expected a header row with {', '.join(required)}")
        header = [h.strip() for h in header]
        reader.fieldnames = header
        duplicated = sorted({h for h in header if header.count(h) > 1})
        missing = [c for c in required if c not in header]
        unknown = [h for h in header if h not in required and h not in optional]
        for problem, names in (("duplicated", duplicated), ("missing", missing), ("unknown", unknown)):
            if names:
                raise ValueError(f"{path}: {problem} column(s) {', '.join(names)}; expected "
                                 f"{', '.join(required)}" + (f" and optionally {', '.join(optional)}"
                                                             if optional else ""))
        rows = []
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise ValueError(f"{where}: expected {len(header)} fields")
            rows.append((where, {k: v.strip() for k, v in row.items()}))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows


def parse_number(row: dict[str, str], column: str, where: str, *, integer: bool = False,
                 optional: bool = False, allow_zero: bool = False) -> float | int | None:
    """A positive (or, with ``allow_zero``, non-negative) number from a CSV cell."""
    text = row.get(column, "")
    if text == "":
        if optional:
            return None
        raise ValueError(f"{where}, column {column}: empty value")
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where}, column {column}: {text!r} is not {kind}") from None
    if not math.isfinite(value) or not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where}, column {column}: {text!r} must be finite and {bound}")
    return value


def parse_choice(row: dict[str, str], column: str, where: str, choices: Sequence[str]) -> str:
    if row[column] not in choices:
        raise ValueError(f"{where}, column {column}: {row[column]!r} is not one of {list(choices)}")
    return row[column]


def parse_genome(text: str, where: str) -> Genome:
    try:
        return Genome.from_json(text)
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise ValueError(f"{where}, column genome: {e}") from None


def check_unique(model_id: str, where: str, seen: dict[str, str]) -> None:
    """Refuse an empty or repeated model id; ``seen`` maps ids to where they appeared."""
    if not model_id:
        raise ValueError(f"{where}, column model_id: empty value")
    if model_id in seen:
        raise ValueError(f"{where}, column model_id: {model_id!r} duplicates {seen[model_id]}")
    seen[model_id] = where


def read_measurements(path: str | os.PathLike, *, allow_mixed: bool = False) -> list[Measurement]:
    """Read and validate a measurements CSV written by :func:`write_measurements`."""
    rows = read_table(path, [c for c in COLUMNS if c not in _OPTIONAL], _OPTIONAL)
    records, seen = [], {}
    for where, row in rows:
        key = row["model_id"]
        if allow_mixed and key:  # one network may recur in other setups (float32 and int8, say)
            key = f"{key} in setup {'/'.join(row.get(c) or '' for c in SETUP_COLUMNS)}"
        check_unique(key, where, seen)
        records.append(Measurement(
            model_id=row["model_id"], genome=parse_genome(row["genome"], where),
            dtype=parse_choice(row, "dtype", where, DTYPES),
            threads=parse_number(row, "threads", where, integer=True),
            latency_ms=parse_number(row, "latency_ms", where),
            latency_iqr_ms=parse_number(row, "latency_iqr_ms", where, optional=True, allow_zero=True),
            repeats=parse_number(row, "repeats", where, integer=True, optional=True),
            energy_mj=parse_number(row, "energy_mj", where),
            method=parse_choice(row, "method", where, METHODS),
            device_profile=row["device_profile"],
            active_power_w=parse_number(row, "active_power_w", where),
            hardware=row["hardware"], runtime=row["runtime"],
            predicted_mj=parse_number(row, "predicted_mj", where, optional=True),
            latency_statistic=parse_choice(row, "latency_statistic", where, LATENCY_STATISTICS)
            if row.get("latency_statistic") else "median"))
    if not allow_mixed:
        check_same_setup(records, source=str(path))
    return records
