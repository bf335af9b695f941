"""Is a 2-D spectrogram fed to a wide first convolution the compute bottleneck?

Builds matched networks that differ only in the front end's representation (the log-mel as a
1-channel 2-D image, or mel bins as channels of a 1-D convolution over time) and in the width of
the first (stride-1, 3-wide) convolution; the body after it is the same depthwise-separable stack.
For each it reports MACs, the first layer's MACs, memory (int8 weights + peak arena), energy per
inference (the problem file's energy model, or a fitted forest with ``--energy-model``) and the
accuracy of a training run under the problem file's budget::

    python benchmarks/frontend_bottleneck.py --problem builtin --device cuda
    python benchmarks/frontend_bottleneck.py --quick            # 2 widths, 2 epochs, small data

Writes ``frontend_bottleneck-<problem>.md`` / ``.json`` / ``.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from moo_audio.costs import network_cost
from moo_audio.data import load_dataset
from moo_audio.evaluation import test_accuracy
from moo_audio.jobs import evaluation_row
from moo_audio.problem import cheap_values
from moo_audio.problem_files import load_problem
from moo_audio.space import Block, FrontEnd, Genome

WIDTHS = (8, 16, 32, 64, 128)
BODY = (Block("dsconv", 32, 3, 2), Block("dsconv", 64, 3, 2), Block("dsconv", 64, 3, 2))


def matched_genome(frontend: FrontEnd, representation: str, width: int, n_classes: int) -> Genome:
    """The shared body behind a ``width``-filter first convolution, on ``representation``."""
    fe = dataclasses.replace(frontend, representation=representation)
    return Genome(fe, (Block("conv", width, 3, 1), *BODY), n_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--energy-model", type=Path, help="a fitted forest (moo-audio energy fit)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--quick", action="store_true", help="2 widths, 2 epochs, 10 clips per class")
    args = parser.parse_args()

    spec = load_problem(args.problem)
    widths = (8, 64) if args.quick else WIDTHS
    if args.quick:
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, max_epochs=2))
        options = {**spec.dataset_options, "n_per_class": 10} if spec.dataset_name == "builtin" else None
        dataset = load_dataset("builtin", **options) if options else spec.load_dataset()
    else:
        dataset = spec.load_dataset()
    problem = spec.make_problem(dataset, device=args.device)
    if args.energy_model:
        from moo_audio.energy.forest import ForestEnergyModel

        problem.energy_model = ForestEnergyModel.load(args.energy_model)
    frontend = spec.baseline_frontend(dataset.sample_rate, dataset.clip_ms)

    cells = [(r, w, matched_genome(frontend, r, w, dataset.n_classes)) for r in ("2d", "1d") for w in widths]
    trained = [None] * len(cells)
    jobs = [dataclasses.replace(problem.job(g, stopping=()), keep_weights=True) for _, _, g in cells]
    for i, result, _ in problem.train(jobs):
        trained[i] = result
    rows = []
    for (representation, width, genome), result in zip(cells, trained):  # the test split, after all training
        cost = network_cost(genome)
        (c,) = cheap_values([genome], problem.energy_model)
        test = float("nan") if result.failed else test_accuracy(
            genome, result.weights, problem.feature_cache.get(dataset, genome.frontend))
        row = evaluation_row(result)
        rows.append({
            "representation": representation, "first_width": width, "macs": c.macs,
            "first_layer_macs": cost.layers[0].macs, "params": cost.params,
            "peak_arena_kb": cost.peak_activation_bytes("int8") / 1024, "memory_kb": c.memory_kb,
            "energy_mj": c.energy_mj, "val_accuracy": row["val_accuracy"], "test_accuracy": test,
            "train_seconds": row["seconds"], "failure_reason": row["failure_reason"]})
        print(json.dumps(rows[-1]), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"frontend_bottleneck-{spec.name}{'-quick' if args.quick else ''}"
    meta = {"problem": spec.name, "frontend": dataclasses.asdict(frontend), "budget":
            dataclasses.asdict(spec.budget), "energy_model": problem.energy_model.name,
            "body": [dataclasses.asdict(b) for b in BODY], "device": args.device}
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    stem.with_suffix(".md").write_text(markdown(rows, meta))
    plot(rows, stem.with_suffix(".png"), spec.name)
    print(markdown(rows, meta))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Problem `{meta['problem']}`, energy model {meta['energy_model']}, "
             f"{meta['budget']['max_epochs']} epochs, training device {meta['device']}.", "",
             "| input | first conv | MACs | first-layer MACs (share) | peak arena KB | memory KB | "
             "energy mJ | val acc | test acc |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['representation']} | {r['first_width']} | {r['macs'] / 1e6:.2f} M | "
            f"{r['first_layer_macs'] / 1e6:.2f} M ({r['first_layer_macs'] / r['macs']:.0%}) | "
            f"{r['peak_arena_kb']:.1f} | {r['memory_kb']:.1f} | {r['energy_mj']:.4f} | "
            f"{r['val_accuracy']:.3f} | {r['test_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, name: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for representation, marker in (("2d", "o"), ("1d", "s")):
        mine = [r for r in rows if r["representation"] == representation]
        widths = [r["first_width"] for r in mine]
        for ax, key in zip(axes, ("energy_mj", "memory_kb", "test_accuracy")):
            ax.plot(widths, [r[key] for r in mine], marker=marker, label=f"{representation} input")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("first convolution filters")
            ax.set_ylabel(key.replace("_", " "))
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].legend()
    fig.suptitle(f"2-D vs 1-D front end ({name})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
