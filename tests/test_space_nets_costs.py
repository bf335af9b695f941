"""Search space, network builder and analytic costs (issue 2)."""

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from moo_audio.costs import network_cost
from moo_audio.nets import WIDTHS, baseline, build, mobilenet_v1, mobilenet_v2, plan
from moo_audio.space import Block, FrontEnd, Genome, SearchSpace

SPACE = SearchSpace()
GENOMES = SPACE.sample(200, seed=1)


def _independent_counts(genome):
    module = build(genome).eval()
    x = torch.randn(2, *genome.frontend.input_shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        logits = module(x)
    n_params = sum(p.numel() for p in module.parameters())
    return counter.get_total_flops() / 2 / 2, n_params, logits  # FLOPs / 2 per MAC / batch of 2


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("width", WIDTHS)
def test_baseline_costs_match_independent_count(name, width):
    genome = baseline(name, width, FrontEnd(n_mels=40), n_classes=12)
    macs, n_params, logits = _independent_counts(genome)
    cost = network_cost(genome)
    assert abs(cost.macs - macs) / macs < 0.01
    assert cost.params == n_params
    assert logits.shape == (2, 12)


def test_random_genomes_build_run_and_match_counts():
    for genome in GENOMES:
        macs, n_params, logits = _independent_counts(genome)
        cost = network_cost(genome)
        assert abs(cost.macs - macs) <= 0.01 * macs, genome
        assert cost.params == n_params, genome
        assert logits.shape == (2, genome.n_classes) and torch.isfinite(logits).all()


def test_sampling_is_valid_and_diverse():
    for genome in GENOMES:
        SPACE.check(genome)
        assert SPACE.repair(genome) == genome
    assert len({g.to_json() for g in GENOMES}) == len(GENOMES)
    assert {g.frontend.representation for g in GENOMES} == {"1d", "2d"}
    assert {len(g.blocks) for g in GENOMES} == set(range(1, SPACE.max_blocks + 1))
    assert {b.type for g in GENOMES for b in g.blocks} == {"conv", "dsconv", "mbconv"}


def test_encode_decode_round_trip_exactly():
    for genome in GENOMES:
        x = SPACE.encode(genome)
        assert x.shape == (SPACE.n_var,) and np.all((0 < x) & (x < 1))
        assert SPACE.decode(x) == genome
        np.testing.assert_array_equal(SPACE.encode(SPACE.decode(x)), x)


def spatial_dims(genome: Genome) -> list[tuple[int, ...]]:
    """Spatial size after each block, from the network's layer plan."""
    last = {}
    for layer in plan(genome).layers:
        if layer.name.startswith("b"):
            last[layer.name.split(".")[0]] = layer.out_shape[1:]
    return list(last.values())


def test_every_point_of_the_cube_decodes_to_a_valid_genome():
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 2, size=(50, SPACE.n_var)).astype(float)
    for x in np.vstack([corners, rng.random((50, SPACE.n_var))]):
        genome = SPACE.decode(x)
        SPACE.check(genome)
        assert all(d >= 1 for dims in spatial_dims(genome) for d in dims)


def test_json_round_trip():
    for genome in GENOMES[:20]:
        assert Genome.from_json(genome.to_json()) == genome
        assert Genome.from_dict(json.loads(json.dumps(genome.to_dict()))) == genome


def test_repair_drops_downsampling_once_dimensions_reach_one():
    fe = FrontEnd(n_mels=16, hop_ms=20, representation="1d")  # 51 frames
    genome = Genome(fe, tuple(Block("conv", 8, 3, 2, pool=True) for _ in range(6)))
    repaired = SPACE.repair(genome)
    dims = spatial_dims(repaired)
    assert dims[-1] == (1,)
    # once time is 1, later blocks neither stride nor pool
    first_one = next(i for i, d in enumerate(dims) if d == (1,))
    assert all(b.stride == 1 and not b.pool for b in repaired.blocks[first_one + 1:])


@pytest.mark.parametrize("change, message", [
    (lambda d: d["blocks"][0].update(type="lstm"), "unknown block type 'lstm'"),
    (lambda d: d["blocks"][0].update(channels=-8), "channels must be a positive integer"),
    (lambda d: d.pop("n_classes"), "missing field(s): n_classes"),
    (lambda d: d["frontend"].pop("n_mels"), "genome.frontend is missing field(s): n_mels"),
    (lambda d: d["blocks"][0].pop("kernel"), "genome.blocks[0] is missing field(s): kernel"),
    (lambda d: d["blocks"][0].update(colour="red"), "unknown field(s): colour"),
    (lambda d: d["frontend"].update(representation="3d"), "unknown representation '3d'"),
    (lambda d: d["blocks"][0].update(type="conv", expansion=4), "only meaningful for mbconv"),
])
def test_bad_genomes_get_clear_errors(change, message):
    data = mobilenet_v2(0.5).to_dict()
    change(data)
    with pytest.raises(ValueError) as info:
        Genome.from_dict(data)
    assert message in str(info.value)


def test_peak_activation_of_a_residual_block_counts_the_skip_branch():
    fe = FrontEnd(n_mels=16, representation="1d")  # input 16 x 101
    genome = Genome(fe, (Block("mbconv", 16, 3, 1, expansion=4, skip=True),), n_classes=2)
    cost = network_cost(genome)
    names = [c.layer.name for c in cost.layers]
    assert names == ["b0.expand", "b0.dw", "b0.project", "b0.add", "gap", "classifier"]
    t = 101
    x, hidden, out = 16 * t, 64 * t, 16 * t
    live = {c.layer.name: c.live_elements for c in cost.layers}
    assert live["b0.expand"] == x + hidden
    assert live["b0.dw"] == x + 2 * hidden          # input kept alive for the residual add
    assert live["b0.project"] == x + hidden + out
    assert live["b0.add"] == x + out + out
    assert cost.peak_activation_bytes("int8") == x + 2 * hidden
    assert cost.peak_activation_bytes("float32") == 4 * (x + 2 * hidden)


def test_weight_memory_folds_batch_norm():
    genome = Genome(FrontEnd(n_mels=16, representation="1d"), (Block("conv", 8, 3, 1),), 2)
    cost = network_cost(genome)
    conv_w, conv_b, fc_w, fc_b = 8 * 16 * 3, 8, 8 * 2, 2
    assert cost.weight_bytes("int8") == conv_w + fc_w + 4 * (conv_b + fc_b)
    assert cost.weight_bytes("float32") == 4 * (conv_w + fc_w + conv_b + fc_b)
    assert cost.params == conv_w + 2 * 8 + fc_w + fc_b  # torch: BN scale+shift, no conv bias


def test_wide_first_convolution_on_2d_spectrogram_dominates():
    """The 2-D image through a wide first convolution costs more than a whole 1-D network."""
    body = (Block("conv", 64, 3, 1), Block("dsconv", 64, 3, 2), Block("dsconv", 64, 3, 2))
    cost = {rep: network_cost(Genome(FrontEnd(n_mels=40, representation=rep), body))
            for rep in ("2d", "1d")}
    assert cost["2d"].first_layer_macs > cost["1d"].macs
    assert cost["2d"].macs > 5 * cost["1d"].macs
    arena = [c.live_elements for c in cost["2d"].layers]
    assert arena.index(max(arena)) <= 1  # the peak sits right after the wide first layer


def test_frontend_cost_grows_with_resolution():
    coarse = network_cost(Genome(FrontEnd(n_mels=16, hop_ms=20), (Block("conv", 8),))).frontend
    fine = network_cost(Genome(FrontEnd(n_mels=64, hop_ms=10), (Block("conv", 8),))).frontend
    assert 0 < coarse.macs < fine.macs


def test_plan_shapes_follow_strides():
    genome = mobilenet_v1(0.25, FrontEnd(n_mels=40))
    layers = plan(genome).layers
    assert layers[0].out_shape == (8, 20, 51)
    assert layers[-1].out_shape == (10,)


def test_space_rejects_bad_bounds():
    with pytest.raises(ValueError, match="unknown block type"):
        SearchSpace(block_types=("conv", "gru"))
    with pytest.raises(ValueError, match="channels must all be positive"):
        SearchSpace(channels=(8, -1))
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        SearchSpace(min_blocks=4, max_blocks=2)
