"""``moo-audio report RUN``: an HTML page and PNG figures of a run, from its store alone.

Figures (matplotlib, Agg backend), in ``RUN/report/``:

* ``pareto.png``: the three pairwise projections of error, energy and memory: every evaluation, the
  Pareto set (of the three objectives), the knee and the least-energy model, and the MobileNet
  baselines of the problem file;
* ``hypervolume.png``: hypervolume of the evaluations so far, in the order the optimizer asked for
  them (:func:`moo_audio.objectives.hypervolume_curve`, on the scale of the run's own feasible
  evaluations);
* ``layers.png``: per-layer MACs and memory (int8 weights, activation arena while the layer runs) of
  the knee, the least-energy model and the first baseline;
* ``curves.png``: validation-accuracy learning curves, and the epochs each candidate trained.

Baselines get their energy, memory and MACs from the problem's own energy model and cost model. Their
error comes from training them under the problem's budget, stopping rules and seed (with no curve
history, so the median and halving rules never fire for them); the result is cached in the store
(``baselines`` table), so a report is reproducible and trains each baseline once.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moo_audio.costs import DEFAULT_DTYPE, network_cost
from moo_audio.objectives import OBJECTIVES, HypervolumeScale, hypervolume_curve
from moo_audio.problem import Costs, cheap_values
from moo_audio.search import stored_problem
from moo_audio.selection import knee, pareto
from moo_audio.space import Genome
from moo_audio.store import Evaluation, RunError, RunStore


@dataclass(frozen=True)
class BaselineResult(Costs):
    """A baseline's costs (exact) and, when trained, its accuracies and curve."""

    label: str
    genome: Genome
    val_accuracy: float | None = None
    curve: tuple[float, ...] = ()

    @property
    def error(self) -> float | None:
        return None if self.val_accuracy is None else 1.0 - self.val_accuracy


def _baseline_key(genome: Genome, meta: dict[str, Any], spec) -> str:
    blob = json.dumps({"genome": genome.key, "budget": asdict(spec.budget),
                       "stopping": list(spec.stopping), "seed": meta["seed"],
                       "dataset": meta["dataset"]["fingerprint"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def baselines(store: RunStore, train: bool = True, log: Callable[[str], None] = print) -> list[BaselineResult]:
    """The problem file's baselines with exact costs and, trained now or read from the store, errors.

    Untrained baselines are trained on the problem file's workers (a local Dask cluster when
    ``[search] workers > 1``), each on the problem's torch threads.
    """
    meta = store.meta()
    spec = stored_problem(meta)
    data = meta["dataset"]
    genomes = spec.baseline_genomes(data["sample_rate"], data["n_classes"], data["clip_ms"])
    if not genomes:
        return []
    costs = cheap_values(list(genomes.values()), spec.energy_model())
    keys = {label: _baseline_key(genome, meta, spec) for label, genome in genomes.items()}
    rows = {label: store.baseline(key) for label, key in keys.items()}
    todo = [label for label, row in rows.items() if row is None]
    if train and todo:
        rows.update(_train_baselines(store, spec, meta, {label: genomes[label] for label in todo},
                                     {label: keys[label] for label in todo}, log))
    out = []
    for c, (label, genome) in zip(costs, genomes.items()):
        row = rows[label]
        trained = row is not None and not row["failed"]
        out.append(BaselineResult(
            **vars(c), label=label, genome=genome,
            val_accuracy=row["val_accuracy"] if trained else None,
            curve=tuple(row["curve"]) if trained else ()))
    return out


def _train_baselines(store: RunStore, spec, meta: dict[str, Any], genomes: dict[str, Genome],
                     keys: dict[str, str], log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Train baselines under the run's budget, rules and seed (no curve history); store the rows."""
    from moo_audio.jobs import evaluation_row
    from moo_audio.parallel import make_runner
    from moo_audio.training import CurveHistory

    runner = make_runner(min(spec.search.workers, len(genomes)))
    try:
        problem = spec.make_problem(seed=meta["seed"], runner=runner)
        jobs = [problem.job(genome, history=CurveHistory()) for genome in genomes.values()]
        log(f"training {len(jobs)} baseline(s) under the run's budget ({', '.join(genomes)}) "
            f"on {runner.workers} worker(s) ...")
        started = time.perf_counter()
        rows = {}
        labels = list(genomes)
        for i, result, _ in problem.train(jobs):
            label = labels[i]
            rows[label] = evaluation_row(result)
            store.put_baseline(keys[label], label, genomes[label], rows[label])
            log(f"  {label}: validation accuracy {rows[label]['val_accuracy']:.3f} ({result.epochs} epochs, "
                f"{result.seconds:.0f} s)")
    finally:
        runner.close()
    log(f"  baselines trained in {time.perf_counter() - started:.0f} s; cached in {store.path}")
    return rows


# ---- figures ------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_PAIRS = ((1, 0), (2, 0), (1, 2))  # (x, y) objective indices of the projections
_MARKERS = ("s", "^", "D", "v", "P", "X")


def _front_2d(points: np.ndarray) -> np.ndarray:
    """The 2-D non-dominated staircase of ``points`` (both minimised), sorted by x."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    best, keep = math.inf, []
    for i in order:
        if points[i, 1] < best:
            best = points[i, 1]
            keep.append(i)
    return points[keep]


def plot_pareto(evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
                picks: dict[str, Evaluation], base: Sequence[BaselineResult], path: Path) -> Path:
    plt = _pyplot()
    from matplotlib import ticker

    feasible = [e for e in evaluations if e.feasible]
    other = [e for e in evaluations if not e.feasible]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4))
    F = np.array([e.objectives for e in feasible]).reshape(-1, 3)
    P = np.array([e.objectives for e in front]).reshape(-1, 3)
    for ax, (x, y) in zip(axes, _PAIRS):
        ax.scatter(F[:, x], F[:, y], s=18, c="0.7", label=f"evaluated ({len(feasible)})", zorder=1)
        if other and y != 0:  # untrained or failed models have no meaningful error
            O = np.array([e.objectives for e in other])
            ax.scatter(O[:, x], O[:, y], s=18, marker="x", c="0.55",
                       label=f"failed or breaking a constraint ({len(other)})", zorder=1)
        if len(P):
            ax.scatter(P[:, x], P[:, y], s=40, c="tab:red", edgecolor="k", linewidth=0.5,
                       label=f"Pareto set, 3 objectives ({len(P)})", zorder=3)
            stair = _front_2d(np.column_stack([F[:, x], F[:, y]]))
            ax.step(stair[:, 0], stair[:, 1], where="post", c="tab:red", alpha=0.5, lw=1,
                    label="2-D front of this projection", zorder=2)
        for (name, e), marker in zip(picks.items(), ("*", "P")):
            ax.scatter(e.objectives[x], e.objectives[y], s=260, marker=marker, c="gold",
                       edgecolor="k", label=f"{name} {e.genome_id}", zorder=4)
        for b, marker in zip(base, _MARKERS):
            values = (b.error, b.energy_mj, b.memory_kb)
            if values[x] is None or values[y] is None:
                continue
            ax.scatter(values[x], values[y], s=90, marker=marker, c="tab:blue", edgecolor="k",
                       label=b.label if b.error is not None else f"{b.label} (error not trained)", zorder=4)
            ax.annotate(b.label, (values[x], values[y]), textcoords="offset points", xytext=(6, 4),
                        fontsize=8, color="tab:blue")
        ax.set_xlabel(OBJECTIVES[x].label)
        ax.set_ylabel(OBJECTIVES[y].label)
        for axis, index in (("x", x), ("y", y)):
            if index != 0:  # energy and memory span decades: log scale, labelled as plain numbers
                getattr(ax, f"set_{axis}scale")("log")
                axis_obj = getattr(ax, f"{axis}axis")
                axis_obj.set_major_formatter(ticker.LogFormatter())
                axis_obj.set_minor_formatter(ticker.LogFormatter(minor_thresholds=(1.5, 0.5)))
        ax.grid(True, which="both", alpha=0.25)
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Pareto set: pairwise projections (all objectives minimised)")
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_hypervolume(evaluations: Sequence[Evaluation]) -> np.ndarray:
    """The hypervolume curve of a run, on the scale of its own feasible evaluations."""
    F = np.array([e.objectives for e in evaluations]).reshape(-1, len(OBJECTIVES))
    ok = np.array([e.feasible for e in evaluations], dtype=bool)
    if not ok.any():
        return np.zeros(len(evaluations))
    return hypervolume_curve(F, ok, HypervolumeScale.around(F[ok]))


def plot_hypervolume(evaluations: Sequence[Evaluation], path: Path) -> Path:
    plt = _pyplot()
    hv = run_hypervolume(evaluations)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(np.arange(1, len(hv) + 1), hv, where="post", c="tab:red", lw=2)
    batches = [i for i in range(1, len(evaluations)) if evaluations[i].batch != evaluations[i - 1].batch]
    for i in batches:
        ax.axvline(i + 0.5, c="0.85", lw=0.8, zorder=0)
    ax.set_xlabel("evaluations, in the order the optimizer asked for them (grey: batch boundaries)")
    ax.set_ylabel("hypervolume (normalised objectives)")
    ax.set_title(f"Hypervolume over evaluations: final {hv[-1]:.3f}\n(error, log energy, log memory, "
                 "on the scale of the run's feasible evaluations)", fontsize=10)
    ax.set_xlim(0.5, len(hv) + 0.5)
    ax.set_ylim(0, max(hv.max() * 1.1, 1e-3))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layers(models: dict[str, Genome], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(models), figsize=(6 * len(models), 7.5), squeeze=False)
    for column, (name, genome) in enumerate(models.items()):
        cost = network_cost(genome)
        layers = [c for c in cost.layers if c.macs or c.weights or c.live_elements]
        x = np.arange(len(layers))
        names = [c.layer.name for c in layers]
        mac_ax, mem_ax = axes[0, column], axes[1, column]
        mac_ax.bar(x, [c.macs / 1e3 for c in layers], color="tab:purple")
        mac_ax.set_title(f"{name}\n{cost.macs / 1e6:.3g} M MACs, {cost.memory_bytes('int8') / 1024:.1f} KB "
                         f"({cost.weight_bytes('int8') / 1024:.1f} weights + "
                         f"{cost.peak_activation_bytes('int8') / 1024:.1f} arena)", fontsize=9)
        mac_ax.set_ylabel("MACs per layer (thousands)")
        mem_ax.bar(x - 0.2, [c.weight_bytes(DEFAULT_DTYPE) / 1024 for c in layers], 0.4, label="weights (int8)",
                   color="tab:green")
        mem_ax.bar(x + 0.2, [c.live_bytes(DEFAULT_DTYPE) / 1024 for c in layers], 0.4,
                   label="activation arena while it runs", color="tab:orange")
        mem_ax.axhline(cost.peak_activation_bytes(DEFAULT_DTYPE) / 1024, c="tab:orange", ls="--", lw=0.8,
                       label="peak arena")
        mem_ax.set_ylabel("memory per layer (KB)")
        mem_ax.legend(fontsize=8)
        for ax in (mac_ax, mem_ax):
            ax.set_xticks(x)
            ax.set_xticklabels(names, rotation=90, fontsize=6 if len(layers) > 20 else 8)
            ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Per-layer MACs and memory of chosen models and a baseline (int8 deployment; "
                 "each panel has its own scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(evaluations: Sequence[Evaluation], front: Sequence[Evaluation],
                picks: dict[str, Evaluation], base: Sequence[BaselineResult], path: Path) -> Path:
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    trained = [e for e in evaluations if e.curve]
    on_front = {e.genome_id for e in front}
    for e in trained:
        if e.genome_id not in on_front:
            ax.plot(range(1, len(e.curve) + 1), e.curve, c="0.75", lw=0.8, alpha=0.7)
    for e in front:
        ax.plot(range(1, len(e.curve) + 1), e.curve, c="tab:red", lw=1.2, alpha=0.8)
    for (name, e), colour in zip(picks.items(), ("k", "tab:purple")):
        ax.plot(range(1, len(e.curve) + 1), e.curve, c=colour, lw=2.4, label=f"{name} {e.genome_id}")
    for b, style in zip(base, (":", "--", "-.")):
        if b.curve:
            ax.plot(range(1, len(b.curve) + 1), b.curve, c="tab:blue", lw=1.8, ls=style, label=b.label)
    ax.plot([], [], c="0.75", label="other candidates")
    ax.plot([], [], c="tab:red", label="Pareto set")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Learning curves (early-stopped candidates end early)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    reasons = sorted({e.stop_reason for e in evaluations})
    colors = dict(zip(reasons, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                                "tab:brown", "tab:gray")))
    for reason in reasons:
        idx = [i for i, e in enumerate(evaluations) if e.stop_reason == reason]
        ax2.scatter(np.array(idx) + 1, [evaluations[i].epochs for i in idx], s=22, c=colors[reason],
                    label=f"{reason} ({len(idx)})")
    ax2.set_xlabel("evaluation (request order)")
    ax2.set_ylabel("epochs trained")
    ax2.set_title("Why each candidate stopped")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- the page -----------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _frontend_text(genome: Genome) -> str:
    fe = genome.frontend
    return (f"{fe.n_mels} mel bins, {fe.win_ms} ms window, {fe.hop_ms} ms hop, "
            f"input {'x'.join(map(str, fe.input_shape))}")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "not trained" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def write_report(run: str | Path, train_baselines: bool = True,
                 log: Callable[[str], None] = print) -> Path:
    """Write ``RUN/report/index.html`` and its figures; the path of the page."""
    store = RunStore.open(run)
    meta = store.meta()
    evaluations = store.evaluations()
    if not evaluations:
        raise RunError(f"{run} has no evaluations yet")
    out = Path(run) / "report"
    out.mkdir(exist_ok=True)
    base = baselines(store, train=train_baselines, log=log)
    front = pareto(evaluations)
    picks: dict[str, Evaluation] = {}
    if front:
        picks = {"knee": knee(front), "least energy": min(front, key=lambda e: (e.energy_mj, e.error))}
    figures = [plot_pareto(evaluations, front, picks, base, out / "pareto.png"),
               plot_hypervolume(evaluations, out / "hypervolume.png"),
               plot_curves(evaluations, front, picks, base, out / "curves.png")]
    if picks:
        models = {f"{name} {e.genome_id}": e.genome for name, e in picks.items()}
        if base:
            models[f"baseline {base[0].label}"] = base[0].genome
        figures.insert(2, plot_layers(models, out / "layers.png"))

    sessions = store.sessions()
    failed = sum(e.failed and e.stop_reason != "skipped" for e in evaluations)
    skipped = sum(e.stop_reason == "skipped" for e in evaluations)
    summary = [
        ("problem", f"{meta['problem']['name']} ({meta['problem']['path']}, sha256 "
                    f"{meta['problem']['sha256'][:12]})"),
        ("dataset", f"{meta['dataset']['name']}: {meta['dataset']['n_classes']} classes, splits "
                    f"{meta['dataset']['splits']}, fingerprint {meta['dataset']['fingerprint'][:12]}"),
        ("algorithm", f"{meta['algorithm']} {json.dumps(meta['algorithm_options'])}, seed {meta['seed']}"),
        ("evaluations", f"{len(evaluations)} of a budget of {meta['budget']} ({meta['status']}); "
                        f"{failed} failed, {skipped} not trained (constraint known before training)"),
        ("time", f"{store.search_seconds() / 60:.1f} min over {len(sessions)} session(s); "
                 f"{sum(e.train_seconds for e in evaluations) / 60:.1f} min of training"),
        ("energy model", meta["energy_model"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in meta["versions"].items())),
    ]
    pareto_rows = [(e.genome_id, f"{e.error:.3f}", f"{e.energy_mj:.4g}", f"{e.memory_kb:.1f}",
                    f"{e.macs / 1e6:.3g}", f"{e.params:,.0f}", f"{e.val_accuracy:.3f}",
                    e.epochs, e.stop_reason) for e in front]
    base_rows = [(b.label, _fmt(b.error), f"{b.energy_mj:.4g}", f"{b.memory_kb:.1f}",
                  f"{b.macs / 1e6:.3g}", f"{b.params:,.0f}", _fmt(b.val_accuracy)) for b in base]
    picks_html = "".join(
        f"<h3>{html.escape(name)}: {e.genome_id}</h3><p>error {e.error:.3f}, {e.energy_mj:.4g} mJ, "
        f"{e.memory_kb:.1f} KB, {e.macs / 1e6:.3g} M MACs. Export it with "
        f"<code>moo-audio export {html.escape(str(run))} --pick {e.genome_id}</code>.</p>"
        "<details><summary>genome and per-layer costs</summary>"
        f"<pre>{html.escape(json.dumps(e.genome.to_dict(), indent=1))}"
        f"\n\n{html.escape(network_cost(e.genome).table('int8'))}</pre></details>"
        for name, e in picks.items())
    images = "".join(f'<figure><img src="{p.name}" alt="{p.stem}"></figure>' for p in figures)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>moo_audio run {html.escape(Path(run).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child {{ text-align: left; font-family: monospace; }}
img {{ max-width: 100%; border: 1px solid #eee; }} pre {{ font-size: 0.8em; overflow-x: auto; }}
</style></head><body>
<h1>Run {html.escape(str(run))}</h1>
{_table(("", ""), summary)}
<h2>Pareto set ({len(front)} models)</h2>
<p>error = 1 - validation accuracy (the objective; the search never reads the test split). Memory
= int8 weights + peak activation arena. The held-out comparison with baselines, retrained with
seeds under a fair budget: <code>moo-audio evaluate {html.escape(str(run))}</code>.</p>
{_table(("genome id", "error", "energy mJ", "memory KB", "M MACs", "params", "val acc",
         "epochs", "stopped by"), pareto_rows)}
<h2>Baselines</h2>
<p>On the richest 2-D front end of the space ({html.escape(_frontend_text(base[0].genome) if base else '-')}),
with the run's energy and cost models; trained under the run's budget, stopping rules and seed
{'' if train_baselines else '(training disabled with --no-train-baselines; cached results are shown)'}.</p>
{_table(("baseline", "error", "energy mJ", "memory KB", "M MACs", "params", "val acc"), base_rows)}
<h2>Chosen models</h2>
{picks_html or '<p>No feasible model yet.</p>'}
<h2>Figures</h2>
{images}
<details><summary>problem file</summary><pre>{html.escape(meta['problem']['text'])}</pre></details>
<p><small>generated {time.strftime('%Y-%m-%d %H:%M:%S')} by moo-audio report</small></p>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
