"""Smoke tests of the benchmark scripts in ``benchmarks/``: each runs its ``--quick`` mode end to end
in a subprocess (as a user would) and checks what it writes. One test function per script."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from moo_audio.energy.packaged import provenance
from moo_audio.problem_files import load_problem

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # for the tests that call a script's functions


def run_script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python benchmarks/<name> args...``; fails the test with the script's output if it fails."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], check=False, capture_output=True,
                          text=True, timeout=timeout, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def check_hv_outputs(out: Path, stem: str, groups: set[str], key: str, seeds: int, budget: int,
                     monotone: bool = True) -> dict:
    """``<stem>.json/.md/.png`` exist and parse; one HV curve in [0, 1] per (group, seed), non-decreasing
    if ``monotone`` (a noisy run's reported front, scored noise-free, can lose hypervolume)."""
    data = json.loads((out / f"{stem}.json").read_text())
    assert {r[key] for r in data["runs"]} == groups
    assert len(data["runs"]) == len(groups) * seeds
    for run in data["runs"]:
        hv = np.array(run["hv"])
        assert hv.shape == (budget,)
        assert not monotone or np.all(np.diff(hv) >= 0), f"{run[key]} seed {run['seed']}: HV curve decreases"
        assert np.all((0 <= hv) & (hv <= 1))
        assert run["n_evals"] == budget
        assert run["reference"] == data["reference"]
    assert set(data["summary"]) == groups
    table = (out / f"{stem}.md").read_text().strip().split("\n\n")[0].splitlines()  # the first table
    assert table[0].startswith("| ") and len(table) == 2 + len(groups)
    assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return data


@pytest.mark.filterwarnings("ignore")
def test_compare_optimizers_quick(tmp_path):
    pytest.importorskip("optuna")
    # all but Ax (its own test below: one Ax step costs more than the others' whole quick runs)
    algorithms = {"hybrid", "botorch", "evolution", "pso", "nsga2", "smsemoa", "random", "optuna-tpe",
                  "optuna-gp", "optuna-nsga2"}
    # ten algorithms' quick runs and their refitted answers passed 300 s on 2 cores busy with two other jobs
    run_script("compare_optimizers.py", "--quick", "--jobs", "2", "--algorithms", ",".join(sorted(algorithms)),
               "--out", str(tmp_path), timeout=900)
    data = check_hv_outputs(tmp_path, "optimizers", algorithms, "algorithm", seeds=2, budget=30)
    assert data["marks"] == [25, 30]
    assert "nsga2" in (tmp_path / "optimizers.md").read_text()
    # every run's designs re-answered by 3 refitted surrogates, at each mark; their HV near the run's own
    for run in data["runs"]:
        refit = np.array(run["hv_refit"])
        assert refit.shape == (3, 2) and np.all(np.abs(refit[:, 1] - run["hv"][-1]) < 0.2)
    verdicts = [line for line in (tmp_path / "optimizers.md").read_text().splitlines() if line.startswith("| 25 |")]
    assert len(verdicts) == 1 and verdicts[0].split("|")[-2].strip() in ("yes", "no")


@pytest.mark.filterwarnings("ignore")
def test_compare_optimizers_seed_noise(tmp_path):
    run_script("compare_optimizers.py", "--quick", "--seed-noise", "--algorithms", "random,nsga2", "--seeds", "1",
               "--out", str(tmp_path))
    data = check_hv_outputs(tmp_path, "optimizers-seed_noise", {"random", "nsga2"}, "algorithm", seeds=1, budget=30,
                            monotone=False)
    assert data["settings"]["seed_noise"]
    random_run = next(r for r in data["runs"] if r["algorithm"] == "random")
    # the front the noisy answers show, at its noise-free values, against the noisy answers' own hypervolume
    assert len(random_run["hv_observed"]) == 30 and random_run["hv"][-1] != random_run["hv_observed"][-1]
    import compare_optimizers

    # a job draws its noise from its seed alone: rerun here, after another job, it answers the same
    compare_optimizers.run("random", 1, "builtin", 50, 30, True, True)
    again = compare_optimizers.run("random", 0, "builtin", 50, 30, True, True)
    np.testing.assert_allclose(again["hv"], random_run["hv"])
    np.testing.assert_allclose(again["hv_observed"], random_run["hv_observed"])
    noise_free = compare_optimizers.run("random", 0, "builtin", 50, 30, True)
    assert noise_free["hv"] != again["hv_observed"] and "hv_observed" not in noise_free

    # merged over itself (a rerun over a stored comparison), each seed of each algorithm counts once
    merged = tmp_path / "merged"
    proc = run_script("compare_optimizers.py", "--merge", str(tmp_path / "optimizers-seed_noise.json"),
                      str(tmp_path / "optimizers-seed_noise.json"), "--out", str(merged))
    assert "random's seeds [0] from" in proc.stderr
    again = check_hv_outputs(merged, "optimizers-seed_noise", {"random", "nsga2"}, "algorithm", seeds=1, budget=30,
                             monotone=False)
    assert again["summary"] == data["summary"] and again["settings"]["table"] == "builtin"
    assert again["settings"]["merged_environments"] == [data["environment"]] * 2  # where each file's runs ran
    # further seeds (--first-seed) merged over the stored ones add to them
    further = tmp_path / "further"
    run_script("compare_optimizers.py", "--quick", "--seed-noise", "--algorithms", "random", "--seeds", "1",
               "--first-seed", "1", "--out", str(further))
    proc = run_script("compare_optimizers.py", "--merge", str(tmp_path / "optimizers-seed_noise.json"),
                      str(further / "optimizers-seed_noise.json"), "--out", str(merged))
    assert "replace" not in proc.stderr
    both = json.loads((merged / "optimizers-seed_noise.json").read_text())
    assert sorted((r["algorithm"], r["seed"]) for r in both["runs"]) == [("nsga2", 0), ("random", 0), ("random", 1)]
    assert both["settings"]["seeds"] == 2  # the most seeds of one algorithm, for the title
    # runs on another table are refused, not reported as this table's
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "settings": {**data["settings"], "table": "fsdd"}}))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "compare_optimizers.py"), "--merge",
                           str(tmp_path / "optimizers-seed_noise.json"), str(other)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "different tables (builtin, fsdd)" in proc.stderr


@pytest.mark.filterwarnings("ignore")
def test_compare_optimizers_ax_peer(tmp_path):
    # Ax's 20-point Sobol design (BoTorchMOBO's n_init on this space), then one BO batch of 2
    pytest.importorskip("ax")
    run_script("compare_optimizers.py", "--quick", "--algorithms", "ax,random", "--seeds", "1", "--budget", "22",
               "--out", str(tmp_path))
    data = check_hv_outputs(tmp_path, "optimizers", {"ax", "random"}, "algorithm", seeds=1, budget=22)
    ax = next(r for r in data["runs"] if r["algorithm"] == "ax")
    assert ax["hv"][-1] > 0


@pytest.mark.filterwarnings("ignore")
def test_compare_optimizers_smac_peer(tmp_path):
    # SMAC's 20-point Sobol design (BoTorchMOBO's n_init on this space), then 4 trials of its forest
    pytest.importorskip("smac")
    import _hv
    import compare_optimizers
    from ConfigSpace import CategoricalHyperparameter, OrdinalHyperparameter

    problem = _hv.surrogate("builtin", 10)
    mapped = {name: compare_optimizers.smac_hyperparameter(name, var) for name, var in problem.vars.items()}
    assert mapped["clip_ms"] is None  # one option: fixed by the assignment
    assert isinstance(mapped["n_mels"], OrdinalHyperparameter) and list(mapped["n_mels"].sequence) == [16, 20, 32, 40]
    assert isinstance(mapped["b0_type"], CategoricalHyperparameter)
    assert list(mapped["b0_skip"].choices) == [False, True]
    run_script("compare_optimizers.py", "--quick", "--algorithms", "smac,random", "--seeds", "1", "--budget", "24",
               "--out", str(tmp_path))
    data = check_hv_outputs(tmp_path, "optimizers", {"smac", "random"}, "algorithm", seeds=1, budget=24)
    smac = next(r for r in data["runs"] if r["algorithm"] == "smac")
    assert smac["hv"][-1] > 0


@pytest.mark.filterwarnings("ignore")
def test_compare_acquisitions_quick(tmp_path):
    # two of the acquisitions (one hypervolume-based, one scalarising) and one BO iteration each
    run_script("compare_acquisitions.py", "--quick", "--budget", "16", "--acquisitions", "qLogNEHVI,rs-UCB",
               "--out", str(tmp_path))
    variants = {f"{a} {c}" for a in ("qLogNEHVI", "rs-UCB") for c in ("exact", "modelled")}
    data = check_hv_outputs(tmp_path, "acquisitions", variants, "variant", seeds=2, budget=16)
    assert all(r["wall_s"] > 0 for r in data["runs"])


@pytest.mark.filterwarnings("ignore")
def test_compare_gp_inputs_quick(tmp_path):
    run_script("compare_acquisitions.py", "--quick", "--budget", "16", "--seeds", "1", "--acquisitions", "qLogNEHVI",
               "--exact", "true", "--gp-inputs", "encoding,features", "--name", "gp_inputs", "--out", str(tmp_path))
    variants = {f"qLogNEHVI exact, GP on {g}" for g in ("encoding", "features")}
    data = check_hv_outputs(tmp_path, "gp_inputs", variants, "variant", seeds=1, budget=16)
    assert data["settings"]["gp_inputs"] == ["encoding", "features"]


@pytest.mark.filterwarnings("ignore")
def test_compare_initial_designs_quick(tmp_path):
    run_script("compare_acquisitions.py", "--quick", "--budget", "16", "--seeds", "1", "--acquisitions", "qLogNEHVI",
               "--exact", "true", "--n-init", "6,12", "--name", "n_init", "--out", str(tmp_path))
    data = check_hv_outputs(tmp_path, "n_init", {f"qLogNEHVI exact, n_init {n}" for n in (6, 12)}, "variant",
                            seeds=1, budget=16)
    hv = {r["n_init"]: r["hv"] for r in data["runs"]}
    # the same Sobol points until the smaller design ends, then BO's proposals against more Sobol points
    assert hv[6][:6] == hv[12][:6] and hv[6][6] != hv[12][6]
    for option, bad in (("--n-init", "0"), ("--n-init", "ten"), ("--n-init", "10,"), ("--q", "0")):
        proc = subprocess.run([sys.executable, str(BENCHMARKS / "compare_acquisitions.py"), "--quick", option, bad],
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0 and f"argument {option}: sizes must be comma-separated integers >= 1" in proc.stderr


@pytest.mark.filterwarnings("ignore")
def test_compare_batch_sizes_quick(tmp_path):
    run_script("compare_acquisitions.py", "--quick", "--budget", "15", "--seeds", "1", "--acquisitions", "qLogNEHVI",
               "--exact", "true", "--n-init", "12", "--q", "1,3", "--reach", "0.01", "--name", "batch_size",
               "--out", str(tmp_path))
    data = check_hv_outputs(tmp_path, "batch_size", {f"qLogNEHVI exact, n_init 12, q {q}" for q in (1, 3)},
                            "variant", seeds=1, budget=15)
    runs = {r["q"]: r for r in data["runs"]}
    assert data["settings"]["q"] == [1, 3] and runs[1]["hv"][:12] == runs[3]["hv"][:12]  # the same Sobol design
    first = next(i + 1 for i, hv in enumerate(runs[1]["hv"]) if hv >= 0.01)  # one seed: the median is the run
    table = (tmp_path / "batch_size.md").read_text()
    assert "| evals to HV 0.01 (median curve) | seeds reaching 0.01 |" in table
    assert f"| {first} | 1 of 1 ({first}-{first}) |" in table


def test_bo_step_timing_on_the_surrogate_benchmark():
    from algorithms_smoke import step_configurations, time_bo_step

    assert {"exact_cheap_objectives": False} in step_configurations("builtin")
    assert {"exact_cheap_objectives": False} not in step_configurations("dtlz2")
    timing = time_bo_step("builtin", n_candidates=64, mc_samples=4)
    assert timing["problem"] == "builtin" and 0 < timing["cpu_s"]


def test_gp_quality_quick(tmp_path):
    run_script("gp_quality.py", "--quick", "--out", str(tmp_path))
    scores = json.loads((tmp_path / "gp_quality.json").read_text())["scores"]["builtin"]["30"]
    assert set(scores) == {"encoding", "features", "encoding+features", "additive"}
    for splits in scores.values():
        overall = np.array(splits)[:, 0]
        assert overall.shape == (3,) and np.all(overall > 0.3)  # measured 0.64-0.82
    assert "minus encoding (paired)" in (tmp_path / "gp_quality.md").read_text()


def test_build_surrogate_quick_survives_kill_9(tmp_path):
    """The builder killed with SIGKILL mid-build resumes without retraining what it finished; the
    merged table loads as a surrogate with seeds, curves and CPU seconds."""
    import os
    import signal
    import time

    from moo_audio.surrogate import load_table
    from moo_audio.table_build import Plan, read_shards

    folder = tmp_path / "build"
    command = [sys.executable, str(BENCHMARKS / "build_surrogate.py"), "--quick", "--workers", "1",
               "--folder", str(folder)]
    first = subprocess.Popen(command, cwd=BENCHMARKS.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        shards = list((folder / "shards").glob("*.jsonl"))
        if shards and shards[0].read_text().count("\n") >= 3:  # the header and two trainings
            break
        time.sleep(0.02)
    assert first.poll() is None, f"the build finished before it could be killed:\n{first.stdout.read().decode()}"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    plan = Plan.load(folder)
    killed = [t for _, trainings in read_shards(folder, plan) for t in trainings]
    assert 2 <= len(killed) < len(plan.trainings())

    proc = run_script("build_surrogate.py", "--quick", "--workers", "1", "--folder", str(folder))
    assert f"{len(killed)} training(s) already in" in proc.stdout
    trainings = [(t["item"], t["seed"]) for _, ts in read_shards(folder, plan) for t in ts]
    assert sorted(trainings) == sorted((i.index, s) for i, s in plan.trainings())  # each exactly once

    out = tmp_path / "table.json.gz"
    run_script("build_surrogate.py", "--folder", str(folder), "--merge", str(out))
    table = load_table(out)
    assert table.meta["budget"]["max_epochs"] == 2 and table.meta["trainings"] == len(trainings)
    assert len(table.meta["machines"]) == 1 and "torch" in table.meta["machines"][0]
    rows = table.trained()
    kinds = [r["kind"] for r in rows]
    assert sorted(kinds) == ["baseline"] * 2 + ["front"] * 2 + ["sample"] * 6
    assert kinds[0] == "baseline" and kinds[1] != "baseline"  # spread through the plan
    assert sum(len(r["runs"]) == 2 for r in rows) == 4  # 2 baselines + 2 repeats, 2 seeds each
    assert all(len(r["curve"]) == 2 and r["cpu_seconds"] > 0 for r in rows)
    assert all(r["macs"] <= table.meta["constraints"]["max_macs"] for r in rows if r["kind"] != "baseline")


def test_early_stopping_quick(tmp_path):
    proc = run_script("early_stopping.py", "--quick", "--out", str(tmp_path))
    data = json.loads((tmp_path / "early_stopping-builtin-quick.json").read_text())
    by_rule = {r["rule"]: r for r in data["results"]}
    assert by_rule["patience 5"]["spearman"] > 0.9  # patience hardly stops: nearly the full ranking
    assert all(r["compute_saved"] >= 1.0 for r in data["results"])
    # halving stops more candidates than patience, and saves more
    assert by_rule["halving (min 1, eta 3)"]["compute_saved"] > by_rule["patience 5"]["compute_saved"]
    assert "compute saved" in proc.stdout


def test_multi_fidelity_quick(tmp_path):
    run_script("multi_fidelity.py", "--quick", "--proposers", "evolution", "--out", str(tmp_path))
    data = json.loads((tmp_path / "multi_fidelity.json").read_text())
    runs = {(r["method"], r["seed"]): r for r in data["runs"]}
    assert set(runs) == {(m, s) for m in ("evolution", "evolution+asha") for s in (0, 1)}
    for run in runs.values():
        hv = np.array(run["hv"])
        assert hv.shape == (data["settings"]["grid"],) and np.all(np.diff(hv) >= 0) and hv[-1] <= 1
    full, asha = [runs[("evolution", s)] for s in (0, 1)], [runs[("evolution+asha", s)] for s in (0, 1)]
    # successive halving trains many more candidates, most of them for 2 of the 15 epochs ...
    assert all(r["n_evals"] > 3 * r["n_whole_budget"] for r in asha)
    assert all(f["n_whole_budget"] == f["n_evals"] for f in full)
    # ... and reaches a higher hypervolume in the same training seconds (measured 0.74 vs 0.63)
    assert np.median([r["hv"][-1] for r in asha]) > np.median([r["hv"][-1] for r in full]) + 0.05
    assert "saving" in (tmp_path / "multi_fidelity.md").read_text()
    assert (tmp_path / "multi_fidelity.png").read_bytes()[:4] == b"\x89PNG"

    # a stored comparison merged with a rerun of it: the rerun's runs replace the stored ones, none twice
    stored = tmp_path / "multi_fidelity.json"
    merged = tmp_path / "merged"
    proc = run_script("multi_fidelity.py", "--merge", str(stored), str(stored), "--out", str(merged))
    assert "evolution+asha's seeds [0, 1] from" in proc.stderr
    again = json.loads((merged / "multi_fidelity.json").read_text())
    assert len(again["runs"]) == 4 and again["summary"] == data["summary"]
    assert again["settings"]["merged_environments"] == [data["environment"]] * 2
    # runs of another surrogate or budget cannot share the table of seconds
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "settings": {**data["settings"], "trees": 7}}))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "multi_fidelity.py"), "--merge", str(stored), str(other)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "differs from" in proc.stderr and "trees" in proc.stderr


def test_frontend_bottleneck_quick(tmp_path):
    run_script("frontend_bottleneck.py", "--quick", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "frontend_bottleneck-builtin-quick.json").read_text())["rows"]
    cost = {(r["representation"], r["first_width"]): r for r in rows}
    assert set(cost) == {("2d", 8), ("2d", 64), ("1d", 8), ("1d", 64)}
    # the bottleneck: widening the first layer costs far more on the 2-D image than on 1-D input
    growth_2d = cost["2d", 64]["macs"] - cost["2d", 8]["macs"]
    growth_1d = cost["1d", 64]["macs"] - cost["1d", 8]["macs"]
    assert growth_2d > 2 * growth_1d
    assert cost["2d", 64]["peak_arena_kb"] > 10 * cost["1d", 64]["peak_arena_kb"]
    assert all(0 <= r["test_accuracy"] <= 1 for r in rows)
    assert (tmp_path / "frontend_bottleneck-builtin-quick.png").exists()


def test_timing_noise_quick():
    proc = run_script("timing_noise.py", "--quick")
    rows = {line for line in proc.stdout.splitlines() if line.startswith("| arena")}  # progress + table
    assert len(rows) == 5 and any("(default)" in r for r in rows)


def test_surrogate_report(tmp_path):
    run_script("surrogate_report.py", "--tables", "builtin", "--trees", "30", "--models", "forest,extra_trees",
               "--out", str(tmp_path / "report"))
    report = json.loads((tmp_path / "report.json").read_text())
    results = report["results"]
    # the report says what it is of: the shipped builtin table is a complete build
    assert report["tables"][0]["trainings"] == report["tables"][0]["planned_trainings"] == 2430
    assert "- `builtin`: 1,810 architectures, all 2,430 planned trainings (a complete build)" in (
        tmp_path / "report.md").read_text()
    seed_noise_rows = [f"{kind} (forest)" for kind in
                       ("seed-noise mode: two draws", "seed-noise mode: a draw vs a real run",
                        "mean prediction vs a real run")]
    assert [r["model"] for r in results] == ["ceiling", "forest", *seed_noise_rows, "extra_trees"]
    ceiling = results[0]
    assert ceiling["repeated"] == 310  # the shipped table: 300 architectures and 10 baselines x 3 seeds
    assert 0.8 < ceiling["spearman"] <= 1.0
    two_draws, draw_vs_run, mean_vs_run = results[2:5]
    # two seed-noise draws differ about as much as two real seeds do (measured MAE 0.028 both) ...
    assert 0.7 * ceiling["mae"] < two_draws["mae"] < 1.4 * ceiling["mae"]
    # ... and a draw, carrying noise of its own, lies farther from a real run than the mean prediction
    assert draw_vs_run["mae"] > mean_vs_run["mae"]
    forest = results[1]
    assert 0.5 < forest["spearman"] <= 1.0 and forest["top_spearman"] < forest["spearman"]
    assert list(forest["by_epochs"]) == ["5", "10", "15"]
    assert "| builtin | forest |" in (tmp_path / "report.md").read_text()
    low, high = forest["top_spearman_interval"]
    assert low < forest["top_spearman"] < high
    # builtin's repeated architectures are its front ones: no other 40 to measure the front's gain on
    assert report["front_gain"] == []


def test_front_gain_compares_the_model_with_and_without_the_front_architectures():
    import dataclasses

    from surrogate_report import against_runs, front_gain, repeated_runs

    from moo_audio.surrogate import SurrogateAudioNASProblem, load_table

    builtin = load_table("builtin")
    # half of builtin's front architectures (all trained with 3 seeds) relabelled as samples: the
    # gain of the other half is measured on them
    relabelled = {r["genome"] for r in builtin.trained("front")[::2]}
    table = dataclasses.replace(builtin, rows=tuple({**r, "kind": "sample"} if r["genome"] in relabelled else r
                                                    for r in builtin.rows))
    problem = SurrogateAudioNASProblem(table, error_model="forest", n_estimators=30, folds=3)
    gain = front_gain(problem, "forest", 30, 3)
    assert gain["front"] == 150 and gain["n"] == 150 + 10  # and the 10 baselines
    rows, real, quality = repeated_runs(problem, ["baseline", "sample"])
    assert gain["with_front"] == dataclasses.asdict(against_runs(problem.cv_curves[rows, -1], real, quality))
    for field in ("spearman", "top_spearman"):
        assert gain[f"{field}_gain"] == pytest.approx(gain["with_front"][field] - gain["without_front"][field])
        low, high = gain[f"{field}_gain_interval"]
        assert low < gain[f"{field}_gain"] < high


def test_time_receptive_field_of_a_known_network():
    from surrogate_inputs import time_receptive_field

    from moo_audio.space import Block, FrontEnd, Genome

    front_end = FrontEnd(clip_ms=1000, hop_ms=10)  # 100 frames
    blocks = (Block("conv", 8, kernel=(3, 5)), Block("dsconv", 8, kernel=3, stride=2, pool=True),
              Block("conv", 8, kernel=3))
    # along time: 5 -> +2 (then stride 2) -> pool +2 (stride 4) -> +2*4: a field of 17 frames, stride 4
    field, stride, share, frames = time_receptive_field(Genome(front_end, blocks, 12))
    assert (2 ** field, 2 ** stride) == pytest.approx((17, 4))
    assert (share, frames) == pytest.approx((0.17, 25))


def test_surrogate_inputs_compares_variants_with_intervals(tmp_path):
    from surrogate_inputs import VARIANTS

    from moo_audio.surrogate import PartialTableWarning, load_table, run_error_curves

    chosen = ["blend with forest", "blend with Gaussian process"]
    assert set(chosen) < set(VARIANTS)
    run_script("surrogate_inputs.py", "--tables", "fsdd", "--trees", "10", "--splits", "1",
               "--variants", ",".join(chosen), "--out", str(tmp_path / "inputs"))
    results = json.loads((tmp_path / "inputs.json").read_text())["results"]
    assert [r["variant"] for r in results] == ["default", *chosen]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialTableWarning)
        rows = load_table("fsdd").trained()
    default = results[0]
    assert default["repeated"] == sum(len(run_error_curves(r)) >= 2 for r in rows)
    assert 0.5 < default["spearman"] <= 1.0
    for result in results[1:]:
        for field in ("spearman", "top_spearman", "vs_run_top_spearman"):
            low, high = result[f"{field}_gain_interval"]
            assert low <= result[field] - default[field] <= high
    assert f"| fsdd | blend with forest | {len(rows)} |" in (tmp_path / "inputs.md").read_text()


def test_best_quarter_focus_weighs_the_best_quarter_of_its_training_curves():
    from surrogate_inputs import BEST_QUARTER_WEIGHT, BestQuarterFocus

    from moo_audio.surrogate import CurveBoosting

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    curves = np.exp(-np.abs(X[:, :1]) - np.linspace(0, 1, 4)) * rng.uniform(0.5, 1.0, (80, 1))
    weights = np.where(curves[:, -1] <= np.quantile(curves[:, -1], 0.25), BEST_QUARTER_WEIGHT, 1.0)
    focused = BestQuarterFocus(max_iter=20, random_state=0).fit(X, curves).predict(X)
    by_hand = CurveBoosting(max_iter=20, random_state=0).fit(X, curves, sample_weight=weights).predict(X)
    plain = CurveBoosting(max_iter=20, random_state=0).fit(X, curves).predict(X)
    np.testing.assert_allclose(focused, by_hand)
    assert not np.allclose(focused, plain)


def test_tune_surrogate_quick(tmp_path):
    from moo_audio.surrogate import PartialTableWarning, SurrogateAudioNASProblem

    run_script("tune_surrogate.py", "--quick", "--tables", "fsdd", "--out", str(tmp_path / "tuning"))
    data = json.loads((tmp_path / "tuning.json").read_text())
    (result,) = data["results"]
    assert len(result["chosen_by_fold"]) == result["folds"] == 2
    assert all(choice["learning_rate"] in data["grid"]["learning_rate"] for choice in result["chosen_by_fold"])
    for field in ("spearman", "top_spearman"):
        low, high = result["difference_interval"][field]
        assert low <= result["tuned"][field] - result["default"][field] <= high
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialTableWarning)
        report = SurrogateAudioNASProblem("fsdd", n_estimators=data["trees"], folds=2).error_model_report
    # the outer folds and the untuned model are the surrogate's own: its cross-validated report
    assert result["default"]["spearman"] == pytest.approx(report.spearman)
    assert result["default"]["top_spearman"] == pytest.approx(report.top_spearman)
    assert f"| fsdd | {result['n']} | tuned |" in (tmp_path / "tuning.md").read_text()


def test_build_energy_model_quick(tmp_path):
    run_script("build_energy_model.py", "--quick", "--name", "quick", "--out", str(tmp_path))
    info = json.loads((tmp_path / "quick.json").read_text())
    assert info["networks"] == 16 and 0 <= info["cv_report"]["within_10"] <= 1
    assert {"hardware", "runtime", "timing", "spaces", "command"} <= set(info)
    assert (tmp_path / "quick.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    # a table away from its provenance is refused by name, before anything is measured
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "quick.csv").write_bytes(gzip.decompress((tmp_path / "quick.csv.gz").read_bytes()))
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "energy_model.py"), "--quick", "--table",
                           str(alone / "quick.csv"), "--out", str(alone)], capture_output=True, text=True)
    assert proc.returncode == 2 and "its provenance quick.json is not beside it" in proc.stderr


def test_energy_terms_quick(tmp_path):
    run_script("energy_terms.py", "--quick", "--out", str(tmp_path))
    report = json.loads((tmp_path / "energy_terms-quick.json").read_text())
    (label, table), = report["tables"].items()
    assert label.startswith("packaged") and list(table["bases"]) == ["operators", "operators+tails"]
    tails = table["bases"]["operators+tails"]
    low, high = tails["difference_all"][1:]
    assert low <= tails["all"]["within_10"] - table["bases"]["operators"]["all"]["within_10"] <= high
    assert sum(tails[band]["n"] for band in tails if band.endswith(" ms")) == tails["all"]["n"]
    assert table["tail_evidence"]["n_tail_heavy"] > 0
    markdown = (tmp_path / "energy_terms-quick.md").read_text()
    assert "| packaged (540 networks, 2026-12-02) | operators+tails |" in markdown


def test_energy_model_quick(tmp_path):
    run_script("energy_model.py", "--quick", "--out", str(tmp_path), "--results", str(tmp_path))
    table = (tmp_path / "energy_model-quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| fresh", "| wider"))]
    # per sample and model (the packaged one, its table refitted with the other base): as predicted
    # and calibrated, then the breakdown
    models = [f"packaged ({provenance()['forest_params']['base']})", "refitted (operators+tails)"]
    assert [row.split("|")[2].strip() for row in rows[:8:2]] == models * 2
    assert [row.split("|")[3].strip() for row in rows[:8]] == ["as predicted", "calibrated"] * 4
    assert all(row.split("|")[4].strip() == "8" for row in rows[:8])
    assert all(row.count("|") == 9 for row in rows[8:]) and len(rows) == 12  # 1-D, 2-D and four latency bands
    assert table.count("host speed factor") == 4 and "of 5 calibration networks" in table
    assert "| ds_cnn_s |" in table and table.count("| int8 |") == 5
    # the stored measurements score again, without measuring, to the same figures
    rescored = tmp_path / "rescored"
    run_script("energy_model.py", "--quick", "--out", str(tmp_path), "--results", str(rescored), "--rescore")
    again = (rescored / "energy_model-quick.md").read_text()
    assert "--rescore`: measured by an earlier run" in again
    assert again.split("Host speed now")[1] == table.split("Host speed now")[1]


def test_parallel_cpu_quick(tmp_path):
    proc = run_script("parallel_cpu.py", "--quick", "--out", str(tmp_path))
    data = json.loads((tmp_path / "parallel_cpu-quick.json").read_text())
    assert set(data["summary"]) == {"in-process", "dask, 1 worker", "processes, no Dask", "dask"}
    assert all(r["failed"] == 0 and r["user_s"] > 0 for r in data["runs"])
    assert "| in-process |" in proc.stdout and "vs in-process" in proc.stdout


def test_augmentation_quick(tmp_path):
    proc = run_script("augmentation.py", "--quick", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "augmentation-builtin-quick.json").read_text())["rows"]
    assert {r["variant"] for r in rows} == {"none", "time shift", "time shift + noise (default)",
                                            "time shift + noise + masks", "time shift + noise + gain",
                                            "time shift + noise + gain + warp"}
    assert all(len(r["runs"]) == 2 and 0 <= r["test"][0] <= 1 for r in rows)
    assert "test accuracy, unseen speakers" in proc.stdout


def test_evidence_quick(tmp_path):
    run_script("evidence.py", "--quick", "--out", str(tmp_path / "out"), "--results", str(tmp_path), timeout=600)
    data = json.loads((tmp_path / "evidence-builtin-quick.json").read_text())
    groups = [m["group"] for m in data["models"]]
    assert groups.count("baseline") == len(load_problem("builtin").baselines) and groups.count("found") >= 1
    assert all(m["measured_energy_mj"] > 0 for m in data["models"])
    assert len(data["host_speed"]["ratios"]) == 20  # the packaged forest's calibration networks
    assert "Measured energy: host speed factor " in (tmp_path / "evidence-builtin-quick.md").read_text()
    header = (tmp_path / "evidence-builtin-quick.md").read_text().splitlines()[0]
    assert header.startswith("`python benchmarks/evidence.py") and " in 1 session(s) " in header
    assert f"evaluation {data['trainings']['used']} trainings, " in header and "(0 of them reused" in header
    run_script("evidence.py", "--quick", "--remeasure", "--results", str(tmp_path))
    again = json.loads((tmp_path / "evidence-builtin-quick.json").read_text())
    assert all(m["remeasured_energy_mj"] > 0 for m in again["models"])
    assert len(again["remeasured_host_speed"]["ratios"]) == 5 and again["remeasured_host_speed"]["factor"] > 0
    text = (tmp_path / "evidence-builtin-quick.md").read_text()
    assert "| measured again | predicted at the host's speed now |" in text and "at the host's speed now: " in text


def test_evidence_extends_a_run_with_the_problem_file_it_began_with(tmp_path, tiny_problem_text):
    problem = tmp_path / "tiny.toml"
    problem.write_text(tiny_problem_text)
    common = ("--problem", str(problem), "--seeds", "2", "--max-models", "1", "--out", str(tmp_path / "out"),
              "--results", str(tmp_path))
    run_script("evidence.py", "--budget", "2", *common, timeout=600)
    problem.write_text(tiny_problem_text.replace('name = "tiny"', '# edited after the run began\nname = "tiny"'))
    proc = run_script("evidence.py", "--budget", "3", *common, timeout=600)
    assert "has changed since" in proc.stdout and "going on with the file as it was then" in proc.stdout
    header = (tmp_path / "evidence-tiny.md").read_text().splitlines()[0]
    assert "in 2 session(s) (random, 3 evaluations)" in header and "reused" in header
    assert json.loads((tmp_path / "evidence-tiny.json").read_text())["trainings"]["reused"] >= 1


def test_validation_agreement_quick(tmp_path):
    shared = Path(__import__("os").environ.get("MOO_AUDIO_SHARED", BENCHMARKS.parent.parent / "shared"))
    if not (shared / "data" / "fsdd" / "recordings").is_dir():
        pytest.skip(f"FSDD not found under {shared} (set MOO_AUDIO_SHARED)")
    run_script("validation_agreement.py", "--quick", "--folds", "2", "--out", str(tmp_path), timeout=600)
    report = json.loads((tmp_path / "validation_agreement-fsdd-quick.json").read_text())["report"]
    assert set(report) == {"one_speaker", "folds"} and all(-1 <= r["spearman"] <= 1 for r in report.values())


def test_tflm_arena_quick(tmp_path):
    pytest.importorskip("tflite_micro", reason="the tflite extra")
    proc = run_script("tflm_arena.py", "--quick", "--out", str(tmp_path))
    data = json.loads((tmp_path / "tflm_arena-quick.json").read_text())
    assert len(data["rows"]) + len(data["refused"]) == 4
    for row in data["rows"]:
        assert row["tflm_arena"] == row["tflm_head"] + row["tflm_tail"]
        assert row["tflm_head"] >= row["analytic_arena"] > 0  # the converter adds tensors, never removes them
    assert data["report"]["analytic_arena vs tflm_head"]["n"] == len(data["rows"])
    assert "TFLite Micro's planned arena (head)" in proc.stdout


def test_runtimes_quick(tmp_path):
    pytest.importorskip("litert_torch", reason="the tflite extra")
    run_script("runtimes.py", "--quick", "--out", str(tmp_path))
    data = json.loads((tmp_path / "runtimes-quick.json").read_text())
    assert data["networks"] + len(data["refused_by_int8_converter"]) == 6 and -1 <= data["spearman"] <= 1
    assert data["runtimes"]["litert"].startswith("ai-edge-litert")
    assert data["runtimes"]["onnxruntime"].startswith("onnxruntime")
    assert all(a > 0 and b > 0 for a, b in data["energy_mj"].values())
    assert (tmp_path / "runtimes-quick-litert-int8.csv.gz").read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.filterwarnings("ignore")
def test_compare_initial_design_samplings_quick(tmp_path):
    run_script("compare_acquisitions.py", "--quick", "--budget", "14", "--seeds", "1", "--first-seed", "3",
               "--acquisitions", "qLogNEHVI", "--exact", "true", "--sampling", "sobol,cheap-spread",
               "--name", "initial_design", "--out", str(tmp_path))
    designs = {f"qLogNEHVI exact, {d} design" for d in ("sobol", "cheap-spread")}
    data = check_hv_outputs(tmp_path, "initial_design", designs, "variant", seeds=1, budget=14)
    assert {r["seed"] for r in data["runs"]} == {3} and data["settings"]["seed_list"] == [3]
    hv = {r["sampling"]: r["hv"] for r in data["runs"]}
    assert hv["sobol"][:12] != hv["cheap-spread"][:12]  # another initial design
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "compare_acquisitions.py"), "--quick", "--sampling", "lhs"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "lhs" in proc.stderr


@pytest.mark.filterwarnings("ignore")
def test_compare_objective_scales_quick(tmp_path):
    run_script("compare_acquisitions.py", "--quick", "--budget", "14", "--seeds", "1", "--acquisitions", "qLogNEHVI",
               "--exact", "true", "--scale", "log,linear", "--paired", "scale", "--name", "objective_scale",
               "--out", str(tmp_path))
    variants = {f"qLogNEHVI exact, {c} scale" for c in ("log", "linear")}
    data = check_hv_outputs(tmp_path, "objective_scale", variants, "variant", seeds=1, budget=14)
    hv = {r["scale"]: r["hv"] for r in data["runs"]}
    assert data["settings"]["scale"] == ["log", "linear"] and hv["log"][:12] == hv["linear"][:12]  # one design
    # the paired column: the linear run against the log run of the same seed, at 14 evaluations
    table = (tmp_path / "objective_scale.md").read_text()
    assert "| ahead of scale log, paired seeds (14) |" in table
    assert table.splitlines()[2].endswith("| - |")
    assert table.splitlines()[3].endswith(f"| {int(hv['linear'][13] > hv['log'][13])} of 1 |")
    (tmp_path / "objective_scale.md").unlink()  # --report rewrites it from the stored runs
    run_script("compare_acquisitions.py", "--report", str(tmp_path / "objective_scale.json"), "--paired", "scale")
    assert (tmp_path / "objective_scale.md").read_text() == table
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "compare_acquisitions.py"), "--quick", "--scale", "sqrt"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "sqrt" in proc.stderr
