"""The user's workflow end to end (issue 6): search, kill -9, resume, report, export.

Everything runs on a tiny problem (6 clips per class of the built-in data, 2 epochs, 8 evaluations).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from moo_audio.cli import main
from moo_audio.report import baselines
from moo_audio.store import RunStore

TINY = """
name = "tiny"
seed = 0
[dataset]
name = "builtin"
n_per_class = 6
[space]
n_mels = [16, 20]
win_ms = [25, 32]
hop_ms = [16, 20]
max_blocks = 2
channels = [8, 16]
kernels = [3]
expansions = [1, 2]
[training]
max_epochs = 2
batch_size = 32
[search]
algorithm = "evolution"
evaluations = 8
[algorithms.evolution]
pop_size = 4
sample_size = 2
n_offsprings = 2
[report]
baselines = [{ model = "mobilenet_v1", width = 0.25 }]
"""
BUDGET = 8


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workflow")
    (folder / "tiny.toml").write_text(TINY)
    return folder


@pytest.fixture(scope="module", autouse=True)
def cache(workdir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOO_AUDIO_CACHE", str(workdir / "cache"))
        yield


@pytest.fixture(scope="module")
def reference_run(workdir):
    """An uninterrupted search, in this process."""
    run = workdir / "reference"
    assert main(["search", "--problem", str(workdir / "tiny.toml"), "--out", str(run)]) == 0
    return run


def _search_command(workdir, run, *extra):
    return [sys.executable, "-m", "moo_audio.cli", "search", "--problem", str(workdir / "tiny.toml"),
            "--out", str(run), *extra]


def test_search_prints_the_pareto_table(reference_run, capsys):
    store = RunStore.open(reference_run)
    evaluations = store.evaluations()
    assert len(evaluations) == BUDGET and len({e.key for e in evaluations}) == BUDGET
    assert store.meta()["status"] == "finished"
    assert all(len(e.curve) == e.epochs for e in evaluations)


def test_killed_search_resumes_without_losing_or_repeating(workdir, reference_run):
    run = workdir / "killed"
    process = subprocess.Popen(_search_command(workdir, run), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if (run / "run.sqlite").exists() and RunStore(run).count() >= 2:
            break
        time.sleep(0.1)
    assert process.poll() is None, process.stdout.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {e.key: e for e in RunStore(run).evaluations()}
    assert 2 <= len(before) < BUDGET

    resumed = subprocess.run(_search_command(workdir, run, "--resume"), capture_output=True, text=True,
                             env=os.environ.copy(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(before)} evaluation(s) already in" in resumed.stdout
    assert "[  8/8] g" in resumed.stdout and f"[{len(before):>3}/8]" not in resumed.stdout  # new ones only
    assert "Pareto set of 8 evaluations" in resumed.stdout and "moo-audio report" in resumed.stdout
    store = RunStore.open(run)
    after = store.evaluations()
    assert len(after) == BUDGET and len({e.key for e in after}) == BUDGET
    for e in after:
        if e.key in before:  # completed before the kill: kept as it was, not trained again
            assert (e.id, e.finished_at, e.curve) == (before[e.key].id, before[e.key].finished_at,
                                                      before[e.key].curve)
    assert [s["status"] for s in store.sessions()] == ["running", "finished"]  # the killed one never ended
    finished = store.sessions()[1]
    assert store.search_seconds() == pytest.approx(finished["finished_at"] - finished["started_at"])
    assert store.meta()["status"] == "finished"
    # deterministic replay: the same candidates, in the same order, as a search never interrupted
    reference = RunStore(reference_run).evaluations()
    assert [(e.key, e.batch, e.position) for e in after] == [(e.key, e.batch, e.position) for e in reference]


def test_worker_count_does_not_change_the_evaluations(workdir, reference_run):
    """Two Dask worker processes give exactly the evaluations of one in-process search."""
    run = workdir / "two-workers"
    assert main(["search", "--problem", str(workdir / "tiny.toml"), "--workers", "2", "--out", str(run)]) == 0

    def rows(folder):
        return [(e.key, e.batch, e.position, e.error, e.curve, e.train_loss, e.epochs, e.stop_reason)
                for e in RunStore(folder).evaluations()]

    assert RunStore(run).sessions()[0]["workers"] == 2
    assert rows(run) == rows(reference_run)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_search_on_separately_started_dask_processes_loses_nothing(workdir, reference_run, tmp_path):
    """A scheduler and two workers started as their own processes (`dask scheduler`, `dask worker`):
    a worker killed mid-search costs nothing but its candidate's retry, a driver killed with -9 is
    resumed, and every finished evaluation is kept exactly once, the same as an in-process search."""
    dask = str(Path(sys.executable).parent / "dask")
    address_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(address_file), "--port", "0",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(address_file.exists, 60, "the scheduler")
        address = json.loads(address_file.read_text())["address"]
        workers = [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        processes += workers
        run = tmp_path / "run"
        driver = subprocess.Popen(_search_command(workdir, run, "--scheduler", address), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=os.environ.copy())
        processes.append(driver)

        def stored() -> int:
            return RunStore(run, readonly=True).count() if (run / "run.sqlite").exists() else 0

        _wait_for(lambda: stored() >= 2 or driver.poll() is not None, 180, "two evaluations")
        workers[0].send_signal(signal.SIGKILL)  # the other worker takes over its candidate
        _wait_for(lambda: stored() >= 4 or driver.poll() is not None, 180, "four evaluations")
        assert driver.poll() is None, driver.stdout.read().decode()
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        before = {e.key: e for e in RunStore(run, readonly=True).evaluations()}
        assert 4 <= len(before) < BUDGET

        resumed = subprocess.run(_search_command(workdir, run, "--resume", "--scheduler", address),
                                 capture_output=True, text=True, env=os.environ.copy(), timeout=300)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"the workers of {address}" in resumed.stdout
    finally:
        for process in processes:
            process.kill()
            process.wait()
    after = RunStore(run, readonly=True).evaluations()
    assert len(after) == BUDGET and len({e.key for e in after}) == BUDGET and not any(e.failed for e in after)
    for e in after:
        if e.key in before:
            assert (e.id, e.finished_at, e.curve) == (before[e.key].id, before[e.key].finished_at, before[e.key].curve)

    def rows(evaluations):
        return [(e.key, e.batch, e.position, e.error, e.curve, e.train_loss) for e in evaluations]

    assert rows(after) == rows(RunStore(reference_run, readonly=True).evaluations())


def test_resume_refuses_another_algorithm(workdir, reference_run, capsys):
    code = main(["search", "--problem", str(workdir / "tiny.toml"), "--out", str(reference_run),
                 "--algorithm", "random", "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "made with algorithm 'evolution', not 'random'" in err and "\n" not in err


def _image_is_a_plot(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 10_000, path
    pixels = matplotlib.image.imread(path)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 20, f"{path} has only {len(colours)} colours"


def test_report_renders_and_caches_baselines(reference_run, capsys):
    assert main(["report", str(reference_run)]) == 0
    out = capsys.readouterr().out
    assert "training 1 baseline(s) under the run's budget (mobilenet_v1 x0.25)" in out
    folder = reference_run / "report"
    for name in ("pareto", "hypervolume", "layers", "curves"):
        _image_is_a_plot(folder / f"{name}.png")
    page = (folder / "index.html").read_text()
    assert "Pareto set" in page and "mobilenet_v1 x0.25" in page and 'src="pareto.png"' in page

    lines = []
    cached = baselines(RunStore(reference_run), train=False, log=lines.append)
    assert not lines and cached[0].val_accuracy is not None  # read back from the store, not retrained
    assert f"{cached[0].error:.3f}" in page


def test_export_writes_onnx_that_matches_torch(reference_run, capsys):
    import onnxruntime as ort

    from moo_audio.nets import build
    from moo_audio.space import Genome

    assert main(["export", str(reference_run), "--pick", "min-energy"]) == 0
    out = capsys.readouterr().out
    folder = Path(out.split("exported ")[1].split(" to ")[1].splitlines()[0])
    genome = Genome.from_json((folder / "genome.json").read_text())
    model = build(genome)
    model.load_state_dict(torch.load(folder / "weights.pt"))
    model.eval()
    x = np.random.default_rng(0).standard_normal((3, *genome.frontend.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    sessions = {name: ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
                for name in ("model.onnx", "model_int8.onnx")}
    got = {name: np.concatenate([s.run(None, {"logmel": xi[None]})[0] for xi in x]) for name, s in sessions.items()}
    np.testing.assert_allclose(got["model.onnx"], expected, rtol=1e-3, atol=1e-4)
    assert got["model_int8.onnx"].shape == expected.shape and np.isfinite(got["model_int8.onnx"]).all()
    card = (folder / "MODEL_CARD.md").read_text()
    for words in ("validation (ONNX int8)", "energy per inference", "MACs", "parameters", "Dataset `builtin`",
                  "max_epochs"):
        assert words in card
    from moo_audio import tflite_io

    if tflite_io.available():  # the tflite extra (CI installs it): the .tflite files beside the ONNX ones
        np.testing.assert_allclose(tflite_io.run_logits(folder / "model.tflite", x), expected, rtol=1e-3, atol=1e-4)
        assert tflite_io.TFLiteModel(folder / "model_int8.tflite").dtype == "int8"
        assert "TFLite int8 top-1 agreement with torch" in card
        arena = tflite_io.micro_arena(folder / "model_int8.tflite").total
        assert f"runs in a {arena:,}-byte tensor arena" in card


def test_export_wrong_pick_is_a_one_line_error(reference_run, capsys):
    assert main(["export", str(reference_run), "--pick", "nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--pick 'nonsense': no evaluation with that id" in err and "\n" not in err
