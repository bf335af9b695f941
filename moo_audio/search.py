"""A search on a run folder, new or resumed: the problem file, the algorithm, the runner and the store.

**Resuming is deterministic replay.** The algorithms are deterministic under their seed, and so is
the problem: a candidate's training seed derives from its genome, every job trains on the same
number of threads wherever it runs, and the median-stopping history grows between batches in
request order. ``--resume`` therefore runs the algorithm again from the start while the
:class:`~moo_audio.store.RunStore` answers every genome it holds; only new candidates train. The
driver writes each row as its result arrives, so a search killed half way keeps every candidate it
finished.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moo_audio.algorithms.registry import AlgorithmError, default_options, make_algorithm
from moo_audio.parallel import make_runner
from moo_audio.problem import TrainingEvents
from moo_audio.problem_files import ProblemSpec, load_problem, parse_problem
from moo_audio.store import DB_NAME, RunError, RunStore

#: the libraries whose versions a run records
RECORDED_PACKAGES = ("moo-audio", "torch", "torchaudio", "pymoo", "botorch", "scikit-learn", "numpy",
                     "onnxruntime", "dask")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in RECORDED_PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def dataset_info(dataset) -> dict[str, Any]:
    return {"name": dataset.name, "fingerprint": dataset.fingerprint,
            "sample_rate": dataset.sample_rate, "clip_ms": dataset.clip_ms,
            "n_classes": dataset.n_classes, "class_names": list(dataset.class_names),
            "splits": {s: int(len(i)) for s, i in dataset.splits.items()}}


def stored_problem(meta: Mapping[str, Any]) -> ProblemSpec:
    """The problem file a run was made with, as it was then (relative paths from its old place)."""
    return parse_problem(meta["problem"]["text"], meta["problem"]["path"])


@dataclass(frozen=True)
class Settings:
    """What makes a run: replaying it needs the same problem, algorithm, options and seed."""

    algorithm: str
    options: dict[str, Any]
    seed: int
    budget: int

    @classmethod
    def resolve(cls, spec: ProblemSpec, algorithm: str | None = None, seed: int | None = None,
                budget: int | None = None, meta: Mapping[str, Any] | None = None) -> Settings:
        """Settings from what was asked, else a resumed run's ``meta``, else the problem file; options
        are the file's ``[algorithms.NAME]`` over :func:`~moo_audio.algorithms.registry.default_options`
        (a resumed run keeps its own)."""
        meta = meta or {}
        algorithm = algorithm or meta.get("algorithm") or spec.search.algorithm
        seed = seed if seed is not None else meta.get("seed", spec.seed)
        budget = budget if budget is not None else meta.get("budget", spec.search.evaluations)
        if budget < 1:
            raise RunError(f"--budget must be >= 1, got {budget}")
        if meta and algorithm == meta["algorithm"]:
            options = meta["algorithm_options"]
        else:
            options = {**default_options(algorithm, budget), **spec.algorithm_kwargs(algorithm)}
        return cls(algorithm, options, seed, budget)


class Search:
    """One ``moo-audio search`` invocation on a run folder, new or resumed.

    Args:
        folder: the run folder.
        spec: the problem.
        settings: algorithm, options, seed and budget.
        resume: continue the run in ``folder`` (refused if it was made with another problem file,
            algorithm, options or seed); without it ``folder`` must not hold a run.
        workers: ``> 1`` trains on a local Dask cluster of that many single-task processes.
        scheduler: train on the workers of this Dask scheduler instead (``tcp://host:8786``).
        feature_cache: where log-mel features are cached (default: the user cache).
        device: torch device candidates train on (e.g. ``"cuda"``); GPU kernels are not bitwise
            deterministic, so a resumed GPU run may propose other candidates than the first did.
    """

    def __init__(self, folder: str | os.PathLike, spec: ProblemSpec, settings: Settings, *,
                 resume: bool = False, workers: int = 1, scheduler: str | None = None,
                 feature_cache: str | os.PathLike | None = None, device: str = "cpu"):
        if workers < 1:
            raise RunError(f"--workers must be >= 1, got {workers}")
        self.folder, self.spec, self.settings = Path(folder), spec, settings
        self.workers, self.scheduler = workers, scheduler
        self.feature_cache, self.device = feature_cache, device
        if resume:
            self.store = RunStore.open(self.folder)
            self._check_same_run(self.store.meta())
        elif (self.folder / DB_NAME).exists():
            store = RunStore.open(self.folder, readonly=True)
            meta = store.meta()
            raise RunError(f"{self.folder} already holds a run ({store.count()}/{meta.get('budget')} "
                           f"evaluations, {meta.get('status')}); continue it with --resume, or "
                           "choose another --out")
        self.dataset = spec.load_dataset()
        if resume:
            fingerprint = self.store.meta()["dataset"]["fingerprint"]
            if fingerprint != self.dataset.fingerprint:
                raise RunError(f"{self.folder} was run on other data (dataset fingerprint {fingerprint}, "
                               f"now {self.dataset.fingerprint}); resuming would mix results")
            self.store.set_meta(budget=settings.budget, status="running")
        else:
            self.store = RunStore.create(self.folder, self._meta())

    @classmethod
    def from_options(cls, problem: str | None = None, algorithm: str | None = None, budget: int | None = None,
                     workers: int | None = None, seed: int | None = None, out: str | os.PathLike | None = None,
                     resume: bool = False, **kwargs) -> Search:
        """The search ``moo-audio search`` runs: options not given come from a resumed run, then the
        problem file (default ``builtin``)."""
        spec = load_problem(problem or "builtin")
        out = Path(out or Path("runs") / f"{spec.name}-{algorithm or spec.search.algorithm}-"
                               f"{spec.seed if seed is None else seed}")
        meta = {}
        if resume:
            meta = RunStore.open(out, readonly=True).meta()
            if not problem:
                spec = stored_problem(meta)  # the file as it was when the run began
        try:
            settings = Settings.resolve(spec, algorithm, seed, budget, meta)
        except AlgorithmError as error:
            raise RunError(str(error)) from None
        return cls(out, spec, settings, resume=resume,
                   workers=workers if workers is not None else spec.search.workers, **kwargs)

    def _meta(self) -> dict[str, Any]:
        s = self.settings
        return {"problem": {"name": self.spec.name, "path": str(self.spec.path.resolve()),
                            "sha256": self.spec.sha256, "text": self.spec.text},
                "algorithm": s.algorithm, "algorithm_options": s.options, "seed": s.seed,
                "budget": s.budget, "dataset": dataset_info(self.dataset),
                "energy_model": self.spec.energy_fingerprint(), "versions": versions(),
                "created_at": time.time(), "status": "running"}

    def _check_same_run(self, meta: Mapping[str, Any]) -> None:
        s = self.settings
        if meta["problem"]["sha256"] != self.spec.sha256:
            raise RunError(f"{self.folder} was made with another problem file ({meta['problem']['path']}, "
                           f"sha256 {meta['problem']['sha256'][:12]}); {self.spec.path} has sha256 "
                           f"{self.spec.sha256[:12]}. Resume without --problem to use the stored one")
        for key, now in (("algorithm", s.algorithm), ("seed", s.seed), ("algorithm_options", s.options),
                         ("energy_model", self.spec.energy_fingerprint())):
            if meta[key] != now:
                raise RunError(f"{self.folder} was made with {key} {meta[key]!r}, not {now!r}; "
                               "resume it with the same settings or choose another --out")

    def run(self, events: TrainingEvents | None = None, callback=None):
        """Run (or replay and continue) the search; the pymoo result."""
        from pymoo.optimize import minimize

        runner = make_runner(self.workers, self.scheduler)
        session = self.store.begin_session(runner.workers, self.settings.budget)
        status = "interrupted"
        try:
            self.problem = self.spec.make_problem(
                self.dataset, seed=self.settings.seed, store=self.store, runner=runner, events=events,
                feature_cache=self.feature_cache, device=self.device)
            try:
                algorithm = make_algorithm(self.settings.algorithm, self.settings.options,
                                           f"{self.spec.path}: algorithms.{self.settings.algorithm}")
            except AlgorithmError as error:
                raise RunError(str(error)) from None
            extra = {"callback": callback} if callback is not None else {}
            result = minimize(self.problem, algorithm, ("n_evals", self.settings.budget),
                              seed=self.settings.seed, verbose=False, **extra)
            status = "finished"
            self.store.set_meta(status="finished", finished_at=time.time())
            return result
        finally:
            self.store.end_session(session, status)
            if status != "finished":
                self.store.set_meta(status=status)
            runner.close()
            self.store.close()

    def unreplayed(self) -> list[str]:
        """Stored genome ids the last :meth:`run` did not ask for: non-empty only if the replay
        diverged from the run it continued (the rows stay in the store and the report)."""
        asked = set(self.problem.evaluated_keys)
        return [e.genome_id for e in self.store.evaluations() if e.key not in asked]
