"""Energy per inference: the model interface, the analytic proxy, measurement and the forest.

Any object with ``name`` and ``predict_mj(genomes) -> np.ndarray`` is an energy model for
:class:`~moo_audio.problem.AudioNASProblem`. :class:`ForestEnergyModel` (a linear model of the
operators corrected by a random forest) is fitted on energies
measured on hardware: :func:`measure_genomes` on this host, or a device's results brought in
through a bundle (:func:`write_bundle`, :func:`import_results`); :func:`host_speed` tells a
drifting host's speed from the model's (:mod:`moo_audio.energy.calibration`). Those names are imported on
first use, so that ``from moo_audio.energy import EnergyModel`` does not load onnxruntime
and scikit-learn.
"""

from importlib import import_module

from moo_audio.energy.proxy import AnalyticEnergyModel, EnergyModel

_LAZY = {
    "bundle": ("design", "import_results", "write_bundle"),
    "calibration": ("HostSpeed", "calibration_genomes", "host_speed", "measure_calibrated"),
    "features": ("BASES", "FEATURE_NAMES", "OPERATOR_TERM_NAMES", "feature_matrix", "operator_matrix"),
    "forest": ("AccuracyReport", "ForestEnergyModel", "accuracy", "fit_measurements"),
    "measure": ("TimingSettings", "export_onnx", "measure_genomes", "measure_pareto", "time_models"),
    "profiles": ("PROFILES", "DeviceProfile", "load_profile"),
    "records": ("Measurement", "read_measurements", "write_measurements"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["AnalyticEnergyModel", "EnergyModel", *_MODULE_OF]


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(import_module(f"moo_audio.energy.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'moo_audio.energy' has no attribute {name!r}")
