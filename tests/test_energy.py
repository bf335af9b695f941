"""Energy: ONNX export and quantization, timing, RAPL method selection, records and the
bundle/import workflow, features and the random-forest energy model."""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from moo_audio.costs import network_cost
from moo_audio.energy import AnalyticEnergyModel, EnergyModel
from moo_audio.energy.bundle import design, import_results, load_manifest, write_bundle
from moo_audio.energy.cli import add_energy_commands
from moo_audio.energy.features import (
    BASES,
    FEATURE_NAMES,
    LANES,
    OPERATOR_KINDS,
    OPERATOR_TERM_NAMES,
    TAIL_TERMS,
    feature_dict,
    feature_matrix,
    operator_matrix,
    operator_terms,
)
from moo_audio.energy.forest import ForestEnergyModel, GenomeFeatures, accuracy, fit_measurements
from moo_audio.energy.measure import (
    TimingSettings,
    export_onnx,
    measure_genomes,
    measure_pareto,
    random_input,
    random_network,
)
from moo_audio.energy.profiles import (
    PROFILES,
    DeviceProfile,
    RaplCounter,
    load_profile,
    resolve_method,
)
from moo_audio.energy.records import Measurement, genome_id, read_measurements, write_measurements
from moo_audio.nets import BASELINES, WIDTHS, baseline
from moo_audio.onnx_io import INPUT_NAME, make_session
from moo_audio.space import Block, FrontEnd, Genome, SearchSpace

TINY = Genome(FrontEnd(n_mels=16, win_ms=40, hop_ms=20),
              (Block("dsconv", 8, 3, 2, pool=True), Block("mbconv", 8, 3, 1, expansion=2, skip=True)))
TINY_1D = replace(TINY, frontend=replace(TINY.frontend, representation="1d"))
FAST = TimingSettings(warmup_s=0.0, min_s=0.01, max_s=0.05, check_every_s=0.01, max_passes=3,
                      min_round_s=0.0)
PROFILE = PROFILES["host-cpu-core"]


# ---- export, quantization, timing --------------------------------------------------------

@pytest.mark.parametrize("genome", [TINY, TINY_1D], ids=["2d", "1d"])
def test_float32_onnx_matches_torch(tmp_path, genome):
    path = export_onnx(genome, tmp_path / "m.onnx", "float32")
    x = random_input(genome, seed=3)
    (onnx_out,) = make_session(path).run(None, {INPUT_NAME: x})
    with torch.no_grad():
        torch_out = random_network(genome).eval()(torch.from_numpy(x)).numpy()
    assert onnx_out.shape == (1, genome.n_classes)
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-5)


def test_int8_quantization_gives_a_runnable_qdq_model(tmp_path):
    path = export_onnx(TINY, tmp_path / "q.onnx", "int8")
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    (out,) = make_session(path).run(None, {INPUT_NAME: random_input(TINY)})
    assert out.shape == (1, TINY.n_classes) and np.all(np.isfinite(out))


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dtype 'int4'"):
        export_onnx(TINY, tmp_path / "m.onnx", "int4")


def test_measure_power_x_time_and_pareto_predictions():
    records = measure_pareto([TINY, TINY, TINY_1D], PROFILE, model=AnalyticEnergyModel(),
                             dtype="float32", method="power_x_time", settings=FAST)
    assert [r.model_id for r in records] == [genome_id(TINY), genome_id(TINY_1D)]  # deduplicated
    for r in records:
        assert r.method == "power_x_time" and r.repeats >= FAST.min_repeats
        assert r.energy_mj == pytest.approx(r.latency_ms * PROFILE.active_power_w)
        assert r.latency_iqr_ms >= 0 and r.predicted_mj > 0 and r.runtime.startswith("onnxruntime")


# ---- device profiles and the RAPL counter ------------------------------------------------

def _fake_powercap(root: Path, energy_uj: int = 5_000, max_uj: int = 1_000_000) -> Path:
    for zone in ("intel-rapl:0", "intel-rapl:0:0"):  # a package and its core sub-zone
        (root / zone).mkdir(parents=True)
        (root / zone / "energy_uj").write_text(f"{energy_uj}\n")
        (root / zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_method_selection_follows_the_counter(tmp_path):
    counter = RaplCounter.find(_fake_powercap(tmp_path / "rapl"))
    assert counter is not None and [z.name for z in counter.zones] == ["intel-rapl:0"]
    assert counter.read() == (5_000,)
    assert resolve_method("auto", counter) == "counter"
    assert RaplCounter.find(tmp_path / "nothing") is None
    assert resolve_method("auto", None) == "power_x_time"
    assert resolve_method("power_x_time", counter) == "power_x_time"
    with pytest.raises(ValueError, match="no readable energy counter"):
        resolve_method("counter", None)


def test_counter_wraps_around(tmp_path):
    counter = RaplCounter.find(_fake_powercap(tmp_path, max_uj=1_000))
    assert counter.joules_between((990,), (10,)) == pytest.approx(21e-6)
    assert counter.joules_between((10,), (990,)) == pytest.approx(980e-6)


def test_measure_reads_the_counter(tmp_path, monkeypatch):
    readings = itertools.count(0, 500_000)  # 0.5 J between consecutive readings
    monkeypatch.setattr(RaplCounter, "read", lambda self: (next(readings),))
    (record,) = measure_genomes({"tiny": TINY}, PROFILE, dtype="float32", settings=FAST,
                                powercap_root=_fake_powercap(tmp_path))
    assert record.method == "counter"
    assert record.energy_mj == pytest.approx(500 * FAST.passes / record.repeats)  # 0.5 J per pass


def test_passes_are_interleaved_and_summarised_by_the_statistic(monkeypatch):
    import moo_audio.energy.measure as measure

    order, sessions = [], []
    real_pass, real_session = measure.time_pass, measure.make_session

    def spy_pass(session, feed, settings, counter):
        order.append(feed[INPUT_NAME].shape)
        return real_pass(session, feed, settings, counter)

    def spy_session(*args, **kwargs):
        sessions.append(real_session(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(measure, "time_pass", spy_pass)
    monkeypatch.setattr(measure, "make_session", spy_session)
    other = replace(TINY, frontend=replace(TINY.frontend, n_mels=TINY.frontend.n_mels * 2))
    records = measure_genomes({"a": TINY, "b": other}, PROFILE, dtype="float32", method="power_x_time",
                              settings=replace(FAST, passes=3, max_passes=3, session_per_pass=True))
    assert len(order) == 6 and order[:2] == order[2:4] == order[4:] and order[0] != order[1]  # a, b, a, b, ...
    assert len(sessions) == 6  # a new session per pass
    sessions.clear()
    measure_genomes({"a": TINY, "b": other}, PROFILE, dtype="float32", method="power_x_time",
                    settings=replace(FAST, passes=3, max_passes=3))
    assert len(sessions) == 2  # the default: one session per model for all its passes
    assert all(r.latency_statistic == "min" for r in records)
    times = [np.array([3.0, 1.0, 2.0]), np.array([5.0, 4.0])]
    assert measure.summarise(times, [None, None], "min").latency_ms == 1.0
    assert measure.summarise(times, [None, None], "median").latency_ms == 3.0
    assert measure.summarise(times, [1.0, 2.0], "min").energy_j == 3.0
    with pytest.raises(ValueError, match="statistic"):
        TimingSettings(statistic="mean")


def test_models_get_more_passes_until_two_agree(monkeypatch):
    import moo_audio.energy.measure as measure

    # per-pass minima: "a" is slow in its first and third pass, "b" agrees at once
    scripted = {"a": iter([1.5, 1.0, 1.6, 1.02, 9.0]), "b": iter([2.0, 2.01, 2.02, 9.0])}
    order = []
    monkeypatch.setattr(measure, "make_session", lambda path, *args, **kwargs: path)
    monkeypatch.setattr(measure, "time_pass", lambda session, feed, settings, counter: (
        order.append(session) or np.array([next(scripted[session]), 5.0]), None))
    settings = TimingSettings(passes=2, max_passes=6, confirm_rel=0.03, min_round_s=0.0)
    timings = dict(measure.time_models(["a", "b"], [{}, {}], settings))
    assert order == ["a", "b", "a", "b", "a", "a"]  # b confirmed after 2 passes, a after 4
    assert timings[0].latency_ms == 1.0 and timings[0].repeats == 8 and timings[1].latency_ms == 2.0
    scripted.update(a=iter([1.5, 1.0, 1.6, 1.02]), b=iter([2.0, 2.01]))
    pauses = []
    monkeypatch.setattr(measure.time, "sleep", pauses.append)
    dict(measure.time_models(["a", "b"], [{}, {}], replace(settings, min_round_s=1.0)))
    assert len(pauses) == 3 and all(0.9 < p <= 1.0 for p in pauses)  # after rounds 1-3, not after the last
    scripted["a"] = iter([1.5, 1.0, 1.02])
    capped = dict(measure.time_models(["a"], [{}], replace(settings, max_passes=2)))
    assert capped[0].repeats == 4 and capped[0].latency_ms == 1.0  # the cap wins over confirmation
    with pytest.raises(ValueError, match="max_passes >= passes"):
        TimingSettings(passes=4, max_passes=3)


def test_a_table_never_mixes_latency_statistics(tmp_path):
    (record,) = measure_genomes({"tiny": TINY}, PROFILE, dtype="float32", method="power_x_time",
                                settings=FAST)
    other = replace(record, model_id="other", latency_statistic="median")
    with pytest.raises(ValueError, match="latency_statistic"):
        write_measurements([record, other], tmp_path / "mixed.csv")
    write_measurements([record], tmp_path / "one.csv")
    assert read_measurements(tmp_path / "one.csv")[0].latency_statistic == "min"


def test_a_counter_that_does_not_advance_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="did not advance"):
        measure_genomes({"tiny": TINY}, PROFILE, dtype="float32", settings=FAST, method="counter",
                        powercap_root=_fake_powercap(tmp_path))


def test_profiles_load_from_toml_and_json(tmp_path):
    assert load_profile("watch-mcu") is PROFILES["watch-mcu"]
    (tmp_path / "p.toml").write_text('name = "pixel-7-a78"\nactive_power_w = 1.2\n')
    (tmp_path / "p.json").write_text('{"name": "board", "active_power_w": 0.5, "description": "x"}')
    assert load_profile(tmp_path / "p.toml") == DeviceProfile("pixel-7-a78", 1.2)
    assert load_profile(str(tmp_path / "p.json")).active_power_w == 0.5


@pytest.mark.parametrize("content, error", [
    ('name = "x"\nactive_power_w = -1\n', "active_power_w must be a positive number"),
    ('name = "x"\n', "missing field.*active_power_w"),
    ('name = "x"\nactive_power_w = 1\nvolts = 3\n', "unknown field.*volts"),
    ('name = \n', "not valid TOML"),
])
def test_bad_profile_files_are_refused(tmp_path, content, error):
    (tmp_path / "bad.toml").write_text(content)
    with pytest.raises(ValueError, match=error):
        load_profile(tmp_path / "bad.toml")


def test_unknown_profile_and_missing_file():
    with pytest.raises(ValueError, match="unknown device profile 'toaster'"):
        load_profile("toaster")
    with pytest.raises(FileNotFoundError):
        load_profile("missing.toml")


# ---- records -----------------------------------------------------------------------------

def _record(model_id: str, genome: Genome = TINY, energy: float = 1.0, **kw) -> Measurement:
    fields = {"model_id": model_id, "genome": genome, "dtype": "int8", "threads": 1,
              "latency_ms": energy / 4, "latency_iqr_ms": 0.01, "repeats": 100, "energy_mj": energy,
              "method": "power_x_time", "device_profile": "host-cpu-core", "active_power_w": 4.0,
              "hardware": "cpu X | 2 cores", "runtime": "onnxruntime 1.0"}
    return Measurement(**{**fields, **kw})


def test_measurements_round_trip(tmp_path):
    records = [_record("a"), _record("b", TINY_1D, 2.5, latency_iqr_ms=None, repeats=None)]
    path = write_measurements(records, tmp_path / "m.csv")
    assert read_measurements(path) == records
    with pytest.raises(ValueError, match="already exists"):
        write_measurements(records, path)


def test_mixed_setups_are_refused_unless_allowed(tmp_path):
    records = [_record("a"), _record("b", method="counter")]
    with pytest.raises(ValueError, match="differs from the table's setup in method"):
        write_measurements(records, tmp_path / "m.csv")
    path = write_measurements(records, tmp_path / "mixed.csv", allow_mixed=True)
    with pytest.raises(ValueError, match=r"mix method values \['counter', 'power_x_time'\]"):
        read_measurements(path)
    assert len(read_measurements(path, allow_mixed=True)) == 2
    # one network in two setups (a reference table in float32 and int8) reads back; twice in one does not
    twice = [_record("a"), _record("a", dtype="float32")]
    path = write_measurements(twice, tmp_path / "twice.csv", allow_mixed=True)
    assert read_measurements(path, allow_mixed=True) == twice
    path = write_measurements(twice + twice[:1], tmp_path / "thrice.csv", allow_mixed=True)
    with pytest.raises(ValueError, match="line 4, column model_id: 'a in setup .*int8.*' duplicates"):
        read_measurements(path, allow_mixed=True)


# ---- bundle and import -------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    write_bundle({"tiny": TINY, "tiny1d": TINY_1D}, out, dtype="float32")
    return out


def test_bundle_manifest(bundle):
    models = load_manifest(bundle)
    assert set(models) == {"tiny", "tiny1d"}
    entry = models["tiny1d"]
    assert entry["genome"] == TINY_1D and entry["input_shape"] == [1, *TINY_1D.frontend.input_shape]
    assert entry["sha256"] == hashlib.sha256((bundle / entry["file"]).read_bytes()).hexdigest()
    assert "latency_ms" in (bundle / "README.md").read_text()
    with pytest.raises(ValueError, match="already holds a bundle"):
        write_bundle({"tiny": TINY}, bundle)


def _results(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_import_without_energy_uses_the_profile_power(bundle, tmp_path):
    results = _results(tmp_path / "r.csv", [["model_id", "latency_ms", "repeats"],
                                            ["tiny", "2.0", "100"], ["tiny1d", "0.5", ""]])
    records = import_results(results, bundle, PROFILES["phone-big-core"], "Pixel 7")
    assert [(r.method, r.energy_mj, r.repeats) for r in records] == [
        ("power_x_time", 3.0, 100), ("power_x_time", 0.75, None)]
    assert records[1].genome == TINY_1D and records[0].dtype == "float32"


def test_import_keeps_measured_energy(bundle, tmp_path):
    results = _results(tmp_path / "r.csv", [["model_id", "latency_ms", "energy_mj"], ["tiny", "2", "0.7"]])
    (record,) = import_results(results, bundle, PROFILES["watch-mcu"], "board")
    assert record.method == "counter" and record.energy_mj == 0.7


@pytest.mark.parametrize("rows, error", [
    ([["model_id"], ["tiny"]], "missing column.*latency_ms"),
    ([["model_id", "latency_ms", "energy_mJ"], ["tiny", "1", "1"]], "unknown column.*energy_mJ"),
    ([["model_id", "latency_ms"], ["tiny", "1"], ["nope", "1"]],
     "line 3, column model_id: unknown model id 'nope'"),
    ([["model_id", "latency_ms"], ["tiny", "fast"]], "line 2, column latency_ms: 'fast' is not a number"),
    ([["model_id", "latency_ms"], ["tiny", "0"]], "line 2, column latency_ms: '0' must be finite and > 0"),
    ([["model_id", "latency_ms"], ["tiny", "nan"]], "line 2, column latency_ms: 'nan' must be finite"),
    ([["model_id", "latency_ms", "energy_mj"], ["tiny", "1", "-2"]], "line 2, column energy_mj: '-2'"),
    ([["model_id", "latency_ms", "energy_mj"], ["tiny", "1", ""]], "line 2, column energy_mj: empty value"),
    ([["model_id", "latency_ms", "repeats"], ["tiny", "1", "2.5"]],
     "column repeats: '2.5' is not an integer"),
    ([["model_id", "latency_ms"], ["tiny", "1"], ["tiny", "2"]],
     "line 3, column model_id: 'tiny' duplicates .*line 2"),
    ([["model_id", "latency_ms"], ["tiny", "1", "9"]], "line 2: expected 2 fields"),
    ([["model_id", "latency_ms"]], "no data rows"),
    ([], "empty file"),
])
def test_import_validation_errors(bundle, tmp_path, rows, error):
    results = _results(tmp_path / "r.csv", rows)
    with pytest.raises(ValueError, match=error):
        import_results(results, bundle, PROFILE, "host")


def test_import_needs_existing_files(bundle, tmp_path):
    results = _results(tmp_path / "r.csv", [["model_id", "latency_ms"], ["tiny", "1"]])
    with pytest.raises(FileNotFoundError, match="no bundle manifest"):
        import_results(results, tmp_path / "nobundle", PROFILE, "host")
    with pytest.raises(FileNotFoundError, match="file not found"):
        import_results(tmp_path / "none.csv", bundle, PROFILE, "host")


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_cli_import_then_fit(bundle, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_energy_commands(parser.add_subparsers(dest="command", required=True))
    results = _results(tmp_path / "r.csv", [["model_id", "latency_ms"], ["tiny", "2"], ["tiny1d", "1"]])
    out = tmp_path / "m.csv"
    argv = ["energy", "import", str(results), "--bundle", str(bundle), "--out", str(out),
            "--profile", "phone-little-core", "--hardware", "Pixel 7 A55"]
    parser.parse_args(argv).func(parser.parse_args(argv))
    assert "imported 2 of 2 bundle models (power_x_time)" in capsys.readouterr().out
    assert [r.energy_mj for r in read_measurements(out)] == pytest.approx([0.6, 0.3])
    argv = ["energy", "fit", str(out), "--out", str(tmp_path / "f.joblib"), "--folds", "2"]
    parser.parse_args(argv).func(parser.parse_args(argv))
    assert ForestEnergyModel.load(tmp_path / "f.joblib").setup["device_profile"] == "phone-little-core"
    with pytest.raises(ValueError, match="already exists"):
        parser.parse_args(argv).func(parser.parse_args(argv))


# ---- sample design and features ----------------------------------------------------------

def test_design_is_distinct_deterministic_and_has_baselines():
    genomes = design(40, seed=1)
    assert list(genomes) == list(design(40, seed=1))
    n = 40 + len(BASELINES) * len(WIDTHS)
    assert len(genomes) == n and len({genome_id(g) for g in genomes.values()}) == n
    assert genomes["mobilenet_v2_x0.50"] == baseline("mobilenet_v2", 0.5)
    assert genomes["ds_cnn_s_x1.00"] == baseline("ds_cnn_s", 1.0, n_classes=10)  # on its own front end
    space = SearchSpace()
    for genome in itertools.islice(genomes.values(), 40):
        space.check(genome)
    assert list(design(0)) == [k for k in genomes if k.startswith(tuple(BASELINES))]


@pytest.mark.parametrize("genome", [TINY, TINY_1D, baseline("mobilenet_v1", 0.25),
                                    baseline("mobilenet_v2", 1.0)])
def test_features_are_fixed_finite_and_consistent(genome):
    features = feature_dict(genome)
    assert tuple(features) == FEATURE_NAMES
    assert all(np.isfinite(v) for v in features.values())
    cost = network_cost(genome)
    assert features["macs"] == cost.macs
    assert features["macs"] == sum(features[f"macs_{k}"] for k in (
        "conv_full", "conv_pointwise", "conv_depthwise", "linear"))
    assert features["representation_1d"] == (genome.frontend.representation == "1d")


def test_feature_matrix_shape():
    assert feature_matrix([TINY, TINY_1D]).shape == (2, len(FEATURE_NAMES))
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))


# ---- the random forest -------------------------------------------------------------------

@pytest.fixture(scope="module")
def training():
    genomes = SearchSpace().sample(60, seed=0)
    # synthetic "measurements": an affine function of MACs and layer count, 3% noise
    rng = np.random.default_rng(0)
    energy = np.array([2e-7 * network_cost(g).macs + 0.02 * len(network_cost(g).layers)
                       for g in genomes]) * rng.lognormal(0, 0.03, len(genomes))
    return genomes, energy


@pytest.mark.parametrize("base", ["operators+tails", "operators", None])
@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_forest_fit_predict_and_spread(training, base):
    genomes, energy = training
    model = ForestEnergyModel({"device_profile": "p", "dtype": "int8"}, base=base, n_estimators=50)
    report = model.cross_validate(genomes, energy, folds=3)
    assert report.n == 60 and 0 <= report.within_10 <= report.within_20 <= 1
    model.fit(genomes[:50], energy[:50])
    kind = "random-forest" if base is None else f"{base}+random-forest"
    assert isinstance(model, EnergyModel) and model.name == f"{kind}(p/int8, n=50)"
    mean, std = model.predict_with_spread(genomes[50:])
    np.testing.assert_allclose(mean, model.predict_mj(genomes[50:]))
    assert np.all(std >= 0) and np.all(mean > 0)
    assert accuracy(energy[50:], mean).r2_log > 0.5  # held out: the forest learnt the trend
    assert model.predict_mj([]).shape == (0,)


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_forest_is_a_scikit_learn_estimator(training):
    """clone, pipelines, cross_val_predict and TransformedTargetRegressor work on it."""
    from sklearn.base import clone
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    from moo_audio.energy.forest import MATRIX_COLUMNS, GenomeFeatures

    genomes, energy = training
    model = ForestEnergyModel({"device_profile": "p"}, n_estimators=20, random_state=3)
    assert clone(model).get_params() == model.get_params() and model.get_params()["n_estimators"] == 20
    X = GenomeFeatures().fit_transform(genomes)
    assert X.shape == (len(genomes), len(MATRIX_COLUMNS))
    assert list(GenomeFeatures().get_feature_names_out()) == list(MATRIX_COLUMNS)
    direct = clone(model).fit(genomes, energy).predict(genomes)
    np.testing.assert_allclose(clone(model).fit(X, energy).predict(X), direct)
    pipeline = make_pipeline(GenomeFeatures(), clone(model)).fit(genomes, energy)
    np.testing.assert_allclose(pipeline.predict(genomes), direct)
    cv = cross_val_predict(clone(model), X, energy, cv=KFold(3, shuffle=True, random_state=0))
    assert cv.shape == energy.shape and accuracy(energy, cv).r2_log > 0.5
    in_microjoules = TransformedTargetRegressor(clone(model), func=lambda y: 1000 * y,
                                                inverse_func=lambda y: y / 1000).fit(X, energy)
    np.testing.assert_allclose(in_microjoules.predict(X), direct, rtol=1e-6)
    with pytest.raises(ValueError, match=f"GenomeFeatures matrix of {len(MATRIX_COLUMNS)} columns"):
        clone(model).fit(X[:, :5], energy)


def test_operator_terms_add_up_to_the_network_costs():
    genome = baseline("mobilenet_v2", 0.5)
    terms, cost = operator_terms(genome), network_cost(genome)
    assert tuple(terms) == OPERATOR_TERM_NAMES and terms["constant"] == 1
    assert sum(terms[f"{k}_macs"] for k in OPERATOR_KINDS) == cost.macs
    assert sum(terms[f"{k}_count"] for k in OPERATOR_KINDS) == len(cost.layers)
    assert terms["conv_depthwise_2d_count"] == 17 and terms["conv_full_1d_count"] == 0
    assert terms["conv_in1_2d_count"] == 1  # the stem on the 1-channel spectrogram
    assert terms["conv_depthwise_2d_lane_macs"] >= terms["conv_depthwise_2d_macs"]
    assert operator_matrix([TINY, TINY_1D]).shape == (2, len(OPERATOR_TERM_NAMES))


def test_operator_kinds_single_channel_and_narrow_convolutions():
    # 2-D: the depthwise conv over the 1-channel input has one output channel; an expansion of 4
    # gives a depthwise conv over 4 channels; a 1x1 conv from 1 channel has one input channel
    genome = Genome(FrontEnd(n_mels=16, win_ms=40, hop_ms=20),
                    (Block("dsconv", 8, 3, 1), Block("mbconv", 8, 3, 1, expansion=4)))
    def conv_counts(g):
        return {k: v for k, v in operator_terms(g).items() if k.startswith("conv") and k.endswith("_count") and v}

    assert conv_counts(genome) == {"conv_out1_2d_count": 1, "conv_in1_2d_count": 1,
                                   "conv_pointwise_2d_count": 2, "conv_depthwise_2d_count": 1}
    narrow = Genome(FrontEnd(n_mels=16, win_ms=40, hop_ms=20), (Block("mbconv", 8, 5, 1, expansion=4),))
    assert conv_counts(narrow) == {"conv_in1_2d_count": 1, "conv_depthwise_narrow_2d_count": 1,
                                   "conv_pointwise_2d_count": 1}
    (dw,) = [c for c in network_cost(narrow).layers if c.layer.groups > 1]
    terms = operator_terms(narrow)
    assert terms["conv_depthwise_narrow_2d_lane_macs"] == dw.macs // 4 * LANES
    assert terms["conv_depthwise_narrow_2d_im2col_elements"] == 0  # depthwise: nothing unfolded


@pytest.mark.parametrize("channels, tail16, tail4", [(16, 0, 0), (24, 8, 0), (6, 6, 2), (43, 11, 3)])
def test_tail_terms_count_the_channels_left_over_beyond_whole_blocks(channels, tail16, tail4):
    genome = Genome(FrontEnd(n_mels=16, win_ms=40, hop_ms=20, representation="1d"), (Block("dsconv", channels, 3, 1),))
    (pointwise,) = [c for c in network_cost(genome).layers if c.layer.op == "conv" and c.layer.taps == 1]
    per_channel = pointwise.macs // channels
    terms = operator_terms(genome)
    assert terms["conv_pointwise_1d_tail16_macs"] == per_channel * tail16
    assert terms["conv_pointwise_1d_tail4_macs"] == per_channel * tail4
    assert terms["conv_pointwise_1d_lane_macs"] == per_channel * (channels + (-channels) % 16)


@pytest.fixture(scope="module")
def wide_sample():
    genomes = SearchSpace().sample(120, seed=0)
    additive = np.array([2e-7 * network_cost(g).macs + 0.02 * len(network_cost(g).layers) for g in genomes])
    return genomes, additive, np.random.default_rng(0).lognormal(0, 0.03, len(genomes))


def test_operator_base_extrapolates_where_the_forest_alone_cannot(wide_sample):
    """Trained on the 90 cheapest networks, predict the 30 dearest (up to 40x the largest training
    energy): a forest alone cannot predict beyond its training range, the operator base can."""
    genomes, additive, noise = wide_sample
    energy = additive * noise
    order = np.argsort(energy)
    train, test = order[:90], order[90:]
    models, reports = {}, {}
    for base in ("operators", None):
        models[base] = ForestEnergyModel(base=base, n_estimators=50).fit([genomes[i] for i in train], energy[train])
        reports[base] = accuracy(energy[test], models[base].predict_mj([genomes[i] for i in test]))
    assert reports["operators"].mape < 0.1 and reports["operators"].within_20 >= 0.9
    assert reports[None].mape > 0.5 and reports[None].within_20 < 0.2
    # the residual is noise: the forest's out-of-bag predictions do not explain it
    assert models["operators"].forest_weight < 0.5 and models[None].forest_weight == 1.0
    _, spread = models["operators"].predict_with_spread([genomes[i] for i in test])
    assert np.all(spread > 0)  # still an uncertainty when the forest's weight is small


def test_forest_weight_follows_a_non_additive_residual(wide_sample):
    genomes, additive, noise = wide_sample
    wide_kernels = np.array([feature_dict(g)["kernel_max"] >= 5 for g in genomes])
    energy = additive * np.where(wide_kernels, 1.6, 1.0) * noise  # a whole-network factor
    model = ForestEnergyModel(n_estimators=50).fit(genomes, energy)
    assert model.forest_weight > 0.8
    assert accuracy(energy, model.predict_mj(genomes)).within_10 > 0.9


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # five networks on purpose
@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_each_base_reads_its_own_operator_terms(training, tmp_path):
    """The ``operators`` base is blind to the leftover-channel terms (a model saved before they
    existed loads and predicts as it did); ``operators+tails`` reads them."""
    genomes, energy = training
    X = GenomeFeatures().transform(genomes)
    tails = [len(FEATURE_NAMES) + OPERATOR_TERM_NAMES.index(t) for t in OPERATOR_TERM_NAMES
             if t.endswith(TAIL_TERMS)]
    assert len(tails) == len(OPERATOR_KINDS) * len(TAIL_TERMS) and X[:, tails].any()
    energy = energy + 2e-6 * X[:, tails].sum(axis=1)  # leftover channels cost more per MAC
    blind = X.copy()
    blind[:, tails] = 0
    for base, changes in (("operators", False), ("operators+tails", True)):
        model = ForestEnergyModel(base=base, n_estimators=20)
        predicted = model.fit(X, energy).predict(X)
        refitted = ForestEnergyModel(base=base, n_estimators=20).fit(blind, energy).predict(blind)
        assert (not np.allclose(refitted, predicted)) == changes
        saved = json.loads((model.save(tmp_path / f"{base}.joblib").parent / f"{base}.joblib.json").read_text())
        assert saved["operator_term_names"] == list(BASES[base])
    assert not any(t.endswith(TAIL_TERMS) for t in BASES["operators"])


def test_operator_base_has_a_floor_where_no_coefficient_applies(tmp_path):
    """Fitted on five networks, the non-negative base gives a sixth zero energy (none of its
    operators got a coefficient): the base's floor keeps the prediction defined and positive."""
    genomes = SearchSpace().sample(40, seed=0)
    train, unseen = [genomes[i] for i in (17, 14, 1, 0, 22)], [genomes[23]]
    energy = np.array([1.017, 1.228, 0.457, 3.409, 2.568])
    model = ForestEnergyModel(base="operators", n_estimators=5).fit(train, energy)
    terms = model._base_terms(GenomeFeatures().transform(unseen))
    assert model.linear_.predict(terms)[0] <= 0  # the case itself
    assert model.base_floor_mj_ == pytest.approx(0.01 * energy.min())
    predicted = model.predict_mj(unseen)
    assert np.isfinite(predicted).all() and predicted[0] > 0
    loaded = ForestEnergyModel.load(model.save(tmp_path / "forest.joblib"))
    np.testing.assert_allclose(loaded.predict_mj(unseen), predicted)


def test_forest_rejects_bad_training_data(training):
    genomes, energy = training
    with pytest.raises(ValueError, match=r"energy_mj\[1\] = -1.0"):
        ForestEnergyModel().fit(genomes[:3], [1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match="got 3 genomes"):
        ForestEnergyModel().fit(genomes[:3], energy[:2])
    with pytest.raises(ValueError, match="not fitted"):
        ForestEnergyModel().predict_mj(genomes[:1])
    with pytest.raises(ValueError, match="unknown base 'linear'"):
        ForestEnergyModel(base="linear")
    with pytest.warns(UserWarning, match="5 measured networks for .* operator terms: the linear base may overfit"):
        ForestEnergyModel(n_estimators=5).fit(genomes[:5], energy[:5])


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_forest_save_load_round_trip_and_refusals(training, tmp_path):
    genomes, energy = training
    records = [_record(f"m{i}", g, e) for i, (g, e) in enumerate(zip(genomes, energy))]
    model = fit_measurements(records, folds=3, n_estimators=30)
    path = model.save(tmp_path / "forest.joblib")
    loaded = ForestEnergyModel.load(path)
    np.testing.assert_array_equal(loaded.predict_mj(genomes), model.predict_mj(genomes))
    assert loaded.cv_report == model.cv_report and loaded.name == model.name
    assert loaded.setup["hardware"] == "cpu X | 2 cores"

    sidecar = tmp_path / "forest.joblib.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "sklearn_version": "0.1.0"}))
    with pytest.warns(UserWarning, match="saved with scikit-learn 0.1.0"):
        ForestEnergyModel.load(path)
    sidecar.write_text(json.dumps({**meta, "feature_names": [*FEATURE_NAMES[:-1], "tempo"]}))
    with pytest.raises(ValueError, match="another feature list.*representation_1d, tempo"):
        ForestEnergyModel.load(path)
    sidecar.write_text(json.dumps({**meta, "operator_term_names": ["constant", "tempo"]}))
    with pytest.raises(ValueError, match="another operator term list"):
        ForestEnergyModel.load(path)
    sidecar.write_text(json.dumps({k: v for k, v in meta.items() if k != "base"}))  # an older version's
    with pytest.raises(ValueError, match="malformed forest metadata.*refitted"):
        ForestEnergyModel.load(path)
    sidecar.write_text(json.dumps({**meta, "base": None}))  # metadata and file disagree
    with pytest.raises(ValueError, match="does not hold a random forest"):
        ForestEnergyModel.load(path)

    alone = fit_measurements(records, folds=3, base=None, n_estimators=20)
    loaded = ForestEnergyModel.load(alone.save(tmp_path / "alone.joblib"))
    assert loaded.base is None and loaded.forest_params["n_estimators"] == 20
    np.testing.assert_array_equal(loaded.predict_mj(genomes), alone.predict_mj(genomes))
    with pytest.raises(FileNotFoundError):
        ForestEnergyModel.load(tmp_path / "none.joblib")


def test_fit_measurements_refuses_mixed_setups(training):
    genomes, _ = training
    records = [_record("a", genomes[0], 1.0), _record("b", genomes[1], 2.0, hardware="other")]
    with pytest.raises(ValueError, match="mix hardware values"):
        fit_measurements(records, folds=2)


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")  # tiny tables on purpose
def test_no_warnings_on_load(training, tmp_path):
    genomes, energy = training
    path = ForestEnergyModel(n_estimators=5).fit(genomes, energy).save(tmp_path / "f.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ForestEnergyModel.load(path)


# ---- the packaged model (issue 15) -----------------------------------------------------------------
def test_searches_predict_energy_with_the_packaged_forest(tmp_path, monkeypatch):
    from moo_audio.energy.packaged import DEFAULT_MODEL, load_packaged, provenance, table_sha256
    from moo_audio.problem_files import load_problem, shipped_spaces

    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path))
    load_packaged.cache_clear()
    spec = load_problem("builtin")
    model = spec.energy_model()
    assert model.name.startswith(f"packaged {DEFAULT_MODEL}: operators+random-forest(host-cpu-core/int8")
    assert spec.energy_fingerprint().endswith(table_sha256())
    info = provenance()
    assert info["networks"] >= 500 and set(info["spaces"]) == set(shipped_spaces())
    assert {"hardware", "runtime", "dtype", "threads", "timing", "created", "cv_report"} <= set(info)
    assert list((tmp_path / "energy").glob("*.joblib"))  # fitted once, then read from the cache
    energy = model.predict_mj([baseline("ds_cnn_s", n_classes=12), baseline("mobilenet_v2", 1.0)])
    assert 0 < energy[0] < energy[1]
    load_packaged.cache_clear()


def test_a_problem_file_refits_the_packaged_table_with_another_base(tmp_path, monkeypatch):
    from moo_audio.energy.packaged import DEFAULT_MODEL, load_packaged, provenance
    from moo_audio.problem_files import parse_problem

    monkeypatch.setenv("MOO_AUDIO_CACHE", str(tmp_path))
    load_packaged.cache_clear()
    other = next(b for b in ("operators+tails", "operators") if b != provenance()["forest_params"]["base"])
    text = f'name = "e"\n[dataset]\nname = "builtin"\n[energy]\nbase = "{other}"\n'
    spec = parse_problem(text, tmp_path / "e.toml")
    model = spec.energy_model()
    assert model.base == other and model.name.startswith(f"packaged {DEFAULT_MODEL}: {other}+random-forest(")
    assert model.cv_report.n == provenance()["networks"]  # cross-validated on its first fit, not the provenance's
    assert spec.energy_fingerprint() != parse_problem(text.replace(f'base = "{other}"', ""),
                                                      tmp_path / "e.toml").energy_fingerprint()
    assert len(list((tmp_path / "energy").glob("*.joblib"))) == 2  # one cached fit per base
    with pytest.raises(ValueError, match="unknown base 'cubic'"):
        load_packaged(DEFAULT_MODEL, "cubic")
    load_packaged.cache_clear()


@pytest.mark.filterwarnings("ignore:.*the linear base may overfit")
def test_a_forest_warns_far_outside_what_it_was_measured_on(training):
    from moo_audio.energy.forest import EnergyExtrapolationWarning

    genomes, energy = training
    model = ForestEnergyModel(n_estimators=10).fit(genomes, energy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict_mj(genomes[:3])  # inside: quiet
    huge = baseline("mobilenet_v1", 4.0)
    with pytest.warns(EnergyExtrapolationWarning, match="1 of 2 network.*far outside.*moo-audio energy measure"):
        model.predict_mj([genomes[0], huge])
    assert model.outside([genomes[0], huge])[0] == "" and model.outside([huge])[0]


def test_energy_section_of_problem_files(tmp_path):
    from moo_audio.problem_files import ProblemFileError, parse_problem

    base = 'name = "e"\n[dataset]\nname = "builtin"\n'
    assert parse_problem(base, tmp_path / "e.toml").energy == {"model": "forest", "packaged": "onnxruntime-int8"}
    with pytest.raises(ProblemFileError, match="energy.packaged: unknown packaged energy model 'nope'"):
        parse_problem(base + '[energy]\npackaged = "nope"\n', tmp_path / "e.toml")
    with pytest.raises(ProblemFileError, match="not both"):
        parse_problem(base + '[energy]\npackaged = "onnxruntime-int8"\npath = "f.joblib"\n', tmp_path / "e.toml")
    with pytest.raises(ProblemFileError, match="not both"):
        parse_problem(base + '[energy]\nbase = "operators"\npath = "f.joblib"\n', tmp_path / "e.toml")
    assert parse_problem(base + '[energy]\nmodel = "analytic"\n', tmp_path / "e.toml").energy == {"model": "analytic"}


# ---- host speed calibration -----------------------------------------------------------------------
def test_calibration_networks_are_in_the_packaged_table():
    from moo_audio.energy.calibration import calibration_genomes
    from moo_audio.energy.packaged import packaged_measurements, provenance
    from moo_audio.problem_files import shipped_spaces

    names = provenance()["spaces"]
    assert list(names) == list(shipped_spaces())  # the table's first space is the first shipped one
    table = {m.model_id: m.genome for m in packaged_measurements("onnxruntime-int8")}
    calibration = calibration_genomes(list(shipped_spaces().values()))
    assert len(calibration) == len(BASELINES) * len(WIDTHS)
    assert all(table[k] == g for k, g in calibration.items())
    narrow = calibration_genomes(list(shipped_spaces().values()), widths=(0.25,))
    assert narrow == {k: g for k, g in calibration.items() if k.endswith("_x0.25")} and len(narrow) == len(BASELINES)
    with pytest.raises(ValueError, match=r"calibration widths must be some of .*got \(0.3,\)"):
        calibration_genomes(list(shipped_spaces().values()), widths=(0.3,))


def test_host_speed_is_the_geometric_mean_of_measured_over_predicted():
    from moo_audio.energy.calibration import host_speed

    genomes = {f"b{i}": replace(TINY, blocks=(Block("conv", 8 * (i + 1), 3, 1),)) for i in range(4)}
    model = AnalyticEnergyModel()
    predicted = model.predict_mj(list(genomes.values()))
    ratios = np.array([0.6, 0.7, 0.7, 0.8])
    records = [_record(k, g, float(p * q)) for (k, g), p, q in zip(genomes.items(), predicted, ratios)]
    speed = host_speed(records, model)
    assert speed.factor == pytest.approx(np.exp(np.log(ratios).mean()))
    assert speed.interval[0] <= speed.factor <= speed.interval[1] and 0.6 <= speed.interval[0]
    assert speed.ratios["b3"] == pytest.approx(0.8)
    np.testing.assert_allclose(speed.apply(predicted), predicted * speed.factor)
    assert speed.median_error(predicted * speed.factor * 1.1, predicted) == pytest.approx(0.1)
    assert "of 4 calibration networks" in str(speed)
    with pytest.raises(ValueError, match="at least 3 measured calibration networks, got 2"):
        host_speed(records[:2], model)


def test_measure_calibrated_measures_calibration_networks_only_for_a_packaged_model(monkeypatch):
    from moo_audio.energy import calibration
    from moo_audio.energy.packaged import load_packaged

    packaged, asked = load_packaged(), []

    def fake_measure(genomes, profile, **kwargs):  # every network measured at 0.5x the packaged prediction
        asked.append(list(genomes))
        energy = packaged.predict_mj(list(genomes.values())) * 0.5
        return [_record(k, g, float(e)) for (k, g), e in zip(genomes.items(), energy)]

    monkeypatch.setattr(calibration, "measure_genomes", fake_measure)
    records, speed = calibration.measure_calibrated([TINY, TINY], packaged, load_profile("host-cpu-core"),
                                                    widths=(0.25,))
    assert list(records) == [genome_id(TINY)] and len(asked[-1]) == 1 + len(BASELINES)
    assert speed.factor == pytest.approx(0.5) and len(speed.ratios) == len(BASELINES)
    records, speed = calibration.measure_calibrated([TINY], AnalyticEnergyModel(), load_profile("host-cpu-core"))
    assert speed is None and asked[-1] == [genome_id(TINY)]
