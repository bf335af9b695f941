"""Where training jobs run: in this process, or on Dask workers (a local cluster, or the workers of a
scheduler started elsewhere).

A runner takes :class:`~moo_audio.jobs.TrainJob` s with their features and yields ``(index,
result)`` as each job finishes, so that the driver — the only writer of a run store — records every
result the moment it exists, wherever it was trained. Features go to Dask workers by
``Client.scatter`` (once per feature set), so workers need no disk shared with the driver. Workers
report each finished epoch as a Dask event (``Worker.log_event``) that the driver subscribes to,
for the progress display.

A worker that dies mid-training costs only its own job: Dask retries it on another worker (training
is seeded, so the retry gives the same result) and, if the job keeps killing workers, the runner
returns a failed result for it alone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from moo_audio.data import FeatureSet
from moo_audio.jobs import TrainJob, train_job
from moo_audio.training import TrainResult

#: the Dask event topic of epoch reports
EPOCH_TOPIC = "moo-audio-epoch"
#: ``(job index, epoch, validation accuracy)`` of a running job
EpochReport = Callable[[int, int, float], None]


def this_process() -> str:
    """``host:pid`` of this process: how a run store names the worker that trained an evaluation."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Runner(Protocol):
    """Runs training jobs; see the module docstring."""

    @property
    def workers(self) -> int: ...

    def run(self, jobs: Sequence[TrainJob], features: Sequence[FeatureSet],
            on_epoch: EpochReport | None = None) -> Iterator[tuple[int, TrainResult, str]]:
        """Yields ``(index of the job, its result, the worker that trained it)`` as jobs finish."""

    def close(self) -> None: ...


class InProcessRunner:
    """Trains jobs one after the other in this process."""

    workers = 1

    def run(self, jobs: Sequence[TrainJob], features: Sequence[FeatureSet],
            on_epoch: EpochReport | None = None) -> Iterator[tuple[int, TrainResult, str]]:
        for i, (job, feature_set) in enumerate(zip(jobs, features)):
            callback = None if on_epoch is None else (lambda e, a, i=i: on_epoch(i, e, a))
            yield i, train_job(job, feature_set, callback), this_process()

    def close(self) -> None:
        pass


def _train_on_worker(job: TrainJob, features: FeatureSet, tag: tuple[int, int]) -> tuple[TrainResult, str]:
    """:func:`~moo_audio.jobs.train_job` on a Dask worker, reporting each epoch as an event."""
    from distributed import get_worker

    worker = get_worker()

    def report(epoch: int, accuracy: float) -> None:
        worker.log_event(EPOCH_TOPIC, {"tag": tag, "epoch": epoch, "accuracy": accuracy})

    return train_job(job, features, report), this_process()


class DaskRunner:
    """Trains jobs on the workers of a Dask client.

    Args:
        client: a ``distributed.Client``.
        owns_cluster: close the client's local cluster with the runner.
    """

    def __init__(self, client, owns_cluster: bool = False):
        self.client, self.owns_cluster = client, owns_cluster
        self._scattered: dict[int, tuple[FeatureSet, object]] = {}
        self._reports: dict[int, EpochReport] = {}
        self._batch = 0
        client.subscribe_topic(EPOCH_TOPIC, self._on_event)

    @classmethod
    def local(cls, n_workers: int) -> DaskRunner:
        """A runner on a new local cluster of ``n_workers`` single-task processes.

        Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's mmap
        threshold at 128 KiB: every freed tensor larger than that goes back to the system and the
        next one is page-faulted in again. Training allocates and frees such tensors every batch: with
        it, two workers spent 0.64 s of system CPU per second of user CPU and 1.74x the CPU per
        evaluation of single-threaded in-process training; without it, 1.10x
        (``benchmarks/parallel_cpu.py``). The local cluster's workers keep glibc's default.
        """
        import dask
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
        return cls(Client(cluster), owns_cluster=True)

    @classmethod
    def connect(cls, address: str) -> DaskRunner:
        """A runner on the workers of the scheduler at ``address`` (e.g. ``tcp://host:8786``)."""
        from distributed import Client

        try:
            return cls(Client(address, timeout="30s"))
        except OSError as error:
            raise ValueError(f"cannot reach the Dask scheduler at {address}: {error}") from None

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def _handle(self, features: FeatureSet):
        """The scattered copy of a feature set: scattered to every worker, so that it outlives any one
        of them, and again if every copy was lost; the set is kept alive with it."""
        key = id(features)
        if key not in self._scattered or self._scattered[key][1].status != "finished":
            self._scattered[key] = (features, self.client.scatter(features, hash=False, broadcast=True))
        return self._scattered[key][1]

    def _on_event(self, event) -> None:
        _, msg = event
        batch, index = msg["tag"]
        report = self._reports.get(batch)
        if report is not None:
            report(index, msg["epoch"], msg["accuracy"])

    def run(self, jobs: Sequence[TrainJob], features: Sequence[FeatureSet],
            on_epoch: EpochReport | None = None) -> Iterator[tuple[int, TrainResult, str]]:
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        batch, self._batch = self._batch, self._batch + 1
        if on_epoch is not None:
            self._reports[batch] = on_epoch

        def submit(i: int):
            return self.client.submit(_train_on_worker, jobs[i], self._handle(features[i]), (batch, i), pure=False)

        futures = {submit(i): i for i in range(len(jobs))}
        resubmitted: set[int] = set()
        try:
            pending = as_completed(futures)
            for future in pending:
                i = futures[future]
                try:
                    result, worker = future.result()
                except KilledWorker as error:
                    result, worker = TrainResult.failure(f"the worker training it died ({error})"), ""
                except FutureCancelledError as error:
                    # the scheduler forgot the task: every copy of its features went with dead workers
                    if i not in resubmitted:
                        resubmitted.add(i)
                        retry = submit(i)
                        futures[retry] = i
                        pending.add(retry)
                        continue
                    result, worker = TrainResult.failure(f"its features were lost with the workers ({error})"), ""
                yield i, result, worker
        finally:
            self._reports.pop(batch, None)
            for future in futures:
                future.cancel()

    def close(self) -> None:
        cluster = getattr(self.client, "cluster", None) if self.owns_cluster else None
        # workers still unwinding torch threads at shutdown are killed; that is expected
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
        self.client.close()
        if cluster is not None:
            cluster.close()


def make_runner(workers: int = 1, scheduler: str | None = None) -> Runner:
    """The runner of ``moo-audio search``: a scheduler's workers, a local cluster of ``workers``
    processes when ``workers > 1``, else this process."""
    if scheduler:
        return DaskRunner.connect(scheduler)
    return DaskRunner.local(workers) if workers > 1 else InProcessRunner()

