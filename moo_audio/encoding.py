"""Map pymoo mixed variables to and from the unit cube.

Bayesian optimisation and particle swarms move in a continuous box; pymoo's mixed-variable
problems describe their variables as a dict of ``Real``/``Integer``/``Choice``/``Binary``.
:class:`UnitCubeEncoder` is the bridge: every discrete variable with ``k`` values owns the
interval ``[0, 1)`` split into ``k`` equal cells, value ``i`` encodes to the centre of cell ``i``
and any point of the cell decodes back to it, so ``decode(encode(x)) == x`` exactly and every
point of the cube decodes to a valid assignment. pymoo has no such encoder (its mixed-variable
machinery works on the dicts directly), hence this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pymoo.core.variable import Binary, Choice, Integer, Real, Variable


def _discrete_values(var: Variable) -> list[Any] | None:
    """The ordered values of a discrete variable, ``None`` for a real one."""
    if isinstance(var, Choice):
        return list(var.options)
    if isinstance(var, Binary):
        return [False, True]
    if isinstance(var, Integer):
        low, high = var.bounds
        return list(range(int(low), int(high) + 1))
    if isinstance(var, Real):
        return None
    raise TypeError(f"unsupported pymoo variable type {type(var).__name__}")


class UnitCubeEncoder:
    """Bijection between assignments of a pymoo ``vars`` dict and canonical points of ``[0,1]^d``.

    Args:
        variables: name -> pymoo variable, in the order that defines the vector's columns.
    """

    def __init__(self, variables: Mapping[str, Variable]):
        if not variables:
            raise ValueError("UnitCubeEncoder needs at least one variable")
        self.names: list[str] = list(variables)
        self.variables = dict(variables)
        self._values = {name: _discrete_values(var) for name, var in variables.items()}

    @property
    def n_dims(self) -> int:
        return len(self.names)

    def cardinalities(self) -> list[int | None]:
        """Number of values of each discrete dimension (``None`` for a real one)."""
        return [None if v is None else len(v) for v in self._values.values()]

    def encode(self, assignment: Mapping[str, Any]) -> np.ndarray:
        """One assignment (name -> value) to a point of the unit cube."""
        x = np.empty(self.n_dims)
        for j, name in enumerate(self.names):
            if name not in assignment:
                raise KeyError(f"assignment is missing variable {name!r}")
            value, values = assignment[name], self._values[name]
            if values is None:
                low, high = self.variables[name].bounds
                x[j] = (float(value) - low) / (high - low)
                if not 0.0 <= x[j] <= 1.0:
                    raise ValueError(f"{name}={value} is outside its bounds {(low, high)}")
                continue
            try:
                index = values.index(value.item() if isinstance(value, np.generic) else value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not one of {values}") from None
            x[j] = (index + 0.5) / len(values)
        return x

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """A point of the unit cube (values outside are clipped) to an assignment."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_dims,):
            raise ValueError(f"expected a vector of {self.n_dims} values, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("cannot decode a vector with NaN or infinite entries")
        x = np.clip(x, 0.0, 1.0)
        out: dict[str, Any] = {}
        for j, name in enumerate(self.names):
            values = self._values[name]
            if values is None:
                low, high = self.variables[name].bounds
                out[name] = low + x[j] * (high - low)
            else:
                out[name] = values[min(int(x[j] * len(values)), len(values) - 1)]
        return out

    def encode_many(self, assignments) -> np.ndarray:
        return np.stack([self.encode(a) for a in assignments])

    def decode_many(self, X: np.ndarray) -> list[dict[str, Any]]:
        return [self.decode(x) for x in np.atleast_2d(X)]
