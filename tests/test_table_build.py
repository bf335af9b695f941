"""Tests of moo_audio.table_build: plans, shards that survive torn writes, parts and their merge."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from moo_audio.augment import Augmentation
from moo_audio.data import load_dataset
from moo_audio.problem_files import load_problem
from moo_audio.surrogate import SurrogateAudioNASProblem, load_table
from moo_audio.table_build import BuildError, Plan, build, done, extend_plan, make_plan, merge, read_shards, write_table


@pytest.fixture(scope="module")
def spec():
    spec = load_problem("builtin")
    return dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=1))


@pytest.fixture(scope="module")
def problem(spec):
    return spec.make_problem(load_dataset("builtin", **{**spec.dataset_options, "n_per_class": 6}))


@pytest.fixture(scope="module")
def plan(spec, problem):
    return make_plan(problem, spec, n=6, repeats=2, seeds=2)


def test_plan_spreads_repeats_and_is_reproducible(tmp_path, spec, problem, plan):
    assert [len(i.seeds) for i in plan.items] == [2, 1, 1, 2, 1, 1]  # every third architecture twice
    assert len({i.genome for i in plan.items}) == 6 and {i.kind for i in plan.items} == {"sample"}
    assert all(i.costs["macs"] <= spec.constraints.max_macs for i in plan.items)
    assert make_plan(problem, spec, n=6, repeats=2, seeds=2).digest == plan.digest
    plan.save(tmp_path)
    assert Plan.load(tmp_path).digest == plan.digest  # the same before and after saving
    assert make_plan(problem, spec, n=6, repeats=2, seeds=2, seed=1).digest != plan.digest
    assert [i.index for i, _ in plan.trainings((1, 2))] == [1, 3, 3, 5]


def test_parts_built_apart_merge_into_one_table(tmp_path, problem, plan):
    a, b = tmp_path / "a", tmp_path / "b"
    plan.save(a)
    plan.save(b)
    assert build(a, plan, problem, part=(0, 2), log=lambda _: None) == 4
    assert build(b, plan, problem, part=(1, 2), log=lambda _: None) == 4
    assert build(a, plan, problem, part=(0, 2), log=lambda _: None) == 0  # nothing left: nothing retrained
    shutil.copytree(a / "shards", b / "shards", dirs_exist_ok=True)  # a shard seen twice is kept once
    table = merge([a, b])
    assert [r["genome"] for r in table["rows"]] == [i.genome for i in plan.items]
    assert table["meta"]["trainings"] == table["meta"]["planned_trainings"] == 8
    assert [len(r["runs"]) for r in table["rows"]] == [2, 1, 1, 2, 1, 1]
    repeated = table["rows"][0]
    assert repeated["val_accuracy"] == pytest.approx(sum(r["val_accuracy"] for r in repeated["runs"]) / 2)
    assert {r["seed"] for r in repeated["runs"]} == {0, 1}
    assert repeated["runs"][0]["val_accuracy"] != repeated["runs"][1]["val_accuracy"] or \
        repeated["runs"][0]["train_loss"] != repeated["runs"][1]["train_loss"]  # two seeds, two trainings

    other = tmp_path / "other"
    dataclasses.replace(plan, meta={**plan.meta, "seed": 1}).save(other)
    with pytest.raises(BuildError, match="different plans"):
        merge([a, other])
    shutil.copytree(a / "shards", other / "shards")
    with pytest.raises(BuildError, match="belongs to another plan"):
        done(other, Plan.load(other))


def test_an_extended_plan_keeps_its_shards(tmp_path, problem, plan):
    plan.save(tmp_path)
    build(tmp_path, plan, problem, log=lambda _: None)
    prior = SurrogateAudioNASProblem("builtin", energy_model=problem.energy_model, n_estimators=10)
    extended = extend_plan(plan, problem, front=2, prior=prior, seed=5)
    assert extended.identity == plan.identity and extended.digest != plan.digest
    assert [i.kind for i in extended.items[6:]] == ["front", "front"]
    assert len({i.genome for i in extended.items}) == 8
    extended.save(tmp_path)
    assert len(done(tmp_path, extended)) == 8  # the first build's trainings still count
    assert build(tmp_path, extended, problem, log=lambda _: None) == 2
    assert extended.meta["sampling"]["extensions"] == [
        {"front": 2, "sobol_seed": 5, "prior": "builtin", "prior_architectures": len(prior.table.rows)}]
    with pytest.raises(BuildError, match="extended differently"):
        other = tmp_path / "other"
        extend_plan(plan, problem, front=1, prior=prior, seed=6).save(other)
        merge([tmp_path, other])


def test_a_torn_last_line_is_dropped_and_damage_elsewhere_named(tmp_path, problem, plan):
    plan.save(tmp_path)
    build(tmp_path, plan, problem, part=(0, 3), log=lambda _: None)
    (shard,) = (tmp_path / "shards").glob("*.jsonl")
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines) + "\n" + lines[-1][:25])  # killed while writing a line
    assert len(read_shards(tmp_path, plan)[0][1]) == len(lines) - 1
    shard.write_text("\n".join([lines[0], lines[1][:25], *lines[2:]]) + "\n")
    with pytest.raises(BuildError, match=rf"{shard.name}:2: not a JSON line"):
        read_shards(tmp_path, plan)


def test_a_plan_refuses_other_data_or_budget(tmp_path, spec, problem, plan):
    plan.save(tmp_path)
    longer = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
    other = longer.make_problem(problem.dataset)
    with pytest.raises(BuildError, match="other budget than this problem's"):
        build(tmp_path, plan, other, log=lambda _: None)
    with pytest.raises(BuildError, match="has no plan.json"):
        Plan.load(tmp_path / "missing")


def test_a_plan_written_before_an_augmentation_option_existed_still_builds(tmp_path, spec, problem, plan):
    augmented = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, augment=Augmentation()))
    problem = augmented.make_problem(problem.dataset)
    older = make_plan(problem, augmented, n=2, repeats=0, seeds=1)
    for option in ("gain_db", "freq_warp"):  # options this version added, off by default
        del older.meta["budget"]["augment"][option]
    assert build(tmp_path, older, problem, log=lambda _: None) == 2
    older.meta["budget"]["augment"]["gain_db"] = [-20.0, 10.0]  # a plan made with the option on is another budget
    with pytest.raises(BuildError, match="other budget than this problem's"):
        build(tmp_path, older, problem, log=lambda _: None)


@pytest.mark.filterwarnings("ignore:An input array is constant")  # one epoch of tiny data
def test_merged_table_serves_the_surrogate(tmp_path, problem, plan):
    plan.save(tmp_path)
    build(tmp_path, plan, problem, log=lambda _: None)
    path = tmp_path / "table.json.gz"
    write_table(path, merge([tmp_path]))
    surrogate = SurrogateAudioNASProblem(load_table(path), n_estimators=5, folds=3)
    assert surrogate.max_epochs == 1 and surrogate.error_model_report.n == 6
