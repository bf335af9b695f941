"""The numeric view shared by all moo_audio algorithms: any pymoo problem as the unit cube.

Bayesian optimisation, particle swarms and one-gene mutations all move in ``[0, 1]^d``.
:class:`UnitCube` maps that cube onto a pymoo problem:

* a problem with numeric ``xl``/``xu`` arrays: ``x = xl + u * (xu - xl)``, rounded when the problem's
  ``vtype`` is an integer type (the audio NAS problem is of this kind, with ``xl=0, xu=1``);
* otherwise a problem with a ``vars`` dict of pymoo ``Real/Integer/Choice/Binary``: decoded with
  :class:`moo_audio.encoding.UnitCubeEncoder`, and ``X`` holds dicts as in pymoo's ``MixedVariableGA``.

A repair given to the view (an algorithm's ``repair=``), else the problem's ``repair`` attribute when it
is a pymoo :class:`~pymoo.core.repair.Repair`, is applied to every candidate;
:meth:`UnitCube.canonical` re-encodes the repaired candidate so an algorithm always knows the cube
point of what is actually evaluated (and can spot duplicates exactly).
"""

from __future__ import annotations

import numpy as np
import torch
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.variable import Choice

from moo_audio.encoding import UnitCubeEncoder

#: a ``Choice`` with at least this many options is treated as unordered (categorical kernels and
#: moves); fewer options are kept in their encoded order, a relaxation that a stationary kernel with a
#: short lengthscale fits well and that avoids the much slower categorical GP fit
CATEGORICAL_MIN_OPTIONS = 5


class UnitCube:
    """Unit-cube view of a pymoo problem.

    Attributes:
        n_dims: dimension ``d`` of the cube.
        ordinal: dim -> sorted canonical cube values of each ordered discrete dimension (integers,
            binaries, choices with fewer than :data:`CATEGORICAL_MIN_OPTIONS` options).
        categorical: dim -> canonical cube values of each choice with more options (unordered).
        bounds: ``2 x d`` array, per dimension the smallest and largest canonical value.
    """

    def __init__(self, problem: Problem, repair: Repair | None = None):
        self.problem = problem
        xl, xu = getattr(problem, "xl", None), getattr(problem, "xu", None)
        self.ordinal: dict[int, np.ndarray] = {}
        self.categorical: dict[int, np.ndarray] = {}
        if isinstance(xl, np.ndarray) and isinstance(xu, np.ndarray):
            self.encoder = None
            if not (np.all(np.isfinite(xl)) and np.all(np.isfinite(xu)) and np.all(xl <= xu)):
                raise ValueError("the problem's bounds xl/xu must be finite with xl <= xu")
            self.xl, self.span = xl.astype(float), (xu - xl).astype(float)
            vtype = getattr(problem, "vtype", None)
            self.integer = vtype is not None and np.issubdtype(np.dtype(vtype), np.integer)
            if self.integer:
                for j, steps in enumerate(self.span.astype(int)):
                    self.ordinal[j] = np.arange(steps + 1) / max(steps, 1)
            self.n_dims = len(xl)
        elif isinstance(getattr(problem, "vars", None), dict):
            self.encoder = UnitCubeEncoder(problem.vars)
            for j, (name, k) in enumerate(zip(self.encoder.names, self.encoder.cardinalities())):
                if k is None:
                    continue
                values = (np.arange(k) + 0.5) / k
                is_cat = isinstance(problem.vars[name], Choice) and k >= CATEGORICAL_MIN_OPTIONS
                (self.categorical if is_cat else self.ordinal)[j] = values
            self.n_dims = self.encoder.n_dims
        else:
            raise TypeError(
                f"{type(problem).__name__} has neither numeric xl/xu arrays nor a `vars` dict; "
                "moo_audio algorithms need one of them to build the unit-cube view"
            )
        repair = repair if repair is not None else getattr(problem, "repair", None)
        self.repair = repair if isinstance(repair, Repair) else None
        self.bounds = np.array([[0.0] * self.n_dims, [1.0] * self.n_dims])
        for j, values in {**self.ordinal, **self.categorical}.items():
            self.bounds[:, j] = values[0], values[-1]

    @property
    def discrete(self) -> dict[int, np.ndarray]:
        """All discrete dimensions, ordinal and categorical."""
        return {**self.ordinal, **self.categorical}

    def decode(self, U: np.ndarray) -> np.ndarray:
        """Cube points ``(n, d)`` to the problem's ``X`` (an object array of dicts for ``vars``)."""
        U = np.clip(np.atleast_2d(np.asarray(U, dtype=float)), 0.0, 1.0)
        if self.encoder is not None:
            return np.array(self.encoder.decode_many(U), dtype=object)
        X = self.xl + U * self.span
        return np.round(X).astype(int) if self.integer else X

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The problem's ``X`` back to cube points ``(n, d)``."""
        if self.encoder is not None:
            return self.encoder.encode_many(X)
        span = np.where(self.span > 0, self.span, 1.0)
        return (np.atleast_2d(np.asarray(X, dtype=float)) - self.xl) / span

    def canonical(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode, repair and re-encode: the ``X`` that would be evaluated and its cube point."""
        X = self.decode(U)
        if self.repair is not None:
            X = self.repair.do(self.problem, Population.new("X", X)).get("X")
        return X, self.encode(X)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform points of the cube."""
        return rng.random((n, self.n_dims))

    def sobol(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points of a scrambled Sobol sequence, seeded from ``rng``."""
        engine = torch.quasirandom.SobolEngine(self.n_dims, scramble=True, seed=int(rng.integers(2**31)))
        return engine.draw(n, dtype=torch.float64).numpy()

    def mutate(self, U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One-gene mutation of each row: a real coordinate is resampled uniformly, a discrete one moves
        to a different value."""
        U = np.array(U, dtype=float, copy=True)
        discrete = self.discrete
        for row, j in zip(U, rng.integers(self.n_dims, size=len(U))):
            values = discrete.get(int(j))
            if values is None:
                row[j] = rng.random()
            else:
                others = values[~np.isclose(values, row[j])]
                row[j] = rng.choice(others if len(others) else values)
        return U


def row_keys(U: np.ndarray) -> list[bytes]:
    """Hashable keys of canonical cube points (rounded, so decode/encode float noise does not matter)."""
    return [row.tobytes() for row in np.round(np.asarray(U, dtype=float), 9) + 0.0]
