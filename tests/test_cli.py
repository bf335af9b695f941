"""Problem files and the command line's error handling (issue 6); nothing here trains a network."""

import textwrap
from pathlib import Path

import pytest

from moo_audio.algorithms.registry import (
    ALGORITHM_NAMES,
    ALGORITHMS,
    AlgorithmEntry,
    AlgorithmError,
    algorithm_class,
    make_algorithm,
)
from moo_audio.cli import main
from moo_audio.problem import Constraints
from moo_audio.problem_files import ProblemFileError, available_problems, load_problem, parse_problem
from moo_audio.training import TrainBudget

SHIPPED = ("builtin", "fsdd", "esc50", "speech_commands", "audioset")

GOOD = """
name = "tiny"
seed = 3
[dataset]
name = "builtin"
n_per_class = 6
[space]
n_mels = [16, 20]
max_blocks = 2
[constraints]
max_macs = 2e6
[training]
max_epochs = 2
stopping = ["patience"]
"""


def _write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.count("\n") == 0 and err.startswith("moo-audio: error: "), err
    return err


def test_shipped_problem_files_validate_without_their_data():
    assert set(SHIPPED) <= set(available_problems())
    for name in SHIPPED:
        spec = load_problem(name)
        assert spec.name == name and spec.path.name == f"{name}.toml"
        assert len(spec.sha256) == 64


def test_builtin_is_the_default_and_parses_every_section():
    spec = load_problem("builtin")
    assert spec.dataset_name == "builtin" and spec.search.workers >= 1
    assert isinstance(spec.constraints, Constraints) and isinstance(spec.budget, TrainBudget)
    assert spec.space(16000, 12, 1000).n_classes == 12
    assert [b.model for b in spec.baselines] == ["ds_cnn_s", "mobilenet_v1", "mobilenet_v2"]


def test_values_reach_the_classes(tmp_path):
    spec = load_problem(_write(tmp_path, GOOD))
    assert spec.seed == 3 and spec.name == "tiny"
    assert spec.constraints == Constraints(max_macs=2e6)
    assert spec.budget.max_epochs == 2 and spec.stopping == ("patience",)
    assert spec.space(16000, 12, 1000).n_mels == (16, 20)
    assert spec.dataset_options == {"n_per_class": 6}


@pytest.mark.parametrize("text, key, words", [
    ("spaec = 1\n" + GOOD, "spaec", "unknown key in top level"),
    (GOOD.replace("n_mels = [16, 20]", "n_melz = [16, 20]"), "space.n_melz", "unknown key"),
    (GOOD.replace("max_blocks = 2", 'max_blocks = "two"'), "space.max_blocks", "expected integer"),
    (GOOD.replace("n_mels = [16, 20]", 'n_mels = [16, "x"]'), "space.n_mels[1]", "expected integer"),
    (GOOD.replace("max_epochs = 2", "max_epochs = 2.5"), "training.max_epochs", "expected integer"),
    (GOOD.replace('["patience"]', '["patience", "psychic"]'), "training.stopping[1]", "unknown rule"),
    (GOOD.replace("max_macs = 2e6", "max_macs = -1.0"), "[constraints]", "positive"),
    (GOOD.replace("n_per_class = 6", "n_per_klass = 6"), "dataset.n_per_klass", "unknown key"),
    (GOOD.replace("n_per_class = 6", 'n_per_class = "six"'), "dataset.n_per_class", "expected integer"),
    (GOOD.replace('name = "builtin"', 'name = "nope"'), "dataset.name", "unknown dataset"),
    (GOOD + '\n[search]\nalgorithm = "simulated-annealing"\n', "search.algorithm", "unknown algorithm"),
    ('objectives = ["error"]\n' + GOOD, "objectives", "exactly"),
    (GOOD + '\n[energy]\npackaged = "phone"\n', "energy.packaged", "unknown packaged energy model"),
    (GOOD + '\n[energy]\nbase = "quadratic"\n', "energy.base", "unknown base 'quadratic'"),
])
def test_bad_problem_files_name_the_file_and_the_key(tmp_path, text, key, words):
    path = _write(tmp_path, text)
    with pytest.raises(ProblemFileError) as info:
        load_problem(path)
    message = str(info.value)
    assert str(path) in message and key in message and words in message, message


def test_cli_bad_problem_file_is_one_line(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("max_blocks = 2", 'max_blocks = "two"'))
    err = _one_line_error(capsys, ["search", "--problem", str(path), "--out", str(tmp_path / "r")])
    assert str(path) in err and "space.max_blocks" in err
    assert not (tmp_path / "r").exists()


def test_cli_invalid_toml_and_unknown_problem(tmp_path, capsys):
    path = _write(tmp_path, "name = \n")
    assert "not valid TOML" in _one_line_error(capsys, ["problems", str(path)])
    assert "unknown problem 'nope'" in _one_line_error(capsys, ["search", "--problem", "nope"])


def test_missing_dataset_folder_names_the_key_and_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOO_AUDIO_SHARED", str(tmp_path / "no-shared"))
    err = _one_line_error(capsys, ["search", "--problem", "fsdd", "--out", str(tmp_path / "r")])
    assert "fsdd.toml" in err and "dataset.root" in err and "no-shared" in err and "MOO_AUDIO_SHARED" in err
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("MOO_AUDIO_DATA", str(tmp_path / "no-data"))
    err = _one_line_error(capsys, ["problems", "esc50"])
    assert "esc50.toml" in err or "point at data" in err


def test_problems_command_lists_status(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOO_AUDIO_DATA", str(tmp_path / "no-data"))
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert "builtin" in out and "ok" in out
    assert "esc50.toml: dataset.root: not found" in out


def test_paths_expand_variables_and_resolve_relative_to_the_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    text = GOOD.replace('name = "builtin"\nn_per_class = 6', 'name = "fsdd"\nroot = "${SOME_ROOT:-data}/rec"')
    path = _write(tmp_path / "sub", text)
    monkeypatch.delenv("SOME_ROOT", raising=False)
    assert parse_problem(path.read_text(), path).dataset_options["root"] == str(tmp_path / "sub" / "data" / "rec")
    monkeypatch.setenv("SOME_ROOT", str(tmp_path / "elsewhere"))
    assert parse_problem(path.read_text(), path).dataset_options["root"] == str(tmp_path / "elsewhere" / "rec")
    with pytest.raises(ProblemFileError, match="dataset.root: environment variable NOPE"):
        parse_problem(text.replace("${SOME_ROOT:-data}", "${NOPE}"), path)


def test_algorithm_options_are_checked():
    with pytest.raises(AlgorithmError, match="algorithms.evolution.pop_sise: RegularizedEvolution has no option"):
        make_algorithm("evolution", {"pop_sise": 4}, "f.toml: algorithms.evolution")
    assert make_algorithm("evolution", {"pop_size": 4, "sample_size": 2}).pop_size == 4
    assert make_algorithm("nsga2", {"pop_size": 6}).pop_size == 6


def test_every_algorithm_name_resolves_and_a_missing_one_is_a_clear_error(monkeypatch):
    for name in ALGORITHM_NAMES:
        assert isinstance(algorithm_class(name), type)
    monkeypatch.setitem(ALGORITHMS, "hybrid", AlgorithmEntry("moo_audio.algorithms.hybrid", "NoSuchSearch"))
    with pytest.raises(AlgorithmError, match="algorithm 'hybrid' is not available .*NoSuchSearch"):
        algorithm_class("hybrid")


def test_cli_rejects_a_zero_budget(tmp_path, capsys):
    path = _write(tmp_path, GOOD)
    err = _one_line_error(capsys, ["search", "--problem", str(path), "--budget", "0", "--out", str(tmp_path / "r")])
    assert "--budget must be >= 1, got 0" in err
