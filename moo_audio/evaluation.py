"""``moo-audio evaluate RUN``: the held-out comparison of a run's models with the baselines.

The protocol, as a careful paper would run it:

1. **Choose on validation only.** The run's Pareto set (error = 1 - validation accuracy) gives the
   found models, at most ``max_models`` spread along it; the problem file's baselines join them.
2. **Train everything alike, fairly.** Every model — found or baseline — is retrained without early
   stopping for ``epochs_factor`` times the search's epochs (the best validation epoch kept), with
   the problem's augmentation, at each learning rate of ``lrs`` (seed 0); the rate with the best
   validation accuracy is kept, recorded, and trained with ``seeds - 1`` more seeds.
3. **Read the test split once, at the end.** Only when every training is done are the kept weights
   evaluated on the test split (``FeatureSet.held_out`` keeps it from every training and choice).
4. **Report intervals.** Per model: test accuracy (mean and 95% t-interval over seeds), validation
   accuracy, predicted (and, with ``measure``, measured) energy, memory and MACs; for each found
   model the energy and memory ratio to the most accurate baseline whose mean test accuracy it
   matches or beats, with a 95% bootstrap interval over the seeds (the matched baseline is chosen
   again in every resample).

Trainings are journaled in ``RUN/evaluation/trainings.jsonl`` (weights beside them) as they finish,
so an interrupted evaluation resumes without retraining; results go to ``RUN/evaluation/results.json``
and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from moo_audio.costs import network_cost
from moo_audio.data import FeatureSet
from moo_audio.jobs import TrainJob, evaluation_row, training_seed
from moo_audio.nets import build
from moo_audio.parallel import make_runner
from moo_audio.search import stored_problem
from moo_audio.selection import knee, pareto
from moo_audio.space import Genome
from moo_audio.store import Evaluation, RunError, RunStore, genome_id
from moo_audio.training import accuracy

FOLDER = "evaluation"
#: resamples of the bootstrap intervals (fixed seed: reproducible)
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Protocol:
    """The final training and evaluation (see the module docstring)."""

    seeds: int = 3
    epochs_factor: int = 3
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    max_models: int = 6
    #: model names (``"ds_cnn_s"``) of the problem file's baselines to evaluate; ``None``: all of them
    baselines: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.baselines is not None and not self.baselines:
            raise ValueError("baselines must name at least one baseline (None evaluates all of them)")
        if self.seeds < 2:
            raise ValueError(f"seeds must be >= 2 (intervals need them), got {self.seeds}")
        if self.epochs_factor < 1 or self.max_models < 1 or not self.lrs or min(self.lrs) <= 0:
            raise ValueError("epochs_factor and max_models must be >= 1 and lrs positive")


def baseline_names(text: str) -> tuple[str, ...]:
    """``"ds_cnn_s,mobilenet_v2"`` as :attr:`Protocol.baselines` (the command-line form)."""
    return tuple(name.strip() for name in text.split(","))


@dataclass(frozen=True)
class Model:
    """A model under evaluation: a found one (``group="found"``) or a baseline."""

    label: str
    group: str
    genome: Genome


def chosen_models(evaluations: Sequence[Evaluation], max_models: int) -> list[Evaluation]:
    """At most ``max_models`` of the Pareto set, chosen on validation alone: the most accurate, the
    cheapest in energy, the knee, then evenly along the front by error."""
    front = pareto(evaluations)
    if len(front) <= max_models:
        return front
    picks = [front[0], min(front, key=lambda e: (e.energy_mj, e.error)), knee(front)]
    for i in np.linspace(0, len(front) - 1, max_models).round().astype(int):
        picks.append(front[i])
    out = []
    for e in picks:
        if e not in out:
            out.append(e)
    return sorted(out[:max_models], key=lambda e: e.error)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the ``level`` t-interval of the mean."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2 or v.std() == 0:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def matched_ratios(found: dict[str, np.ndarray], baselines: dict[str, np.ndarray],
                   cost: dict[str, float]) -> dict[str, str | float | None]:
    """For each found model: the most accurate baseline whose mean accuracy it matches or beats and
    the ratio baseline cost / found cost (``None`` where it matches none)."""
    means = {k: float(v.mean()) for k, v in {**found, **baselines}.items()}
    out = {}
    for f in found:
        matched = [b for b in baselines if means[b] <= means[f]]
        best = max(matched, key=lambda b: means[b], default=None)
        out[f] = None if best is None else (best, cost[best] / cost[f])
    return out


def bootstrap_ratios(found: dict[str, np.ndarray], baselines: dict[str, np.ndarray], cost: dict[str, float],
                     n: int = BOOTSTRAP, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """95% bootstrap interval of each found model's matched ratio (seeds resampled per model), and
    the share of resamples in which it matches a baseline at all."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {f: [] for f in found}
    for _ in range(n):
        resampled = {k: v[rng.integers(len(v), size=len(v))] for k, v in {**found, **baselines}.items()}
        ratios = matched_ratios({f: resampled[f] for f in found}, {b: resampled[b] for b in baselines}, cost)
        for f, r in ratios.items():
            draws[f].append(math.nan if r is None else r[1])
    out = {}
    for f, values in draws.items():
        v = np.asarray(values)
        ok = v[np.isfinite(v)]
        lo, hi = (np.quantile(ok, [0.025, 0.975]) if len(ok) else (math.nan, math.nan))
        out[f] = (float(lo), float(hi), float(len(ok) / len(v)))
    return out


def test_accuracy(genome: Genome, weights: dict[str, torch.Tensor], features: FeatureSet) -> float:
    """Test accuracy of trained ``weights`` of ``genome`` (features with their test split)."""
    x_test, y_test = features.split("test")
    net = build(genome)
    net.load_state_dict(weights)
    return accuracy(net.eval(), x_test, y_test, genome.frontend.input_shape)


class Journal:
    """The evaluation's trainings, appended as they finish (``trainings.jsonl``, weights beside)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "trainings.jsonl"
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[row["key"]] = row

    def add(self, key: str, row: dict[str, Any], weights: dict[str, torch.Tensor] | None) -> None:
        if weights is not None:
            torch.save(weights, self.folder / f"{key}.pt")
        self.rows[key] = row
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def weights(self, key: str) -> dict[str, torch.Tensor]:
        return torch.load(self.folder / f"{key}.pt", weights_only=True)


def _key(model: Model, lr: float, seed: int) -> str:
    return f"{genome_id(model.genome.key)}-lr{lr:g}-s{seed}"


def evaluate_run(run: str | Path, protocol: Protocol = Protocol(), *, workers: int | None = None,
                 scheduler: str | None = None, measure: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the protocol on a run folder; the results (also written to ``RUN/evaluation``)."""
    store = RunStore.open(run, readonly=True)
    meta = store.meta()
    spec = stored_problem(meta)
    dataset = spec.load_dataset()
    if dataset.fingerprint != meta["dataset"]["fingerprint"]:
        raise RunError(f"the data of {spec.path} changed since the run (fingerprint "
                       f"{dataset.fingerprint[:12]}, run {meta['dataset']['fingerprint'][:12]})")
    found = chosen_models(store.evaluations(), protocol.max_models)
    if not found:
        raise RunError(f"{run} has no feasible model to evaluate")
    data = meta["dataset"]
    models = [Model(e.genome_id, "found", e.genome) for e in found]
    if protocol.baselines is not None:
        unknown = sorted(set(protocol.baselines) - {b.model for b in spec.baselines})
        if unknown:
            raise RunError(f"baselines {unknown} are not among {spec.path}'s "
                           f"({sorted({b.model for b in spec.baselines})})")
        spec = dataclasses.replace(spec, baselines=tuple(b for b in spec.baselines
                                                         if b.model in protocol.baselines))
    models += [Model(label, "baseline", g) for label, g in
               spec.baseline_genomes(data["sample_rate"], data["n_classes"], data["clip_ms"]).items()]
    budget = dataclasses.replace(spec.budget, max_epochs=protocol.epochs_factor * spec.budget.max_epochs)
    folder = Path(run) / FOLDER
    folder.mkdir(exist_ok=True)
    journal = Journal(folder)
    log(f"evaluating {len(found)} found model(s) and {len(models) - len(found)} baseline(s): "
        f"{budget.max_epochs} epochs (x{protocol.epochs_factor} the search's), learning rates "
        f"{list(protocol.lrs)} on seed 0, then {protocol.seeds} seeds at the best; "
        f"{len(journal.rows)} training(s) already in {journal.path}")
    runner = make_runner(workers if workers is not None else spec.search.workers, scheduler)
    journaled = set(journal.rows)
    started = time.perf_counter()
    try:
        problem = spec.make_problem(dataset, seed=meta["seed"], runner=runner)

        def job(model: Model, lr: float, seed: int) -> TrainJob:
            return TrainJob(model.genome, training_seed(model.genome, meta["seed"] * 7919 + seed),
                            dataclasses.replace(budget, lr=lr), (), (), problem.threads, problem.device,
                            keep_weights=True)

        def train(todo: list[tuple[Model, float, int]]) -> None:
            todo = [t for t in todo if _key(*t) not in journal.rows]
            for i, result, worker in problem.train([job(*t) for t in todo]):
                model, lr, seed = todo[i]
                journal.add(_key(model, lr, seed), {"key": _key(model, lr, seed), "label": model.label,
                                                    "lr": lr, "seed": seed, "worker": worker,
                                                    **evaluation_row(result)}, result.weights)
                log(f"  {model.label:<24} lr {lr:g} seed {seed}: validation accuracy "
                    f"{journal.rows[_key(model, lr, seed)]['val_accuracy']:.3f} ({result.seconds:.0f} s)")

        grid = [(m, lr, 0) for m in models for lr in protocol.lrs]
        train(grid)
        best_lr = {m.label: max(protocol.lrs, key=lambda lr, m=m: journal.rows[_key(m, lr, 0)]["val_accuracy"])
                   for m in models}
        repeats = [(m, best_lr[m.label], s) for m in models for s in range(1, protocol.seeds)]
        train(repeats)
    finally:
        runner.close()
    trained_s = time.perf_counter() - started
    used = {_key(*t) for t in grid + repeats}
    trainings = {"used": len(used), "reused": len(used & journaled),
                 "seconds": sum(journal.rows[k]["seconds"] for k in used)}

    # the test split, read once: every training and choice is done
    full = {}
    results = []
    energy_model = spec.energy_model()
    predicted = dict(zip([m.label for m in models], energy_model.predict_mj([m.genome for m in models])))
    measured, speed = _measure([m.genome for m in models], energy_model, log) if measure else ({}, None)
    for m in models:
        fe = m.genome.frontend
        if fe.feature_key() not in full:
            full[fe.feature_key()] = problem.feature_cache.get(dataset, fe)
        rows = [journal.rows[_key(m, best_lr[m.label], s)] for s in range(protocol.seeds)]
        tests = [math.nan if row["failed"] else test_accuracy(m.genome, journal.weights(row["key"]),
                                                              full[fe.feature_key()]) for row in rows]
        cost = network_cost(m.genome)
        results.append({
            "label": m.label, "group": m.group, "genome": m.genome.key, "lr": best_lr[m.label],
            "lr_grid_val_accuracy": {f"{lr:g}": journal.rows[_key(m, lr, 0)]["val_accuracy"] for lr in protocol.lrs},
            "val_accuracy": [r["val_accuracy"] for r in rows], "test_accuracy": tests,
            "test_mean_ci": mean_interval(tests), "energy_mj": float(predicted[m.label]),
            "measured_energy_mj": measured.get(genome_id(m.genome.key)), "memory_kb": cost.memory_bytes() / 1024,
            "macs": cost.macs, "params": cost.params, "epochs": [r["epochs"] for r in rows]})
    _compare(results)
    out = {"run": str(run), "protocol": dataclasses.asdict(protocol), "budget": dataclasses.asdict(budget),
           "energy_model": energy_model.name, "host_speed": None if speed is None else dataclasses.asdict(speed),
           "train_seconds": trained_s, "trainings": trainings, "models": results,
           "dataset": meta["dataset"]}
    (folder / "results.json").write_text(json.dumps(out, indent=1, default=_json))
    (folder / "report.md").write_text(markdown(out) + "\n")
    log(markdown(out))
    return out


def _compare(results: list[dict[str, Any]]) -> None:
    """Add each found model's matched baseline and energy/memory ratios, with bootstrap intervals."""
    acc = {r["label"]: np.asarray(r["test_accuracy"], dtype=float) for r in results}
    found = {r["label"]: acc[r["label"]] for r in results if r["group"] == "found"}
    base = {r["label"]: acc[r["label"]] for r in results if r["group"] == "baseline"}
    for what in ("energy_mj", "memory_kb"):
        cost = {r["label"]: r[what] for r in results}
        point = matched_ratios(found, base, cost)
        interval = bootstrap_ratios(found, base, cost)
        for r in results:
            if r["group"] == "found":
                match = point[r["label"]]
                r["matches"] = None if match is None else match[0]
                r[f"{what}_ratio"] = None if match is None else match[1]
                r[f"{what}_ratio_ci"] = interval[r["label"]][:2]
                r["matches_share"] = interval[r["label"]][2]


def _measure(genomes: Sequence[Genome], energy_model, log: Callable[[str], None]) -> tuple[dict[str, float], Any]:
    """Energy measured on this host (int8, onnxruntime), by genome id, and the host's speed against the
    energy model (:func:`~moo_audio.energy.calibration.measure_calibrated`; ``None`` unless packaged)."""
    from moo_audio.energy.calibration import measure_calibrated
    from moo_audio.energy.profiles import load_profile

    log(f"measuring {len(genomes)} model(s) on this host ...")
    records, speed = measure_calibrated(genomes, energy_model, load_profile("host-cpu-core"))
    return {k: r.energy_mj for k, r in records.items()}, speed


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def strongest_baseline_line(models: Sequence[dict[str, Any]]) -> str:
    """Whether any found model matches the most accurate baseline, in one sentence: the ratios
    against weaker baselines say little if the strongest one is out of reach."""
    def acc(r):
        m, lo, hi = r["test_mean_ci"]
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    baselines = [r for r in models if r["group"] == "baseline"]
    found = [r for r in models if r["group"] == "found"]
    if not baselines or not found:
        return "No baseline or no found model to compare."
    best = max(baselines, key=lambda r: r["test_mean_ci"][0])
    matching = [r for r in found if r["matches"] == best["label"]]
    if matching:
        cheapest = min(matching, key=lambda r: r["energy_mj"])
        return (f"The most accurate baseline, {best['label']} (test {acc(best)}), is matched by {cheapest['label']} "
                f"(test {acc(cheapest)}) at {cheapest['energy_mj_ratio']:.1f}x less energy and "
                f"{cheapest['memory_kb_ratio']:.1f}x less memory.")
    top = max(found, key=lambda r: r["test_mean_ci"][0])
    return (f"No found model matches the most accurate baseline, {best['label']} (test {acc(best)}); the most "
            f"accurate found model, {top['label']}, reaches {acc(top)} with "
            f"{best['energy_mj'] / top['energy_mj']:.1f}x less energy and {best['memory_kb'] / top['memory_kb']:.1f}x "
            "less memory.")


def markdown(out: dict[str, Any]) -> str:
    """The results as a markdown table."""
    lines = ["| model | test accuracy, mean [95% CI] | val accuracy | lr | energy mJ | measured mJ | memory KB | "
             "M MACs | matches baseline (share of resamples) | energy ratio [95% CI] | memory ratio [95% CI] |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(out["models"], key=lambda r: (r["group"], -r["test_mean_ci"][0])):
        m, lo, hi = r["test_mean_ci"]
        measured = "-" if r.get("measured_energy_mj") is None else f"{r['measured_energy_mj']:.4g}"
        cells = [f"{r['group']}: {r['label']}", f"{m:.3f} [{lo:.3f}, {hi:.3f}]",
                 f"{np.mean(r['val_accuracy']):.3f}", f"{r['lr']:g}", f"{r['energy_mj']:.4g}", measured,
                 f"{r['memory_kb']:.1f}", f"{r['macs'] / 1e6:.3g}"]
        if r["group"] == "found":
            if r["matches"] is None:
                cells += ["none", "-", "-"]
            else:
                cells += [f"{r['matches']} ({100 * r['matches_share']:.0f}%)",
                          *(f"{r[f'{w}_ratio']:.1f}x [{r[f'{w}_ratio_ci'][0]:.1f}, "
                                          f"{r[f'{w}_ratio_ci'][1]:.1f}]" for w in ("energy_mj", "memory_kb"))]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\n" + strongest_baseline_line(out["models"]))
    p = out["protocol"]
    lines.append(f"\n{p['seeds']} seeds per model, {out['budget']['max_epochs']} epochs, learning rate chosen on "
                 f"validation from {p['lrs']}; test read once, after every training. Energy: {out['energy_model']}.")
    if out.get("host_speed"):  # absent from results written before calibration
        from moo_audio.energy.calibration import HostSpeed

        speed = HostSpeed(**out["host_speed"])
        error = speed.median_error([r["measured_energy_mj"] for r in out["models"]],
                                   [r["energy_mj"] for r in out["models"]])
        lines.append(f"Measured energy: {speed}; at that speed the predictions are a median {error:.1%} from "
                     "the measurements.")
    t = out.get("trainings")  # absent from results written before it was recorded
    if t:
        lines.append(f"{t['used']} trainings ({t['seconds'] / 60:.0f} min), {t['reused']} of them reused from an "
                     "earlier evaluation of this run (same seeds, so the same trainings).")
    return "\n".join(lines)
