"""Algorithms by name: the one list the CLI, problem files, benchmarks and docs use.

:data:`ALGORITHMS` maps each name to its class (imported on first use: BoTorch is slow to import),
:func:`default_options` sizes the options a problem file does not set, and :func:`make_algorithm`
builds an instance with its options checked against the class's signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class AlgorithmEntry:
    """One algorithm: where its class lives and whether it is one of pymoo's genetic algorithms
    (which get the genome sampling, repair and duplicate elimination on the audio problem)."""

    module: str
    cls: str
    pymoo_ga: bool = False

    def load(self) -> type:
        return getattr(import_module(self.module), self.cls)


ALGORITHMS: dict[str, AlgorithmEntry] = {
    "hybrid": AlgorithmEntry("moo_audio.algorithms.hybrid", "HybridSearch"),
    "botorch": AlgorithmEntry("moo_audio.algorithms.botorch_mobo", "BoTorchMOBO"),
    "evolution": AlgorithmEntry("moo_audio.algorithms.evolution", "RegularizedEvolution"),
    "pso": AlgorithmEntry("moo_audio.algorithms.pso", "MOPSO"),
    "random": AlgorithmEntry("moo_audio.algorithms.random_search", "RandomSearch"),
    "nsga2": AlgorithmEntry("pymoo.algorithms.moo.nsga2", "NSGA2", pymoo_ga=True),
    "smsemoa": AlgorithmEntry("pymoo.algorithms.moo.sms", "SMSEMOA", pymoo_ga=True),
}
ALGORITHM_NAMES = tuple(ALGORITHMS)

#: candidates per batch where the problem file sets none; not the worker count, so that a search
#: proposes the same candidates on any number of workers (a file sets a larger batch for more)
DEFAULT_BATCH = 4


class AlgorithmError(ValueError):
    """An unknown algorithm name or an option its class does not take."""


def algorithm_class(name: str) -> type:
    """The class behind an algorithm name."""
    if name not in ALGORITHMS:
        raise AlgorithmError(f"unknown algorithm {name!r}; expected one of {ALGORITHM_NAMES}")
    try:
        return ALGORITHMS[name].load()
    except (ImportError, AttributeError) as error:
        raise AlgorithmError(f"algorithm {name!r} is not available ({error})") from None


def default_options(name: str, budget: int) -> dict[str, Any]:
    """Options sized to the budget, used where the problem file sets none: a population of about a
    third of the budget (4 to 20) and batches of :data:`DEFAULT_BATCH` candidates."""
    pop = max(4, min(20, budget // 3))
    return {"nsga2": {"pop_size": pop}, "smsemoa": {"pop_size": pop},
            "evolution": {"pop_size": pop, "sample_size": max(2, pop // 3), "n_offsprings": DEFAULT_BATCH},
            "pso": {"pop_size": pop},
            "random": {"batch_size": DEFAULT_BATCH},
            "botorch": {"q": DEFAULT_BATCH},
            "hybrid": {}}[name]


def _accepted(cls: type) -> set[str]:
    """Keyword names ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy
    (pymoo's ``Algorithm`` swallows unknown keywords, so they are checked here)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def make_algorithm(name: str, options: Mapping[str, Any], source: str = "options"):
    """An algorithm instance; pymoo's genetic algorithms get the genome sampling, repair and
    duplicate elimination. ``source`` names where ``options`` came from in errors (e.g.
    ``problems/x.toml: algorithms.evolution``)."""
    cls = algorithm_class(name)
    unknown = sorted(set(options) - _accepted(cls))
    if unknown:
        raise AlgorithmError(f"{source}.{unknown[0]}: {cls.__name__} has no option {unknown[0]!r}")
    if ALGORITHMS[name].pymoo_ga:
        from moo_audio.space import GenomeRepair, GenomeSampling

        options = {"sampling": GenomeSampling(), "repair": GenomeRepair(), "eliminate_duplicates": True,
                   **options}
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise AlgorithmError(f"{source}: {err}") from None
