"""moo_audio optimizers as pymoo Algorithms, and the pymoo operators they are built from.

All of them search the unit cube ``[0, 1]^d`` (:class:`~moo_audio.algorithms._space.UnitCube`): a
problem's numeric ``xl``/``xu`` box or, failing that, its mixed ``vars`` through
:class:`moo_audio.encoding.UnitCubeEncoder`; the problem's ``repair`` (a pymoo ``Repair``) is applied
to every candidate, already-evaluated candidates are never proposed again, and failed evaluations
(non-finite objectives) count as infeasible. Use them like any pymoo algorithm::

    from pymoo.optimize import minimize
    res = minimize(problem, BoTorchMOBO(), ("n_evals", 100), seed=1)

Their operators (:mod:`moo_audio.algorithms.operators`) are ordinary pymoo operators that any pymoo
algorithm takes, e.g. ``NSGA2(mutation=OneGeneMutation())``. Names are imported on first use (BoTorch
is slow to import). See ``docs/algorithms.md``.
"""

from importlib import import_module

_LAZY = {
    "botorch_mobo": ("ACQUISITIONS", "BoTorchMOBO"),
    "evolution": ("RegularizedEvolution",),
    "hybrid": ("HybridSearch",),
    "multi_fidelity": ("SuccessiveHalvingSearch",),
    "operators": ("CheapSpreadSampling", "CubeSampling", "OneGeneMutation", "SobolSampling", "SwarmMutation"),
    "pso": ("MOPSO",),
    "random_search": ("RandomSearch",),
    "registry": ("ALGORITHMS", "ALGORITHM_NAMES", "make_algorithm"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(import_module(f"moo_audio.algorithms.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'moo_audio.algorithms' has no attribute {name!r}")
