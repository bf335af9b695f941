"""Building a surrogate table: a plan of trainings, shards that survive being killed, and their merge.

A *build folder* holds ``plan.json`` (the problem file, its data's fingerprint, the architectures
and the seeds each is trained with) and ``shards/*.jsonl``, one file per builder process: a header
line (machine, versions, the plan's :attr:`~Plan.identity`), then one line per finished training,
appended and flushed to disk as it finishes. A builder killed at any point loses only the
trainings in flight; the next one reads every shard and trains what is missing. Builders on
several machines share one plan (copy the folder or its ``plan.json``; ``part=(i, k)`` splits the
work), and :func:`merge` joins their shards into the table that
:class:`~moo_audio.surrogate.SurrogateAudioNASProblem` loads. A plan can grow (:func:`extend_plan`:
more architectures near the front a partial table predicts) without invalidating its shards.

Every training is the problem's own (its ``[training]`` recipe: budget, augmentation, speaker folds)
for the whole budget, with no early stopping, so the full validation curve is kept: stopping rules
and multi-fidelity optimizers replay it.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc

from moo_audio.augment import Augmentation
from moo_audio.energy.profiles import hardware_fingerprint
from moo_audio.jobs import training_seed
from moo_audio.problem import AudioNASProblem, cheap_values
from moo_audio.space import Genome

PLAN = "plan.json"
#: the plan fields that define what a training is: shards of plans that agree on them can be merged
IDENTITY_KEYS = ("problem_sha256", "dataset_fingerprint", "budget", "folds", "seed")
SHARDS = "shards"
#: the fields of a training's evaluation row that a shard keeps
RUN_KEYS = ("val_accuracy", "curve", "train_loss", "epochs", "seconds", "cpu_seconds", "failed",
            "failure_reason", "fold_val_accuracies")


class BuildError(ValueError):
    """A build folder that cannot be used as asked (named in the message)."""


@dataclass(frozen=True)
class PlanItem:
    """One architecture of a plan and the seeds it is trained with."""

    index: int
    kind: str                # "baseline", "sample" (space-filling) or "front" (near the predicted front)
    genome: str              # Genome.key
    seeds: tuple[int, ...]
    label: str = ""
    costs: dict[str, float] = dataclasses.field(default_factory=dict)  # macs, params, memory_kb, energy_mj


@dataclass(frozen=True)
class Plan:
    """What a build trains: ``meta`` (problem, data, budget, space, sampling) and its items."""

    meta: dict[str, Any]
    items: tuple[PlanItem, ...]

    def __post_init__(self) -> None:
        # as JSON holds it (tuples become lists), so that a plan digests alike before and after saving
        object.__setattr__(self, "meta", json.loads(json.dumps(self.meta)))

    @property
    def digest(self) -> str:
        """sha256 of the whole plan's canonical JSON."""
        return _sha256(self.to_json())

    @property
    def identity(self) -> str:
        """sha256 of the :data:`IDENTITY_KEYS` of the plan: the same for a plan and its extensions,
        carried by each of its shards."""
        return _sha256({k: self.meta[k] for k in IDENTITY_KEYS})

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "items": [dataclasses.asdict(i) for i in self.items]}

    def trainings(self, part: tuple[int, int] = (0, 1)) -> list[tuple[PlanItem, int]]:
        """``(item, seed)`` pairs of this part (items whose index is ``i`` modulo ``k``), in plan order."""
        i, k = part
        return [(item, seed) for item in self.items if item.index % k == i for seed in item.seeds]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / PLAN, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, folder: Path) -> Plan:
        path = Path(folder) / PLAN
        if not path.is_file():
            raise BuildError(f"{folder} is not a build folder: it has no {PLAN}")
        data = json.loads(path.read_text())
        items = tuple(PlanItem(**{**i, "seeds": tuple(i["seeds"])}) for i in data["items"])
        return cls(data["meta"], items)


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# ---- sampling -------------------------------------------------------------------------------------
def sample_feasible(problem: AudioNASProblem, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Genome]:
    """``n`` distinct genomes meeting the problem's cheap constraints, from a scrambled Sobol stream
    over the unit-cube encoding (decoded and repaired), none of them in ``exclude`` (keys)."""
    sobol = qmc.Sobol(problem.space.n_var, scramble=True, seed=seed)
    genomes, keys = [], set(exclude)
    for _ in range(256):
        batch = problem.space.from_x(sobol.random(256))
        for genome, c in zip(batch, cheap_values(batch, problem.energy_model)):
            violations = problem.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs)
            if genome.key in keys or any(v > 0 for v in violations.values()):
                continue
            keys.add(genome.key)
            genomes.append(genome)
            if len(genomes) == n:
                return genomes
    raise BuildError(f"found only {len(genomes)} new feasible architectures in 65536 Sobol points; "
                     f"ask for fewer than {n}")


def near_front(problem: AudioNASProblem, prior, n: int, seed: int, exclude: Iterable[str]) -> list[Genome]:
    """``n`` genomes near the Pareto front a prior surrogate predicts: from a pool of ``16 n`` feasible
    Sobol genomes, the survivors of pymoo's rank-and-crowding selection on the prior's objectives."""
    from pymoo.core.population import Population
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

    pool = sample_feasible(problem, 16 * n, seed, exclude)
    F = prior.evaluate(problem.space.to_x(pool), return_values_of=["F"])
    survivors = RankAndCrowding().do(prior, Population.new(F=F, index=np.arange(len(pool))), n_survive=n)
    return [pool[i] for i in sorted(int(i) for i in survivors.get("index"))]


def make_plan(problem: AudioNASProblem, spec, *, n: int, repeats: int, seeds: int, front: int = 0,
              prior=None, baselines: dict[str, Genome] | None = None, seed: int = 0) -> Plan:
    """The plan of a table for ``problem`` (built from problem file ``spec``).

    Args:
        n: space-filling architectures (scrambled Sobol, seed ``seed``).
        repeats: how many of the sampled architectures (spread evenly over the plan) and every
            baseline are trained with ``seeds`` seeds; the others with one.
        front: extra architectures near the front ``prior`` predicts (a
            :class:`~moo_audio.surrogate.SurrogateAudioNASProblem` of the same space), see :func:`near_front`.
        baselines: labelled genomes (default none), spread evenly through the plan: baselines are
            the costliest trainings, and a build cut short (one session of many) then holds some of
            each kind and a throughput that stands for the whole.
    """
    baselines = dict(baselines or {})
    samples = sample_feasible(problem, n, seed, exclude=[g.key for g in baselines.values()])
    fronts = [] if not front else near_front(problem, prior, front, seed + 1,
                                             [g.key for g in [*baselines.values(), *samples]])
    # front genomes and baselines interleaved with the samples, so that a build cut short has some of each
    drawn = _interleave([("sample", "", g) for g in samples], [("front", "", g) for g in fronts])
    every = len(drawn) / repeats if repeats else 0.0
    repeated = {drawn[int(j * every)][2].key for j in range(min(repeats, len(drawn)))}
    ordered = _interleave(drawn, [("baseline", label, g) for label, g in baselines.items()])
    genomes = [g for _, _, g in ordered]
    items = tuple(
        PlanItem(index, kind, g.key, tuple(range(seeds if kind == "baseline" or g.key in repeated else 1)),
                 label, vars(c))
        for index, ((kind, label, g), c) in enumerate(zip(ordered, cheap_values(genomes, problem.energy_model))))
    meta = {
        "problem": spec.name, "problem_sha256": spec.sha256, "problem_text": spec.text,
        "dataset": problem.dataset.name, "dataset_fingerprint": problem.dataset.fingerprint,
        "budget": dataclasses.asdict(problem.budget), "folds": problem.folds,
        "constraints": dataclasses.asdict(problem.constraints), "energy_model": problem.energy_model.name,
        "space": space_options(problem.space), "seed": problem.seed,
        "sampling": {"samples": n, "front": len(fronts), "repeats": len(repeated), "seeds": seeds,
                     "sobol_seed": seed, "prior": None if prior is None else prior.table.meta.get("problem")},
    }
    return Plan(meta, items)


def _interleave(many: list, few: list) -> list:
    """``few`` spread evenly through ``many`` (the first of them first)."""
    out = list(many)
    step = len(many) / max(1, len(few))
    for j, entry in enumerate(few):
        out.insert(int(j * step) + j, entry)
    return out


def extend_plan(plan: Plan, problem: AudioNASProblem, *, front: int, prior, seed: int) -> Plan:
    """``plan`` with ``front`` more architectures (one seed each) near the front that ``prior`` predicts
    (e.g. the surrogate of the plan's own partial table), none already planned; its shards stay valid."""
    fronts = near_front(problem, prior, front, seed, [i.genome for i in plan.items])
    first = len(plan.items)
    items = tuple(PlanItem(first + j, "front", g.key, (0,), "", vars(c))
                  for j, (g, c) in enumerate(zip(fronts, cheap_values(fronts, problem.energy_model))))
    extension = {"front": len(items), "sobol_seed": seed, "prior": prior.table.meta.get("problem"),
                 "prior_architectures": len(prior.table.trained())}
    sampling = {**plan.meta["sampling"], "extensions": [*plan.meta["sampling"].get("extensions", []), extension]}
    return Plan({**plan.meta, "sampling": sampling}, plan.items + items)


def space_options(space) -> dict[str, Any]:
    """The search space's constructor arguments (JSON-ready), so the table can rebuild it."""
    return {f.name: getattr(space, f.name) for f in dataclasses.fields(space) if f.init}


# ---- shards ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Where a shard was built: host, CPU, torch and the training device."""
    return {"host": platform.node(), "hardware": hardware_fingerprint(), "python": platform.python_version(),
            "torch": torch.__version__}


def read_shards(folder: Path, plan: Plan) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every shard of a build folder as ``(header, trainings)``. A shard's torn last line (its builder
    killed while writing) is dropped; any other unreadable line, or a shard of another plan, is an error."""
    shards = []
    for path in sorted((Path(folder) / SHARDS).glob("*.jsonl")):
        text = path.read_text()
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number < len(lines):  # only the unterminated last line may be torn
                    raise BuildError(f"{path}:{number}: not a JSON line (the shard is damaged)") from None
        if not records:
            continue
        header, trainings = records[0], records[1:]
        if header.get("plan") != plan.identity:
            raise BuildError(f"{path} belongs to another plan (identity {str(header.get('plan'))[:12]}, "
                             f"this folder's {plan.identity[:12]})")
        for t in trainings:
            if t["item"] >= len(plan.items) or plan.items[t["item"]].genome != t["genome"]:
                raise BuildError(f"{path}: training of item {t['item']} is not that item of the plan "
                                 "(a shard of another version of the plan)")
        shards.append((header, trainings))
    return shards


def done(folder: Path, plan: Plan) -> set[tuple[int, int]]:
    """``(item index, seed)`` of every training the folder's shards hold."""
    return {(t["item"], t["seed"]) for _, trainings in read_shards(folder, plan) for t in trainings}


class ShardWriter:
    """Appends trainings to a new shard file, each line flushed and fsynced as it is written."""

    def __init__(self, folder: Path, plan: Plan, device: str):
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        # unique across machines, processes and builders of one process: shards are copied between folders
        name = f"{platform.node() or 'host'}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = Path(folder) / SHARDS / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("x")
        self._write({"plan": plan.identity, "machine": machine(), "device": device,
                     "started": datetime.datetime.now(datetime.UTC).isoformat()})

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, item: PlanItem, seed: int, row: dict[str, Any], worker: str) -> None:
        self._write({"item": item.index, "genome": item.genome, "seed": seed, "worker": worker,
                     **{k: row[k] for k in RUN_KEYS if k in row}})

    def close(self) -> None:
        self._file.close()


def check_data(plan: Plan, problem: AudioNASProblem) -> None:
    """The plan was made for this problem's data, budget and folds (else a :class:`BuildError`)."""
    now = {"dataset_fingerprint": problem.dataset.fingerprint, "budget": dataclasses.asdict(problem.budget),
           "folds": problem.folds}
    planned = {**plan.meta, "budget": _budget_in_todays_form(plan.meta["budget"])}
    changed = [k for k, v in now.items() if json.loads(json.dumps(v)) != planned[k]]  # plan.meta: JSON form
    if changed:
        raise BuildError(f"the plan was made for other {', '.join(changed)} than this problem's: "
                         "start a new build folder")


def _budget_in_todays_form(budget: dict) -> dict:
    """A plan's budget with the augmentation options added since it was written at their defaults:
    a new option is off by default, as it was for the plan's trainings."""
    if budget.get("augment") is None:
        return budget
    defaults = json.loads(json.dumps(dataclasses.asdict(Augmentation())))
    return {**budget, "augment": {**defaults, **budget["augment"]}}


def build(folder: Path, plan: Plan, problem: AudioNASProblem, *, part: tuple[int, int] = (0, 1),
          max_seconds: float | None = None, log: Callable[[str], None] = print) -> int:
    """Train the plan's trainings of ``part`` that no shard of ``folder`` holds yet; the count trained.

    Trainings are submitted in batches of about four jobs per worker (a training of a problem with
    speaker folds is one job per fold), so a ``max_seconds`` stop (checked between batches) waits for
    at most one batch and a kill loses at most one batch.
    """
    check_data(plan, problem)
    finished = done(folder, plan)
    todo = [(item, seed) for item, seed in plan.trainings(part) if (item.index, seed) not in finished]
    log(f"{len(finished)} training(s) already in {folder}; {len(todo)} to go in part {part[0]}/{part[1]}")
    if not todo:
        return 0
    writer = ShardWriter(folder, plan, problem.device)
    started = time.perf_counter()
    batch = max(1, 4 * max(1, problem.runner.workers) // problem.folds)
    trained = 0
    try:
        for first in range(0, len(todo), batch):
            chunk = todo[first:first + batch]
            jobs = [dataclasses.replace(problem.job(Genome.from_json(item.genome), stopping=()),
                                        seed=run_seed(item.genome, problem.seed, seed)) for item, seed in chunk]
            for i, row, worker in problem.train_rows(jobs):
                writer.add(*chunk[i], row, worker)
                trained += 1
            elapsed = time.perf_counter() - started
            log(f"{trained}/{len(todo)} trained in {elapsed:.0f} s "
                f"({3600 * trained / elapsed:.0f} trainings/hour)")
            if max_seconds is not None and elapsed > max_seconds:
                log(f"stopping after {elapsed:.0f} s (max {max_seconds:.0f} s); run again to go on")
                break
    finally:
        writer.close()
    return trained


def run_seed(genome_key: str, problem_seed: int, seed: int) -> int:
    """Training seed of seed number ``seed`` of a genome (a function of genome and seeds only)."""
    return training_seed(Genome.from_json(genome_key), 7919 * problem_seed + seed)


# ---- merge ----------------------------------------------------------------------------------------
def merge(folders: Sequence[Path]) -> dict[str, Any]:
    """The table (``{"meta", "rows"}``) of one plan's shards, from one or several build folders.

    One row per planned architecture with at least one training: its costs, ``runs`` (one per seed:
    accuracy, curve, wall and CPU seconds, machine), and the seed mean as ``val_accuracy`` and
    ``curve``. A training found in two shards is kept once (the first read).
    """
    plans = [Plan.load(f) for f in folders]
    if len({p.identity for p in plans}) != 1:
        raise BuildError("the build folders hold different plans: merge shards of one plan only")
    plan = max(plans, key=lambda p: len(p.items))  # the most extended; shards are checked against it
    if any(p.items != plan.items[:len(p.items)] for p in plans):
        raise BuildError("the build folders' plans were extended differently: merge shards of one plan only")
    runs: dict[int, dict[int, dict[str, Any]]] = {}
    machines: list[dict[str, Any]] = []
    for folder in folders:
        for header, trainings in read_shards(folder, plan):
            host = {**header["machine"], "device": header["device"]}
            if host not in machines:
                machines.append(host)
            for t in trainings:
                runs.setdefault(t["item"], {}).setdefault(t["seed"], {**t, "machine": machines.index(host)})
    rows = []
    for item in plan.items:
        if item.index not in runs:
            continue
        item_runs = [runs[item.index][s] for s in sorted(runs[item.index])]
        rows.append(table_row(item, item_runs))
    meta = {**plan.meta, "plan_sha256": plan.digest, "plan_identity": plan.identity, "machines": machines,
            "planned_trainings": len(plan.trainings()), "trainings": sum(len(r) for r in runs.values()),
            "train_seconds": float(sum(t["seconds"] for r in runs.values() for t in r.values())),
            "merged": datetime.datetime.now(datetime.UTC).isoformat()}
    return {"meta": meta, "rows": rows}


def table_row(item: PlanItem, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """An architecture's table row from its runs (one per seed); failed when every run failed."""
    ok = [r for r in runs if not r["failed"]]
    epochs = min((r["epochs"] for r in ok), default=0)
    mean = (lambda key: float(np.mean([r[key] for r in ok]))) if ok else (lambda key: float("nan"))
    return {"kind": item.kind, "label": item.label, "genome": item.genome, **item.costs,
            "val_accuracy": mean("val_accuracy") if ok else 0.0,
            "curve": np.mean([r["curve"][:epochs] for r in ok], axis=0).tolist() if ok else [],
            "epochs": epochs, "seconds": mean("seconds"), "cpu_seconds": mean("cpu_seconds"),
            "failed": not ok, "failure_reason": None if ok else runs[0]["failure_reason"],
            "runs": [{k: r[k] for k in ("seed", "machine", *RUN_KEYS) if k in r} for r in runs]}


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Atomically (re)write a gzip JSON table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, gzip.compress(json.dumps(table, separators=(",", ":")).encode(), mtime=0))
