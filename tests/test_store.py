"""The run store, Pareto picks, progress and resume refusals; no network is trained here."""

import io
import math

import numpy as np
import pytest

from moo_audio.jobs import evaluation_row
from moo_audio.problem import AudioNASProblem, Candidate, Constraints, EvaluationStore
from moo_audio.problem_files import parse_problem
from moo_audio.progress import SearchProgress
from moo_audio.search import Search, Settings
from moo_audio.selection import knee, pareto, pick
from moo_audio.space import SearchSpace
from moo_audio.store import Evaluation, RunError, RunStore, genome_id
from moo_audio.training import TrainResult

SPACE = SearchSpace(n_classes=12, n_mels=(16, 20), max_blocks=2, channels=(8, 16))
GENOMES = SPACE.sample(6, seed=0)


def _candidate(i: int, batch: int = 0) -> Candidate:
    return Candidate(energy_mj=0.01 * (i + 1), memory_kb=10.0 + i, macs=1e5 * (i + 1), params=100.0,
                     key=GENOMES[i].key, batch=batch, position=i)


def _result(accuracy: float, failed: bool = False) -> TrainResult:
    if failed:
        return TrainResult(math.nan, math.nan, [0.1], [2.3], 1, "failed", 0.5, True, "non-finite loss at epoch 2",
                           cpu_seconds=0.4)
    return TrainResult(accuracy, accuracy - 0.01, [accuracy / 3, accuracy], [2.0, 1.0], 2, "budget", 1.25,
                       cpu_seconds=1.1)


def test_store_round_trips_rows_exactly(tmp_path):
    store = RunStore.create(tmp_path / "run", {"budget": 6})
    assert isinstance(store, EvaluationStore)
    rows = {0: evaluation_row(_result(1 / 3)), 1: evaluation_row(_result(0.0, failed=True))}
    constraints = Constraints(max_memory_kb=10.5, min_accuracy=0.5)
    for i, row in rows.items():
        assert store.write(_candidate(i), row, constraints)
    assert not store.write(_candidate(0), evaluation_row(_result(0.9)), constraints)  # first row stays
    found = store.lookup([_candidate(i).key for i in range(3)])
    assert set(found) == {_candidate(0).key, _candidate(1).key}
    assert found[_candidate(0).key] == rows[0]  # exact floats: a replay sees what training returned
    assert found[_candidate(1).key]["val_accuracy"] == 0.0 and found[_candidate(1).key]["failed"]
    first, second = store.evaluations()
    assert first.error == pytest.approx(2 / 3) and first.curve == rows[0]["curve"]
    assert first.constraints == pytest.approx({"max_memory_kb": 10 / 10.5 - 1, "min_accuracy": 1 - (1 / 3) / 0.5})
    assert not first.feasible and second.failed
    assert second.failure_reason == "non-finite loss at epoch 2"


def test_a_store_at_rest_is_one_file_and_reading_it_leaves_nothing(tmp_path):
    store = RunStore.create(tmp_path / "run", {"budget": 6})
    store.begin_session(workers=2, budget=6)  # a search writes in WAL mode ...
    store.write(_candidate(0), evaluation_row(_result(0.5)), Constraints(), worker="host:1")
    reader = RunStore.open(tmp_path / "run", readonly=True)
    assert [e.worker for e in reader.evaluations()] == ["host:1"]  # ... while readers look
    store.close()  # ... and leaves one file when its session ends
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.sqlite"]
    reader = RunStore.open(tmp_path / "run", readonly=True)
    assert reader.meta()["budget"] == 6 and reader.count() == 1 and reader.evaluations()[0].error == 0.5
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.sqlite"]
    with pytest.raises(Exception, match="readonly"):
        reader.set_meta(status="x")
    evaluation = reader.evaluations()[0]
    assert evaluation.started_at == pytest.approx(evaluation.finished_at - 1.25)


def _evaluation(i, error, energy, memory, feasible=True) -> Evaluation:
    return Evaluation(energy_mj=energy, memory_kb=memory, macs=1e5, params=100.0, id=i + 1,
                      genome_id=f"g{i:012d}", key=_candidate(i).key, batch=0, position=i, error=error,
                      val_accuracy=1 - error, epochs=2, stop_reason="budget",
                      failed=not feasible, failure_reason=None, constraints={}, curve=[1 - error],
                      train_loss=[1.0], train_seconds=1.0, started_at=0.0, finished_at=1.0, worker="w")


def test_pareto_knee_and_picks():
    evaluations = [_evaluation(0, 0.10, 1.0, 100.0), _evaluation(1, 0.30, 0.1, 10.0),
                   _evaluation(2, 0.15, 0.3, 20.0), _evaluation(3, 0.40, 2.0, 200.0),  # dominated
                   _evaluation(4, 0.05, 0.05, 5.0, feasible=False)]                     # failed
    front = pareto(evaluations)
    assert [e.genome_id for e in front] == ["g000000000000", "g000000000002", "g000000000001"]
    assert knee(front).genome_id == "g000000000002"
    assert pick(evaluations, "min-energy").genome_id == "g000000000001"
    assert pick(evaluations, "min-memory").genome_id == "g000000000001"
    assert pick(evaluations, "min-energy", min_accuracy=0.8).genome_id == "g000000000002"
    assert pick(evaluations, "g000000000003").genome_id == "g000000000003"
    with pytest.raises(RunError, match="no evaluation with that id"):
        pick(evaluations, "g999")
    with pytest.raises(RunError, match="5 evaluations with that id"):
        pick(evaluations, "g00000000000")
    with pytest.raises(RunError, match="no feasible model reaches validation accuracy 0.99"):
        pick(evaluations, "knee", min_accuracy=0.99)


TINY = """
name = "tiny"
[dataset]
name = "builtin"
n_per_class = 3
[space]
n_mels = [16]
max_blocks = 1
[training]
max_epochs = 1
"""


def test_a_run_folder_refuses_other_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path / "cache"))
    spec = parse_problem(TINY, tmp_path / "tiny.toml")
    settings = Settings("random", {"batch_size": 4}, 0, 4)
    Search(tmp_path / "run", spec, settings)
    with pytest.raises(RunError, match="already holds a run .*--resume"):
        Search(tmp_path / "run", spec, settings)
    other_problem = parse_problem(TINY.replace("max_epochs = 1", "max_epochs = 2"), tmp_path / "tiny.toml")
    with pytest.raises(RunError, match="another problem file"):
        Search(tmp_path / "run", other_problem, settings, resume=True)
    for changed, word in ((Settings("evolution", {"batch_size": 4}, 0, 4), "algorithm"),
                          (Settings("random", {"batch_size": 4}, 1, 4), "seed"),
                          (Settings("random", {"batch_size": 2}, 0, 4), "algorithm_options")):
        with pytest.raises(RunError, match=f"made with {word}"):
            Search(tmp_path / "run", spec, changed, resume=True)
    Search(tmp_path / "run", spec, Settings("random", {"batch_size": 4}, 0, 8), resume=True)  # a larger budget is fine
    with pytest.raises(RunError, match="not a run folder"):
        Search(tmp_path / "nothing", spec, settings, resume=True)


def test_problem_answers_from_the_store_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path / "cache"))
    spec = parse_problem(TINY, tmp_path / "tiny.toml")
    store = RunStore.create(tmp_path / "run", {"budget": 2})
    problem: AudioNASProblem = spec.make_problem(store=store)
    X = problem.space.to_x(problem.space.sample(2, seed=1))
    first = problem.evaluate(X, return_as_dictionary=True)
    assert store.count() == 2 and len(problem.history) == 2
    again = spec.make_problem(store=store)
    again.train = lambda *args, **kwargs: pytest.fail("a stored candidate was trained again")
    second = again.evaluate(X, return_as_dictionary=True)
    np.testing.assert_array_equal(first["F"], second["F"])
    assert again.history.to_list() == problem.history.to_list()  # the median rule sees the same curves
    assert [e.batch for e in store.evaluations()] == [0, 0]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_progress_prints_each_evaluation_and_on_a_terminal_the_candidates_in_training(tty):
    stream = _Terminal() if tty else io.StringIO()
    with SearchProgress(budget=4, done=1, stream=stream) as progress:
        progress.started([_candidate(1), _candidate(2)], max_epochs=15)
        progress.epoch(_candidate(1).key, 2, 0.5)
        progress._progress.refresh()
        live = stream.getvalue()
        progress.finished(_candidate(1), evaluation_row(_result(0.75)))
        progress.finished(_candidate(2), evaluation_row(_result(0.0, failed=True)))
    text = stream.getvalue()
    assert "[  2/4]" in text and "error 0.250" in text and "[  3/4]" in text
    assert "failed: non-finite loss at epoch 2" in text
    assert "elapsed" in text and "left" in text
    assert ("epoch 2, val. accuracy 0.500" in live and genome_id(_candidate(2).key) in live) == tty, live
    assert ("evaluations" in live) == tty
