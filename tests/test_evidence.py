"""The evidence a practitioner can trust (issue 14): the augmentation recipe, the field's baselines,
speaker-grouped folds, and the held-out evaluation that reads the test split once."""

import json
import math

import numpy as np
import pytest
import torch

from moo_audio.augment import Augmentation, FeatureAugmenter, coloured_noise
from moo_audio.costs import network_cost
from moo_audio.data import FeatureCache, load_dataset
from moo_audio.data.dataset import make_dataset
from moo_audio.data.features import LOG_OFFSET, HeldOutError
from moo_audio.jobs import fold_row, fold_split
from moo_audio.nets import baseline, build, plan
from moo_audio.problem_files import ProblemFileError, load_problem, parse_problem
from moo_audio.space import Block, FrontEnd, Genome


def _augmenter(noise=None, **options) -> FeatureAugmenter:
    zero = {"time_shift_ms": 0, "noise_prob": 0.0}
    return FeatureAugmenter(Augmentation(**{**zero, **options}), mean=-5.0, std=2.0, noise=noise, hop_ms=10,
                            log_offset=LOG_OFFSET)


def test_time_shift_moves_frames_and_fills_silence():
    x = torch.arange(20.0).reshape(1, 1, 20).repeat(8, 4, 1)
    torch.manual_seed(0)
    out = _augmenter(time_shift_ms=50)(x)  # up to 5 frames either way
    silence = (math.log(LOG_OFFSET) + 5.0) / 2.0
    for row in out[:, 0]:
        kept = row[row != silence]
        assert len(kept) >= 15 and torch.all(torch.diff(kept) == 1)  # a contiguous run of the clip, moved
    assert not torch.equal(out, x)


def test_noise_is_added_at_the_asked_snr_in_the_mel_power_domain():
    clip = torch.full((6, 4, 10), 1.0)  # standardised log-mel: power exp(1 * 2 - 5)
    noise = torch.full((3, 4, 10), -3.0)  # log power of the noise segments
    torch.manual_seed(1)
    out = _augmenter(noise=noise, noise_prob=1.0, snr_db=(10.0, 10.0))(clip)
    power = torch.exp(out * 2.0 - 5.0)
    clip_power = math.exp(2.0 - 5.0)
    np.testing.assert_allclose(power.numpy(), clip_power * 1.1, rtol=1e-5)  # +10% of the clip's power


def test_gain_scales_the_mel_power_exactly_and_leaves_silence_silent():
    silence = (math.log(LOG_OFFSET) + 5.0) / 2.0
    clip = torch.full((64, 4, 10), 1.0)
    clip[:, :, 8:] = silence  # zero padding at the end of each clip
    torch.manual_seed(3)
    out = _augmenter(gain_db=(-20.0, 10.0))(clip)
    power = torch.exp(out * 2.0 - 5.0) - LOG_OFFSET
    gain_db = 10 * torch.log10(power[:, :, :8] / (math.exp(2.0 - 5.0) - LOG_OFFSET))
    assert torch.allclose(gain_db, gain_db[:, :1, :1].expand_as(gain_db), atol=1e-3)  # one gain per clip
    assert gain_db.min() >= -20.0 - 1e-3 and gain_db.max() <= 10.0 + 1e-3
    assert gain_db.min() < -15.0 and gain_db.max() > 5.0  # drawn over the whole range
    torch.testing.assert_close(out[:, :, 8:], clip[:, :, 8:])
    with pytest.raises(ValueError, match=r"gain_db must be \[low, high\] with low <= high, got \[10.0, -20.0\]"):
        Augmentation(gain_db=(10, -20))


def test_frequency_warp_stretches_the_mel_axis_within_its_bound():
    x = torch.arange(16.0).reshape(1, 16, 1).repeat(32, 1, 5)  # each frame reads 0, 1, ..., 15 up the bins
    torch.manual_seed(4)
    out = _augmenter(freq_warp=0.1)(x)
    factor = out[:, 5, 0] / 5  # bin 5 now reads bin 5 x factor
    assert factor.min() >= 0.9 - 1e-6 and factor.max() <= 1.1 + 1e-6 and factor.std() > 0.02
    assert torch.all(torch.diff(out, dim=1) >= 0)  # still ascending: a stretch, not a shuffle
    assert torch.all(out[:, 0] == 0) and out.max() <= 15
    with pytest.raises(ValueError, match=r"freq_warp must be in \[0, 1\]"):
        Augmentation(freq_warp=-0.1)


def test_masks_set_bands_and_frames_to_the_mean():
    torch.manual_seed(2)
    out = _augmenter(time_masks=1, time_mask_fraction=0.2, freq_masks=1, freq_mask_fraction=0.25)(torch.ones(16, 8, 30))
    assert (out == 0).any() and (out == 1).any()
    assert Augmentation(snr_db=[0, 5]).snr_db == (0.0, 5.0)
    with pytest.raises(ValueError, match=r"noise_prob must be in \[0, 1\], got 1.5"):
        Augmentation(noise_prob=1.5)
    with pytest.raises(ValueError, match="snr_db must be"):
        Augmentation(snr_db=(20, 5))


def test_generated_noise_when_a_dataset_has_none():
    noise = coloured_noise(4, 1600, 16000, seed=0)
    assert noise.shape == (4, 1600) and noise.dtype == torch.float32 and noise.abs().max() <= 0.5 + 1e-6
    assert load_dataset("builtin", n_per_class=4, seed=0).noise is None  # generated noise, see below


def test_features_hold_the_test_split_out(tmp_path):
    ds = load_dataset("builtin", n_per_class=4, seed=0)
    features = FeatureCache(tmp_path).get(ds, FrontEnd(n_mels=16, win_ms=25, hop_ms=20))
    assert features.noise.shape[1:] == (16, features.x["train"].shape[2])  # generated noise, as log-mel
    held = features.held_out()
    held.split("val")
    with pytest.raises(HeldOutError, match="test split is held out.*moo-audio evaluate"):
        held.split("test")
    again = FeatureCache(tmp_path).get(ds, FrontEnd(n_mels=16, win_ms=25, hop_ms=20))  # from disk
    assert torch.equal(again.noise, features.noise)


# ---- baselines -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size, macs, params", [("s", 2.76e6, 23180), ("m", 9.89e6, 136580), ("l", 28.4e6, 413736)])
def test_ds_cnn_as_in_hello_edge(size, macs, params):
    genome = baseline(f"ds_cnn_{size}", n_classes=12)
    assert genome.frontend.input_shape == (1, 10, 51)  # 10 bands, 40 ms windows every 20 ms
    assert genome.blocks[0].kernel == (4, 10)  # the 10x4 time-by-frequency stem
    cost = network_cost(genome)
    assert cost.macs == pytest.approx(macs, rel=0.01) and cost.params == params
    net = build(genome)
    assert sum(p.numel() for p in net.parameters()) == params
    assert tuple(net(torch.zeros(2, 1, 10, 51)).shape) == (2, 12)


def test_even_kernels_pad_as_tensorflow_and_odd_ones_as_before():
    fe = FrontEnd(n_mels=10, win_ms=40, hop_ms=20)  # 10 x 51
    genome = Genome(fe, (Block("conv", 8, (4, 10), (2, 2)), Block("conv", 8, 3, 2)), 12)
    first, second = plan(genome).layers[:2]
    assert first.out_shape == (8, 5, 26) and first.padding() == ((1, 1), (4, 5))  # TF "same"
    assert second.padding() == ((1, 1), (1, 1))  # odd: torch's symmetric padding, as every search net
    out = build(genome)(torch.zeros(1, 1, 10, 51))
    assert tuple(out.shape) == (1, 12)
    assert json.loads(genome.to_json())["blocks"][0]["kernel"] == [4, 10]
    assert Genome.from_json(genome.to_json()) == genome
    with pytest.raises(ValueError, match="1-D genome takes integer kernels"):
        Genome(FrontEnd(representation="1d"), (Block("conv", 8, (3, 3)),), 12)


def test_baselines_take_their_own_front_end():
    spec = load_problem("speech_commands_12")
    genomes = spec.baseline_genomes(16000, 12, 1000)
    assert genomes["ds_cnn_s x1"].frontend.n_mels == 10
    assert genomes["mobilenet_v2 x0.35"].frontend.n_mels == 40  # the space's richest 2-D front end


# ---- speaker folds ---------------------------------------------------------------------------------
def _grouped(n_speakers: int = 6, per: int = 6):
    ds = load_dataset("builtin", n_per_class=3, seed=0)
    n = len(ds.labels)
    groups = np.array([f"spk{i % n_speakers}" for i in range(n)], dtype=object)
    return make_dataset("grouped", ds.waveforms, ds.labels, ds.class_names, ds.sample_rate, ds.clip_ms,
                        ds.splits, {}, groups=groups)


def test_folds_split_train_and_validation_by_speaker(tmp_path):
    ds = _grouped()
    features = FeatureCache(tmp_path).get(ds, FrontEnd(n_mels=16, win_ms=25, hop_ms=20)).held_out()
    pool = len(features.y["train"]) + len(features.y["val"])
    seen = 0
    for fold in range(3):
        x_train, y_train, x_val, y_val = fold_split(features, fold, 3)
        assert len(y_train) + len(y_val) == pool
        seen += len(y_val)
    assert seen == pool  # every pooled example validates exactly once
    row = fold_row([{"val_accuracy": a, "curve": c, "train_loss": [1.0] * len(c), "epochs": len(c),
                     "stop_reason": "budget", "seconds": 1.0, "failed": False}
                    for a, c in ((0.5, [0.4, 0.5]), (0.7, [0.6, 0.7, 0.65]))])
    assert row["val_accuracy"] == pytest.approx(0.6) and row["curve"] == pytest.approx([0.5, 0.6])
    assert row["fold_val_accuracies"] == [0.5, 0.7] and row["epochs"] == 2


def test_a_problem_scores_candidates_on_speaker_folds(tmp_path):
    from moo_audio import AudioNASProblem
    from moo_audio.space import SearchSpace
    from moo_audio.training import TrainBudget

    ds = _grouped()
    space = SearchSpace(sample_rate=ds.sample_rate, n_classes=ds.n_classes, clip_ms=(ds.clip_ms,), n_mels=(16,),
                        win_ms=(25,), hop_ms=(20,), max_blocks=1, channels=(8,))
    problem = AudioNASProblem(ds, space=space, budget=TrainBudget(max_epochs=2), folds=3,
                              feature_cache=tmp_path)
    out = problem.evaluate(space.to_x(space.sample(2, seed=0)), return_as_dictionary=True)
    rows = [problem._results[k] for k in out["genome"]]
    assert all(len(r["fold_val_accuracies"]) == 3 for r in rows)
    assert all(r["val_accuracy"] == pytest.approx(np.mean(r["fold_val_accuracies"])) for r in rows)
    with pytest.raises(ValueError, match="has no groups"):
        AudioNASProblem(load_dataset("builtin", n_per_class=3), folds=2)


# ---- problem files ----------------------------------------------------------------------------------
def test_problem_files_take_augmentation_and_folds(tmp_path):
    text = """
name = "aug"
[dataset]
name = "builtin"
[training]
folds = 4
[training.augment]
time_shift_ms = 50
snr_db = [0, 10]
"""
    spec = parse_problem(text, tmp_path / "aug.toml")
    assert spec.budget.augment == Augmentation(time_shift_ms=50, snr_db=(0.0, 10.0))
    assert spec.problem_options == {"folds": 4}
    with pytest.raises(ProblemFileError, match="training.augment.shift: unknown key"):
        parse_problem(text.replace("time_shift_ms", "shift"), tmp_path / "aug.toml")
    with pytest.raises(ProblemFileError, match="training.folds: must be >= 1"):
        parse_problem(text.replace("folds = 4", "folds = 0"), tmp_path / "aug.toml")
    shipped = load_problem("speech_commands_12")
    assert shipped.budget.augment is not None and shipped.dataset_options["split"] == "speaker"


# ---- the held-out evaluation ---------------------------------------------------------------------
def test_selection_reads_validation_only(tmp_path):
    """Permuting the test labels changes nothing a search sees or chooses."""
    from pymoo.optimize import minimize

    from moo_audio import AudioNASProblem
    from moo_audio.algorithms import RegularizedEvolution
    from moo_audio.evaluation import chosen_models
    from moo_audio.space import SearchSpace
    from moo_audio.store import RunStore
    from moo_audio.training import TrainBudget

    ds = load_dataset("builtin", n_per_class=6, seed=0)
    labels = ds.labels.clone()
    test = torch.from_numpy(ds.splits["test"])
    labels[test] = labels[test][torch.randperm(len(test), generator=torch.Generator().manual_seed(0))]
    permuted = make_dataset("builtin", ds.waveforms, labels, ds.class_names, ds.sample_rate, ds.clip_ms,
                            ds.splits, {"permuted test labels": True})
    assert not torch.equal(permuted.labels, ds.labels)
    chosen = []
    for name, data in (("original", ds), ("permuted", permuted)):
        space = SearchSpace(sample_rate=data.sample_rate, n_classes=data.n_classes, clip_ms=(data.clip_ms,),
                            n_mels=(16, 20), win_ms=(25,), hop_ms=(20,), max_blocks=2, channels=(8, 16))
        store = RunStore.create(tmp_path / name, {"budget": 8})
        problem = AudioNASProblem(data, space=space, budget=TrainBudget(max_epochs=2), store=store,
                                  feature_cache=tmp_path / "cache")
        minimize(problem, RegularizedEvolution(pop_size=4, sample_size=2, n_offsprings=2), ("n_evals", 8), seed=0)
        evaluations = store.evaluations()
        chosen.append(([(e.key, e.error, e.curve) for e in evaluations],
                       [e.key for e in chosen_models(evaluations, 3)]))
    assert chosen[0] == chosen[1]


def test_evaluate_trains_alike_and_reads_the_test_split_once_at_the_end(tmp_path, monkeypatch, tiny_problem_text):
    from moo_audio.cli import main
    from moo_audio.data.features import FeatureSet
    from moo_audio.evaluation import Protocol, evaluate_run

    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tiny.toml").write_text(tiny_problem_text)
    assert main(["search", "--problem", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "run")]) == 0

    events = []
    split = FeatureSet.split

    def spy(self, name):
        events.append(("read", name))
        return split(self, name)

    monkeypatch.setattr(FeatureSet, "split", spy)
    out = evaluate_run(tmp_path / "run", Protocol(seeds=2, epochs_factor=1, lrs=(1e-3, 3e-3), max_models=2),
                       log=lambda line: events.append(("log", line)))
    reads = [i for i, e in enumerate(events) if e == ("read", "test")]
    trainings = [i for i, e in enumerate(events) if e[0] == "log" and e[1].startswith("  ") and " seed " in e[1]]
    assert reads and trainings and min(reads) > max(trainings)  # no test read before every training is done
    assert len(trainings) == 3 * (2 + 1)  # (2 lrs + 1 more seed) x (2 found + 1 baseline)
    found = [m for m in out["models"] if m["group"] == "found"]
    base = [m for m in out["models"] if m["group"] == "baseline"]
    assert len(found) == 2 and [m["label"] for m in base] == ["ds_cnn_s x0.25"]
    for m in out["models"]:
        assert len(m["test_accuracy"]) == 2 and m["lr"] in (1e-3, 3e-3)
        mean, lo, hi = m["test_mean_ci"]
        assert lo <= mean <= hi and mean == pytest.approx(np.mean(m["test_accuracy"]))
    for m in found:
        if m["matches"] is not None:
            assert m["energy_mj_ratio"] == pytest.approx(base[0]["energy_mj"] / m["energy_mj"])
            lo, hi = m["energy_mj_ratio_ci"]
            assert lo <= hi and 0 < m["matches_share"] <= 1
    saved = json.loads((tmp_path / "run" / "evaluation" / "results.json").read_text())
    assert saved["budget"]["max_epochs"] == 2
    assert "| model |" in (tmp_path / "run" / "evaluation" / "report.md").read_text()
    assert out["trainings"]["used"] == 9 and out["trainings"]["reused"] == 0 and out["trainings"]["seconds"] > 0

    events.clear()  # a second evaluation finds every training in the journal
    again = evaluate_run(tmp_path / "run", Protocol(seeds=2, epochs_factor=1, lrs=(1e-3, 3e-3), max_models=2),
                         log=lambda line: events.append(("log", line)))
    assert not [e for e in events if e[0] == "log" and e[1].startswith("  ") and " seed " in e[1]]
    assert again["trainings"] == {**out["trainings"], "reused": 9}
    assert "9 trainings (0 min), 9 of them reused" in (tmp_path / "run" / "evaluation" / "report.md").read_text()


def test_the_report_says_whether_the_strongest_baseline_is_matched():
    from moo_audio.evaluation import strongest_baseline_line

    def row(label, group, acc, energy, matches=None):
        return {"label": label, "group": group, "test_mean_ci": (acc, acc - 0.01, acc + 0.01), "energy_mj": energy,
                "memory_kb": 10 * energy, "matches": matches, "energy_mj_ratio": 1.0 / energy,
                "memory_kb_ratio": 1.0 / energy}

    models = [row("big", "baseline", 0.95, 1.0), row("small", "baseline", 0.80, 0.5),
              row("g1", "found", 0.90, 0.1, matches="small")]
    assert strongest_baseline_line(models).startswith("No found model matches the most accurate baseline, big")
    assert "g1, reaches 0.900 [0.890, 0.910] with 10.0x less energy" in strongest_baseline_line(models)
    models.append(row("g2", "found", 0.96, 0.25, matches="big"))
    assert strongest_baseline_line(models).startswith("The most accurate baseline, big (test 0.950 [0.940, 0.960]), "
                                                      "is matched by g2")


def test_evaluate_takes_the_baselines_asked_for_and_refuses_unknown_ones(tmp_path, monkeypatch, tiny_problem_text):
    from moo_audio.cli import main
    from moo_audio.evaluation import Protocol, evaluate_run
    from moo_audio.store import RunError

    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path / "cache"))
    two = tiny_problem_text.replace('baselines = [{ model = "ds_cnn_s", width = 0.25 }]',
                       'baselines = [{ model = "ds_cnn_s", width = 0.25 }, { model = "mobilenet_v1", width = 0.25 }]')
    (tmp_path / "tiny.toml").write_text(two)
    assert main(["search", "--problem", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "run")]) == 0
    with pytest.raises(RunError, match=r"\['mobilenet_v2'\] are not among .*'ds_cnn_s', 'mobilenet_v1'"):
        evaluate_run(tmp_path / "run", Protocol(baselines=("mobilenet_v2", "ds_cnn_s")))
    assert main(["evaluate", str(tmp_path / "run"), "--baselines", "mobilenet_v1", "--seeds", "2",
                 "--epochs-factor", "1", "--lrs", "3e-3", "--max-models", "1"]) == 0
    saved = json.loads((tmp_path / "run" / "evaluation" / "results.json").read_text())
    assert [m["label"] for m in saved["models"] if m["group"] == "baseline"] == ["mobilenet_v1 x0.25"]
    assert saved["protocol"]["baselines"] == ["mobilenet_v1"]
