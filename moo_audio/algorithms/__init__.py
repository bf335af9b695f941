"""moo_audio optimizers as pymoo Algorithms.

All of them search the unit cube ``[0, 1]^d`` (:class:`~moo_audio.algorithms._space.UnitCube`): a
problem's numeric ``xl``/``xu`` box or, failing that, its mixed ``vars`` through
:class:`moo_audio.encoding.UnitCubeEncoder`; the problem's ``repair`` (a pymoo ``Repair``) is applied
to every candidate, already-evaluated candidates are never proposed again, and failed evaluations
(non-finite objectives) count as infeasible. Use them like any pymoo algorithm::

    from pymoo.optimize import minimize
    res = minimize(problem, BoTorchMOBO(), ("n_evals", 100), seed=1)

See ``docs/algorithms.md``.
"""

from moo_audio.algorithms.botorch_mobo import ACQUISITIONS, BoTorchMOBO
from moo_audio.algorithms.evolution import RegularizedEvolution
from moo_audio.algorithms.hybrid import HybridSearch, SwarmEvolution
from moo_audio.algorithms.pso import MOPSO
from moo_audio.algorithms.random_search import RandomSearch

__all__ = [
    "ACQUISITIONS",
    "MOPSO",
    "BoTorchMOBO",
    "HybridSearch",
    "RandomSearch",
    "RegularizedEvolution",
    "SwarmEvolution",
]
