"""What a fresh install needs (issue 12): the pinned torch/torchaudio pair, a one-line error when the
pair does not load, and problem files that ship inside the package."""

import os
import subprocess
import sys
import tomllib
from importlib import metadata, resources
from pathlib import Path

from moo_audio.problem_files import available_problems, load_problem
from moo_audio.torch_pair import pinned_pair

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_pins_are_pyprojects_and_load():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = pinned_pair()
    assert sorted(pins) == sorted(d.replace(" ", "") for d in declared if d.startswith(("torch==", "torchaudio==")))
    assert len(pins) == 2 and all("==" in p for p in pins)
    import torch
    import torchaudio

    for module, pin in zip((torch, torchaudio), sorted(pins)):
        assert module.__version__.split("+")[0] == pin.split("==")[1]


def test_a_pair_that_does_not_load_is_one_line_naming_both_versions(tmp_path):
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "try:\n    raise OSError('libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace')\n"
        "except OSError as e:\n    raise OSError('Could not load this library: libtorchaudio.so') from e\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "moo_audio.cli", "problems"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    torch_version, torchaudio_version = metadata.version("torch"), metadata.version("torchaudio")
    assert f"torchaudio {torchaudio_version} does not load with torch {torch_version}" in lines[0]
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in lines[0]
    assert f"pip install {' '.join(pinned_pair())}" in lines[0]


def test_problem_files_ship_inside_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty folder: no ./problems
    shipped = Path(str(resources.files("moo_audio") / "problems"))
    found = available_problems()
    assert {"builtin", "fsdd", "speech_commands"} <= set(found)
    assert all(path.parent.resolve() == shipped.resolve() for path in found.values())
    assert load_problem("builtin").name == "builtin"


def test_a_users_problems_folder_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "problems").mkdir()
    text = (Path(str(resources.files("moo_audio") / "problems" / "builtin.toml"))).read_text()
    (tmp_path / "problems" / "builtin.toml").write_text(text.replace('name = "builtin"\n', 'name = "mine"\n', 1))
    assert load_problem("builtin").name == "mine"
    assert available_problems()["builtin"] == tmp_path / "problems" / "builtin.toml"
