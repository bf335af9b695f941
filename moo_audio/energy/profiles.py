"""Device profiles, the host's hardware fingerprint and the Linux energy counter (RAPL).

Energy per inference comes from one of two methods:

* ``counter``: energy read from a hardware counter around the timed runs (on the host, the
  Linux powercap interface to Intel/AMD RAPL, ``/sys/class/powercap/intel-rapl:N/energy_uj``);
* ``power_x_time``: latency (``TimingSettings.statistic``) times the active power of a :class:`DeviceProfile`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

METHODS = ("counter", "power_x_time")
POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class DeviceProfile:
    """A device that runs inferences, with the power it draws while it does.

    Args:
        name: short identifier, recorded with every measurement.
        active_power_w: power drawn while running an inference, in watts; energy per
            inference is ``latency x active_power_w`` under the ``power_x_time`` method.
        description: what the figure stands for and where it comes from.
    """

    name: str
    active_power_w: float
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"device profile: name must be a non-empty string, got {self.name!r}")
        power = self.active_power_w
        if (isinstance(power, bool) or not isinstance(power, (int, float))
                or not math.isfinite(power) or power <= 0):
            raise ValueError(f"device profile {self.name!r}: active_power_w must be a positive "
                             f"number of watts, got {power!r}")
        if not isinstance(self.description, str):
            raise ValueError(f"device profile {self.name!r}: description must be a string")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# Nominal figures: replace them with your device's measured active power (a profile file).
PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (
    DeviceProfile("host-cpu-core", 4.0,
                  "one core of an x86 desktop or server CPU under load (nominal 4 W)"),
    DeviceProfile("phone-big-core", 1.5,
                  "one big core of a phone SoC (Cortex-A7x/X class) at high clock (nominal 1.5 W)"),
    DeviceProfile("phone-little-core", 0.3,
                  "one little core of a phone SoC (Cortex-A5x class), the always-on choice "
                  "(nominal 0.3 W)"),
    DeviceProfile("watch-mcu", 0.03,
                  "a Cortex-M4F/M33-class microcontroller near 100 MHz, as in watches and "
                  "earbuds (nominal 30 mW)"),
)}


def load_profile(spec: str | os.PathLike) -> DeviceProfile:
    """A built-in profile by name, or one read from a ``.toml`` / ``.json`` file.

    The file holds ``name``, ``active_power_w`` and optionally ``description`` at top level.
    """
    if isinstance(spec, str) and spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"unknown device profile {str(spec)!r}: expected one of "
                         f"{sorted(PROFILES)} or a .toml/.json profile file")
    if not path.is_file():
        raise FileNotFoundError(f"device profile file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import tomllib  # Python 3.11+

            data = tomllib.loads(text)
    except ModuleNotFoundError:
        raise ValueError(f"{path}: TOML profiles need Python 3.11+; write the profile as JSON") from None
    except ValueError as e:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()} ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile must be a table/object of fields")
    unknown = sorted(set(data) - set(DeviceProfile.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}; a profile has "
                         "name, active_power_w and description")
    missing = [f for f in ("name", "active_power_w") if f not in data]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}")
    try:
        return DeviceProfile(**data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def hardware_fingerprint() -> str:
    """``CPU model | N cores | OS machine`` of this host."""
    cpu = platform.processor() or "unknown CPU"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    return f"{cpu} | {os.cpu_count()} cores | {platform.system()} {platform.machine()}"


class RaplCounter:
    """Cumulative package energy from the Linux powercap interface (Intel and AMD RAPL).

    Reads every top-level ``intel-rapl:N`` zone (one per CPU package; sub-zones such as
    ``intel-rapl:0:0`` are parts of it and are not added). The counters wrap around at
    ``max_energy_range_uj``. They count the whole package, so other activity on the machine
    is included: measure on a quiet machine.
    """

    def __init__(self, zones: Sequence[Path]):
        if not zones:
            raise ValueError("RaplCounter needs at least one powercap zone")
        self.zones = tuple(zones)
        self.max_uj = tuple(int((z / "max_energy_range_uj").read_text()) for z in self.zones)

    @classmethod
    def find(cls, root: Path = POWERCAP_ROOT) -> RaplCounter | None:
        """The counter of this machine, or ``None`` if no zone is present and readable."""
        zones = sorted(p for p in root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        try:
            counter = cls(zones)
            counter.read()
        except (OSError, ValueError):
            return None
        return counter

    def read(self) -> tuple[int, ...]:
        """Current counter values in microjoules, one per zone."""
        return tuple(int((z / "energy_uj").read_text()) for z in self.zones)

    def joules_between(self, start: Sequence[int], end: Sequence[int]) -> float:
        """Energy between two readings, allowing each counter to wrap around once."""
        return sum((e - s) % (m + 1) for s, e, m in zip(start, end, self.max_uj)) * 1e-6


def resolve_method(method: str, counter: RaplCounter | None) -> str:
    """``auto`` -> ``counter`` when one is readable, else ``power_x_time``; checks the others."""
    if method == "auto":
        return "counter" if counter is not None else "power_x_time"
    if method not in METHODS:
        raise ValueError(f"unknown energy method {method!r}; expected auto or one of {METHODS}")
    if method == "counter" and counter is None:
        raise ValueError(f"no readable energy counter under {POWERCAP_ROOT}/intel-rapl:*; "
                         "use the power_x_time method with a device profile")
    return method
