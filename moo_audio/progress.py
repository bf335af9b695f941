"""The progress of a search (rich): a line per finished evaluation and, on a terminal, a live bar of
evaluations with one row per candidate in training and its epoch.

:class:`SearchProgress` is the problem's :class:`~moo_audio.problem.TrainingEvents` listener: the
problem tells it when candidates start, after every epoch (from Dask workers too, through the
runner's events) and when each evaluation is recorded.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from moo_audio.problem import Candidate
from moo_audio.store import genome_id


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def evaluation_text(row: Mapping[str, Any], candidate: Candidate) -> str:
    """What one evaluation came to, in a line."""
    if row["stop_reason"] == "skipped":
        return row["failure_reason"]
    if row["failed"]:
        return f"failed: {row['failure_reason']}"
    return (f"error {1 - row['val_accuracy']:.3f}  {candidate.energy_mj:.3g} mJ  {candidate.memory_kb:.1f} KB  "
            f"{row['epochs']} ep ({row['stop_reason']}) {row['seconds']:.1f} s")


class SearchProgress:
    """Search progress; use as a context manager around the search.

    Args:
        budget: evaluations the search will make.
        done: evaluations already stored (a resumed run replays them without training).
        stream: where to write (default stdout); the live display needs a terminal.
    """

    def __init__(self, budget: int, done: int = 0, stream: TextIO | None = None):
        self.budget, self.done, self.resumed = budget, done, done
        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self._t0 = time.monotonic()
        self.best_error = math.inf
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=self.console,
                                  disable=not self.console.is_terminal, transient=True)
        self._overall = self._progress.add_task("evaluations", total=budget, completed=done, note="")
        self._training: dict[str, int] = {}  # key -> task of each candidate in training

    def __enter__(self) -> SearchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def _timing(self) -> str:
        elapsed = time.monotonic() - self._t0
        new, left = self.done - self.resumed, max(0, self.budget - self.done)
        eta = f"~{clock(elapsed / new * left)} left" if new and left else (
            "done" if not left else "estimating time left")
        return f"{clock(elapsed)} elapsed, {eta}"

    # ---- TrainingEvents ----------------------------------------------------------------------------
    def started(self, candidates: Sequence[Candidate], max_epochs: int) -> None:
        for c in candidates:
            self._training[c.key] = self._progress.add_task(f"  {genome_id(c.key)}", total=max_epochs,
                                                            note="epoch 0")

    def epoch(self, key: str, epoch: int, accuracy: float) -> None:
        task = self._training.get(key)
        if task is not None:
            self._progress.update(task, completed=epoch, note=f"epoch {epoch}, val. accuracy {accuracy:.3f}")

    def finished(self, candidate: Candidate, row: Mapping[str, Any]) -> None:
        task = self._training.pop(candidate.key, None)
        if task is not None:
            self._progress.remove_task(task)
        self.done += 1
        if not row["failed"]:
            self.best_error = min(self.best_error, 1 - row["val_accuracy"])
        self._progress.update(self._overall, completed=min(self.done, self.budget),
                              note=f"best error {self.best_error:.3f}" if math.isfinite(self.best_error) else "")
        self.console.print(f"[{self.done:>3}/{self.budget}] {genome_id(candidate.key)}  "
                           f"{evaluation_text(row, candidate)} | {self._timing()}", markup=False)
