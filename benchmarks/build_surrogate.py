"""Build the table behind ``SurrogateAudioNASProblem``: real trainings of sampled architectures.

Samples ``--n`` distinct architectures that meet the problem file's cheap constraints (scrambled Sobol
points over the unit-cube encoding, decoded and repaired), trains each for the file's whole budget
(no early stopping, so the full learning curve is kept and stopping rules can be replayed on it),
and also trains the MobileNetV1/V2 baselines at several widths under the same budget. Rows are
written as they complete (gzip JSON, rewritten every batch), so a killed run keeps what it trained::

    python benchmarks/build_surrogate.py --problem builtin --n 300 --workers 12 --device cuda \\
        --out moo_audio/tables/builtin.json.gz

``--quick`` trains 6 architectures for 2 epochs on a small built-in dataset (the smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import json
import os
import platform
import time
from pathlib import Path

import torch
from scipy.stats import qmc

from moo_audio.jobs import evaluation_row
from moo_audio.nets import WIDTHS
from moo_audio.parallel import make_runner
from moo_audio.problem import cheap_values
from moo_audio.problem_files import load_problem

BASELINE_WIDTHS = (0.25, 0.5, 0.75, 1.0)
ROW_KEYS = ("val_accuracy", "curve", "train_loss", "epochs", "seconds", "stop_reason",
            "failed", "failure_reason")


def sample_feasible(problem, n: int, seed: int) -> list:
    """``n`` distinct genomes meeting the problem's cheap constraints, from a scrambled Sobol stream."""
    sobol = qmc.Sobol(problem.space.n_var, scramble=True, seed=seed)
    genomes, keys = [], set()
    for _ in range(64):
        batch = problem.space.from_x(sobol.random(256))
        for genome, c in zip(batch, cheap_values(batch, problem.energy_model)):
            key = genome.key
            violations = problem.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs)
            if key in keys or any(v > 0 for v in violations.values()):
                continue
            keys.add(key)
            genomes.append(genome)
            if len(genomes) == n:
                return genomes
    raise RuntimeError(f"found only {len(genomes)} feasible architectures in 16384 Sobol points")


def space_options(space) -> dict:
    """The search space's constructor arguments (JSON-ready), so the table can rebuild it."""
    return {f.name: getattr(space, f.name) for f in dataclasses.fields(space) if f.init}


def describe(problem, genome, kind: str) -> dict:
    (c,) = cheap_values([genome], problem.energy_model)
    return {"kind": kind, "genome": genome.key, **vars(c)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="builtin", help="problem name or file")
    parser.add_argument("--n", type=int, default=300, help="sampled architectures to train")
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument("--device", default="cpu", help="torch device of the training processes")
    parser.add_argument("--seed", type=int, default=0, help="Sobol seed")
    parser.add_argument("--out", type=Path, required=True, help="table file (.json.gz)")
    parser.add_argument("--quick", action="store_true", help="6 architectures, 2 epochs, small data")
    args = parser.parse_args()

    spec = load_problem(args.problem)
    spec = dataclasses.replace(spec, stopping=())  # full curves: stopping rules are replayed later
    dataset_options = {}
    if args.quick:
        args.n = 6
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
        if spec.dataset_name == "builtin":
            dataset_options = {"n_per_class": 10}
    dataset = spec.load_dataset() if not dataset_options else _small_builtin(spec, dataset_options)
    runner = make_runner(args.workers)
    problem = spec.make_problem(dataset, device=args.device, runner=runner)

    samples = sample_feasible(problem, args.n, args.seed)
    baselines = [] if args.quick else [
        (f"{model} x{width}", _baseline(problem, spec, model, width))
        for model in ("mobilenet_v1", "mobilenet_v2") for width in BASELINE_WIDTHS if width in WIDTHS]
    # baselines first: a run cut short keeps them
    todo = [{**describe(problem, g, "baseline"), "label": label} for label, g in baselines]
    todo += [describe(problem, g, "sample") for g in samples]
    genomes = [g for _, g in baselines] + samples

    meta = {
        "problem": spec.name, "problem_sha256": spec.sha256, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint, "budget": dataclasses.asdict(spec.budget),
        "constraints": dataclasses.asdict(spec.constraints), "energy_model": problem.energy_model.name,
        "space": space_options(problem.space),
        "n_samples": len(samples), "sampling": f"scrambled Sobol over the encoding, seed {args.seed}",
        "device": args.device, "torch": torch.__version__, "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "created": datetime.datetime.now(datetime.UTC).isoformat(),
        "quick": args.quick,
    }
    rows: list[dict] = []
    started = time.perf_counter()
    batch = max(1, 4 * args.workers)
    for first in range(0, len(genomes), batch):
        jobs = [problem.job(g) for g in genomes[first:first + batch]]
        for i, result, _ in sorted(problem.train(jobs), key=lambda r: r[0]):
            row = evaluation_row(result)
            rows.append({**todo[first + i], **{k: row[k] for k in ROW_KEYS}})
        meta["wall_s"] = time.perf_counter() - started
        write_table(args.out, meta, rows)
        done = [r for r in rows if not r["failed"]]
        print(f"{len(rows)}/{len(genomes)} trained in {meta['wall_s']:.0f} s; "
              f"best val accuracy {max((r['val_accuracy'] for r in done), default=float('nan')):.3f}",
              flush=True)
    runner.close()
    print(f"wrote {args.out}: {len(rows)} rows, {sum(r['failed'] for r in rows)} failed")


def _small_builtin(spec, options):
    from moo_audio.data import load_dataset

    return load_dataset("builtin", **{**spec.dataset_options, **options})


def _baseline(problem, spec, model: str, width: float):
    from moo_audio.nets import baseline

    fe = spec.baseline_frontend(problem.space.sample_rate, problem.space.clip_ms[0])
    return baseline(model, width, fe, problem.space.n_classes)


def write_table(path: Path, meta: dict, rows: list[dict]) -> None:
    """Atomically (re)write the gzip JSON table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump({"meta": meta, "rows": rows}, f, separators=(",", ":"))
    tmp.replace(path)


if __name__ == "__main__":
    main()
