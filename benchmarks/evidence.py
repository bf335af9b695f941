"""A search and its held-out evaluation on a problem: the evidence table of docs/benchmarks.md.

1. ``moo-audio search`` on the problem (``--budget`` evaluations, the file's algorithm);
2. ``moo-audio evaluate`` on the run: the Pareto models chosen on validation and the problem file's
   baselines retrained alike (learning-rate grid, seeds, 3x the search's epochs), the test split read
   once at the end, energy measured on this host beside the energy model's prediction.

The run folder is ``--out/evidence-<problem>/run`` (a killed script resumes both steps); the
evaluation's table and results are copied to ``benchmarks/results/evidence-<problem>.{md,json}``.

    python benchmarks/evidence.py --problem speech_commands_12 --budget 40
    python benchmarks/evidence.py --problem fsdd --budget 40
    python benchmarks/evidence.py --quick            # the built-in data, tiny budgets: a smoke test
    python benchmarks/evidence.py --problem fsdd --remeasure   # measure a stored result's models again

``--remeasure`` measures the models of a stored ``evidence-<problem>.json`` again, in this fresh
process, beside the energy measured at the end of the evaluation and the prediction, and (packaged
energy model) the prediction at the host's speed now, from calibration networks measured alongside.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from moo_audio.evaluation import baseline_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="builtin")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-models", type=int, default=4)
    parser.add_argument("--baselines", type=baseline_names,
                        help="comma-separated model names of the problem file's baselines (default: all of them)")
    parser.add_argument("--quick", action="store_true", help="built-in problem file, tiny data and budgets")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--remeasure", action="store_true", help="measure a stored result's models again")
    args = parser.parse_args()
    if args.remeasure:
        quick = " --quick" if args.quick else ""
        remeasure(args.results / f"evidence-{args.problem}{quick.replace(' --', '-')}",
                  f"python benchmarks/evidence.py --problem {args.problem}{quick} --remeasure", args.quick)
        return

    from moo_audio.evaluation import Protocol, evaluate_run
    from moo_audio.problem_files import load_problem
    from moo_audio.search import Search, Settings
    from moo_audio.store import DB_NAME

    spec = load_problem(args.problem)
    protocol = Protocol(seeds=args.seeds, max_models=args.max_models, baselines=args.baselines)
    if args.quick:
        text = spec.text.replace("n_per_class = 100", "n_per_class = 8")
        quick = args.out / "evidence-quick.toml"
        quick.parent.mkdir(parents=True, exist_ok=True)
        quick.write_text(text)
        spec = dataclasses.replace(load_problem(quick), budget=dataclasses.replace(spec.budget, max_epochs=2))
        args.budget, protocol = 4, Protocol(seeds=2, epochs_factor=1, lrs=(3e-3,), max_models=2)
    run = args.out / f"evidence-{spec.name}{'-quick' if args.quick else ''}" / "run"
    if (run / DB_NAME).exists() and not args.quick:
        # resumed or extended as `moo-audio search --resume` does: with the problem file as the run began
        search = Search.from_options(out=run, budget=args.budget, workers=args.workers, resume=True)
        if search.spec.sha256 != spec.sha256:
            print(f"{spec.path} has changed since {run} began: going on with the file as it was then", flush=True)
    else:
        search = Search(run, spec, Settings.resolve(spec, budget=args.budget), resume=(run / DB_NAME).exists(),
                        workers=args.workers)
    spec, settings = search.spec, search.settings
    search.run()
    sessions = search.store.sessions()
    search_s = search.store.search_seconds()  # every session of the run, not this invocation's replay
    out = evaluate_run(run, protocol, workers=args.workers, measure=True, log=lambda line: print(line, flush=True))
    stem = args.results / f"evidence-{spec.name}{'-quick' if args.quick else ''}"
    args.results.mkdir(parents=True, exist_ok=True)
    shutil.copy(run.parent / "run" / "evaluation" / "report.md", stem.with_suffix(".md"))
    header = (f"`python benchmarks/evidence.py --problem {args.problem} --budget {args.budget} --workers "
              f"{args.workers} --seeds {args.seeds} --max-models {args.max_models}"
              f"{' --baselines ' + ','.join(args.baselines) if args.baselines else ''}"
              f"{' --quick' if args.quick else ''}`"
              f" on {platform.machine()} with {os.cpu_count()} CPUs: search {search_s / 60:.0f} min in "
              f"{len(sessions)} session(s) ({settings.algorithm}, {settings.budget} evaluations), evaluation "
              f"{out['trainings']['used']} trainings, {out['trainings']['seconds'] / 60:.0f} min summed over the "
              f"workers ({out['trainings']['reused']} of them reused from an earlier evaluation of the run).\n\n")
    stem.with_suffix(".md").write_text(header + stem.with_suffix(".md").read_text())
    stem.with_suffix(".json").write_text(json.dumps({**out, "search_seconds": search_s,
                                                     "settings": dataclasses.asdict(settings)}, indent=1, default=str))
    print(f"wrote {stem}.md, .json")


def remeasure(stem: Path, command: str, quick: bool = False) -> None:
    """Measure the models of ``stem.json`` again in this process; the comparison goes to both files.

    When the result's energy model is the packaged forest, the calibration networks
    (:mod:`moo_audio.energy.calibration`) are measured in the same passes, and the predictions are also
    given at the host's speed now."""
    import numpy as np

    from moo_audio.energy.calibration import QUICK_WIDTHS, measure_calibrated
    from moo_audio.energy.packaged import DEFAULT_MODEL, load_packaged
    from moo_audio.energy.profiles import load_profile
    from moo_audio.energy.records import genome_id
    from moo_audio.nets import WIDTHS
    from moo_audio.space import Genome

    out = json.loads(stem.with_suffix(".json").read_text())
    genomes = [Genome.from_json(m["genome"]) for m in out["models"]]
    # the result keeps the energy model's name: calibrate against the packaged forest it names
    packaged = out["energy_model"].startswith(f"packaged {DEFAULT_MODEL}:")
    records, speed = measure_calibrated(genomes, load_packaged(DEFAULT_MODEL) if packaged else None,
                                        load_profile("host-cpu-core"), widths=QUICK_WIDTHS if quick else WIDTHS)
    keys = [genome_id(g) for g in genomes]
    lines = ["", f"Measured again in a fresh process (`{command}`, 1-minute load average {os.getloadavg()[0]:.2f}"
             + (f"; {speed}" if speed else "") + "):", "",
             "| model | predicted mJ | measured at the evaluation's end | measured again |"
             + (" predicted at the host's speed now |" if speed else ""),
             "|---|---|---|---|" + ("---|" if speed else "")]
    for m, key in zip(out["models"], keys):
        m["remeasured_energy_mj"] = records[key].energy_mj
        before = "-" if m.get("measured_energy_mj") is None else f"{m['measured_energy_mj']:.4g}"
        lines.append(f"| {m['group']}: {m['label']} | {m['energy_mj']:.4g} | {before} | {records[key].energy_mj:.4g} |"
                     + (f" {m['energy_mj'] * speed.factor:.4g} |" if speed else ""))
    again = np.array([m["remeasured_energy_mj"] for m in out["models"]])
    predicted = np.array([m["energy_mj"] for m in out["models"]])
    summary = f"median |again / predicted - 1|: {np.median(np.abs(again / predicted - 1)):.1%}"
    if speed:
        out["remeasured_host_speed"] = dataclasses.asdict(speed)
        summary += f"; at the host's speed now: {speed.median_error(again, predicted):.1%}"
    lines += ["", summary + "."]
    print("\n".join(lines))
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    table = stem.with_suffix(".md").read_text().rstrip("\n")
    stem.with_suffix(".md").write_text(table + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
