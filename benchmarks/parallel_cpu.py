"""CPU per evaluation: training candidates on Dask workers against single-threaded training in this
process, measured in one run (issue 13: parallel evaluation should cost at most 10% more CPU).

The same seeded sample of architectures of a problem file is trained by each variant:

* ``in-process``: :class:`moo_audio.parallel.InProcessRunner`, one torch thread (the problem's);
* ``dask, 1 worker``: one Dask worker, nothing beside it: what Dask itself costs;
* ``processes, no Dask``: ``--workers`` plain processes (``concurrent.futures``) training the jobs at
  once: what running trainings side by side costs on this machine, without Dask;
* ``dask``: :meth:`moo_audio.parallel.DaskRunner.local` with ``--workers`` processes, as
  ``moo-audio search --workers N`` runs them;
* ``dask, nanny malloc trim`` (``--with-trim``): ``dask`` with Dask's default
  ``MALLOC_TRIM_THRESHOLD_=65536`` left in the workers' environment.

Every worker process first trains the smallest network of the sample for one epoch (imports,
allocator and kernel warm-up; in-process too): its wall time is reported as the start-up, apart;
then the sample is timed. CPU is user
and system seconds of every process involved (this one and the workers, read from
``/proc/<pid>/stat``), divided by the evaluations. Variants run in turn, ``--repeats`` times.

    python benchmarks/parallel_cpu.py --with-trim     # 12 architectures of the built-in problem, 2 workers
    python benchmarks/parallel_cpu.py --quick         # 4 small ones, a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
VARIANTS = ("in-process", "dask, 1 worker", "processes, no Dask", "dask")
TRIM = "dask, nanny malloc trim"


def _cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class _Pool:
    """Plain processes training jobs (the no-Dask peer), with the ``run`` of a moo_audio runner."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self.workers = workers

    def run(self, jobs, features, on_epoch=None):
        from moo_audio.jobs import train_job

        for i, result in enumerate(self.pool.map(train_job, jobs, features)):
            yield i, result, ""

    def pids(self) -> list[int]:
        return list(self.pool._processes)

    def close(self) -> None:
        self.pool.shutdown()


def _pids(runner) -> list[int]:
    """This process and the runner's worker processes."""
    from moo_audio.parallel import DaskRunner

    if isinstance(runner, DaskRunner):
        return [os.getpid(), *runner.client.run(os.getpid).values()]
    return [os.getpid(), *(runner.pids() if isinstance(runner, _Pool) else [])]


def _timed(problem, genomes, pids: list[int]) -> dict:
    before = {pid: _cpu(pid) for pid in pids}
    started, failed = time.perf_counter(), 0
    for _, result, _ in problem.train([problem.job(g) for g in genomes]):
        failed += result.failed
    wall = time.perf_counter() - started
    after = {pid: _cpu(pid) for pid in pids}
    return {"wall_s": wall, "user_s": sum(after[p][0] - before[p][0] for p in pids),
            "system_s": sum(after[p][1] - before[p][1] for p in pids), "failed": failed}


def warm_up(problem, genome, runner) -> float:
    """Wall seconds of one 1-epoch job per worker of ``runner`` (imports, allocator, kernels)."""
    problem.runner = runner
    started = time.perf_counter()
    list(problem.train([problem.job(genome)] * runner.workers))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="builtin")
    parser.add_argument("--n", type=int, default=12, help="architectures trained by each variant")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--with-trim", action="store_true", help="also run Dask with its malloc trim")
    parser.add_argument("--quick", action="store_true", help="4 architectures, 2 epochs, small data, 1 repeat")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import dask

    from moo_audio.data import load_dataset
    from moo_audio.parallel import DaskRunner, InProcessRunner
    from moo_audio.problem_files import load_problem

    spec = dataclasses.replace(load_problem(args.problem), stopping=())  # every epoch of the budget
    dataset = None
    if args.quick:
        args.n, args.repeats = 4, 1
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
        dataset = load_dataset("builtin", **{**spec.dataset_options, "n_per_class": 10}) \
            if spec.dataset_name == "builtin" else None
    problem = spec.make_problem(dataset)
    genomes = _feasible(problem, args.n)
    smallest = min(genomes, key=lambda g: problem.cheap_values([g])[0].macs)
    one_epoch = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=1)).make_problem(
        problem.dataset)

    def make(variant: str):
        if variant == "in-process":
            return InProcessRunner()
        if variant == "processes, no Dask":
            return _Pool(args.workers)
        if variant != TRIM:
            return DaskRunner.local(1 if variant == "dask, 1 worker" else args.workers)
        from distributed import Client, LocalCluster

        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 65536}):
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # the nanny leaves it in this process's environment
        return DaskRunner(Client(cluster), owns_cluster=True)

    variants = [*VARIANTS, *([TRIM] if args.with_trim else [])]
    runs = []
    for repeat in range(args.repeats):
        for variant in variants:
            runner = make(variant)
            try:
                row = {"variant": variant, "repeat": repeat, "startup_wall_s": warm_up(one_epoch, smallest, runner)}
                problem.runner = runner
                row.update(_timed(problem, genomes, _pids(runner)))
            finally:
                runner.close()
            row["cpu_per_evaluation_s"] = (row["user_s"] + row["system_s"]) / len(genomes)
            print(json.dumps(row), flush=True)
            runs.append(row)

    keys = ("startup_wall_s", "wall_s", "user_s", "system_s", "cpu_per_evaluation_s")
    summary = {v: {k: sum(r[k] for r in runs if r["variant"] == v) / args.repeats for k in keys} for v in variants}
    base = summary["in-process"]["cpu_per_evaluation_s"]
    side_by_side = summary["processes, no Dask"]["cpu_per_evaluation_s"]
    lines = ["| variant | start-up wall s | wall s | user s | system s | CPU s per evaluation | "
             "vs in-process | vs processes, no Dask |", "|---|---|---|---|---|---|---|---|"]
    for variant, s in summary.items():
        lines.append(f"| {variant} | {s['startup_wall_s']:.1f} | {s['wall_s']:.1f} | "
                     f"{s['user_s']:.1f} | {s['system_s']:.1f} | {s['cpu_per_evaluation_s']:.2f} | "
                     f"{s['cpu_per_evaluation_s'] / base:.3f} | {s['cpu_per_evaluation_s'] / side_by_side:.3f} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"parallel_cpu{'-quick' if args.quick else ''}"
    settings = {"problem": spec.name, "n": len(genomes), "workers": args.workers, "repeats": args.repeats,
                "cpu_count": os.cpu_count(), "max_epochs": spec.budget.max_epochs}
    stem.with_suffix(".json").write_text(json.dumps({"settings": settings, "runs": runs, "summary": summary},
                                                    indent=1))
    flags = " --quick" if args.quick else (" --with-trim" if args.with_trim else "")
    stem.with_suffix(".md").write_text(f"`python benchmarks/parallel_cpu.py{flags}` ({settings})\n\n{table}\n")
    print(f"wrote {stem}.json, .md")


def _feasible(problem, n: int) -> list:
    """``n`` seeded architectures of the space that meet the cheap constraints."""
    genomes = problem.space.sample(20 * n, seed=0)
    costs = problem.cheap_values(genomes)
    ok = [not any(v > 0 for v in problem.constraints.cheap_violations(c.energy_mj, c.memory_kb, c.macs).values())
          for c in costs]
    return [g for g, keep in zip(genomes, ok) if keep][:n]


if __name__ == "__main__":
    main()
