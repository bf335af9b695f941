"""Smoke tests of the benchmark scripts in ``benchmarks/``: each runs its ``--quick`` mode end to end
in a subprocess (as a user would) and checks what it writes. One test function per script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/<name> args...``; fails the test with the script's output if it fails."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def check_hv_outputs(out: Path, stem: str, groups: set[str], key: str, seeds: int, budget: int) -> dict:
    """``<stem>.json/.md/.png`` exist and parse; one non-decreasing HV curve in [0, 1] per (group, seed)."""
    data = json.loads((out / f"{stem}.json").read_text())
    assert {r[key] for r in data["runs"]} == groups
    assert len(data["runs"]) == len(groups) * seeds
    for run in data["runs"]:
        hv = np.array(run["hv"])
        assert hv.shape == (budget,)
        assert np.all(np.diff(hv) >= 0), f"{run[key]} seed {run['seed']}: HV curve decreases"
        assert 0 <= hv[0] and hv[-1] <= 1
        assert run["n_evals"] == budget
        assert run["reference"] == data["reference"]
    assert set(data["summary"]) == groups
    table = (out / f"{stem}.md").read_text().strip().splitlines()
    assert table[0].startswith("| ") and len(table) == 2 + len(groups)
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.mark.filterwarnings("ignore")
def test_compare_optimizers_quick(tmp_path):
    pytest.importorskip("optuna")
    run_script("compare_optimizers.py", "--quick", "--jobs", "2", "--out", str(tmp_path))
    algorithms = {"hybrid", "bo", "evolution", "mopso", "nsga2", "smsemoa", "random", "optuna-tpe",
                  "optuna-nsga2"}
    data = check_hv_outputs(tmp_path, "optimizers", algorithms, "algorithm", seeds=2, budget=30)
    assert data["marks"] == [25, 30]
    assert "nsga2" in (tmp_path / "optimizers.md").read_text()


@pytest.mark.filterwarnings("ignore")
def test_compare_acquisitions_quick(tmp_path):
    # two of the acquisitions (one hypervolume-based, one scalarising) and one BO iteration each
    run_script("compare_acquisitions.py", "--quick", "--budget", "16", "--acquisitions", "qLogNEHVI,rs-UCB",
               "--out", str(tmp_path))
    variants = {f"{a} {c}" for a in ("qLogNEHVI", "rs-UCB") for c in ("exact", "modelled")}
    data = check_hv_outputs(tmp_path, "acquisitions", variants, "variant", seeds=2, budget=16)
    assert all(r["wall_s"] > 0 for r in data["runs"])
