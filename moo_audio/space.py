"""The search space: one genome describes a whole always-on audio classifier.

A :class:`Genome` is a front end (log-mel settings and the ``2d``/``1d`` representation), a body
of :class:`Block` s and a fixed head (global average pooling + linear classifier). The
:class:`SearchSpace` exposes genomes three ways:

* pymoo mixed variables (:meth:`SearchSpace.pymoo_vars`, for ``MixedVariableGA``),
* a bijective encoding to and from the unit cube (:meth:`SearchSpace.encode` /
  :meth:`SearchSpace.decode`, for Bayesian optimisation and particle swarms),
* a readable dict / JSON form (:meth:`Genome.to_dict` / :meth:`Genome.from_dict`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.core.variable import Binary, Choice, Integer

from moo_audio.encoding import UnitCubeEncoder

BLOCK_TYPES = ("conv", "dsconv", "mbconv")
REPRESENTATIONS = ("2d", "1d")
#: front-end genes: ``FrontEnd`` field -> the ``SearchSpace`` field listing its choices
FRONTEND_GENES = {"clip_ms": "clip_ms", "n_mels": "n_mels", "win_ms": "win_ms", "hop_ms": "hop_ms",
                  "representation": "representations"}
#: genes of each block slot ``b{i}_<gene>``: ``Block`` field -> the ``SearchSpace`` field listing its
#: choices, ``None`` for a boolean gene
BLOCK_GENES = {"type": "block_types", "channels": "channels", "kernel": "kernels", "stride": "strides",
               "expansion": "expansions", "pool": None, "skip": None}
#: the ``SearchSpace`` fields that list choices
CHOICE_FIELDS = (*FRONTEND_GENES.values(), *(f for f in BLOCK_GENES.values() if f is not None))


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel front end. Window and hop are in milliseconds, the clip in milliseconds.

    ``representation='2d'`` feeds the log-mel as a 1-channel image to 2-D convolutions,
    ``'1d'`` feeds mel bins as channels to 1-D convolutions over time.
    """

    sample_rate: int = 16000
    clip_ms: int = 1000
    n_mels: int = 40
    win_ms: int = 25
    hop_ms: int = 10
    representation: str = "2d"

    def __post_init__(self):
        for name in ("sample_rate", "clip_ms", "n_mels", "win_ms", "hop_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"front end: {name} must be a positive integer, got {value!r}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"front end: unknown representation {self.representation!r}; "
                f"expected one of {REPRESENTATIONS}"
            )
        if self.hop_ms > self.win_ms:
            raise ValueError(f"front end: hop_ms={self.hop_ms} exceeds win_ms={self.win_ms}")
        if self.win_ms > self.clip_ms:
            raise ValueError(f"front end: win_ms={self.win_ms} exceeds clip_ms={self.clip_ms}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(
                f"front end: n_mels={self.n_mels} exceeds the {self.n_fft // 2 + 1} "
                f"frequency bins of a {self.win_ms} ms window at {self.sample_rate} Hz"
            )

    @property
    def n_samples(self) -> int:
        return self.sample_rate * self.clip_ms // 1000

    @property
    def win_length(self) -> int:
        return self.sample_rate * self.win_ms // 1000

    @property
    def hop_length(self) -> int:
        return self.sample_rate * self.hop_ms // 1000

    @property
    def n_fft(self) -> int:
        """Smallest power of two that holds the window."""
        return 1 << max(0, math.ceil(math.log2(self.win_length)))

    @property
    def n_frames(self) -> int:
        """Frames of a centred STFT (torchaudio's default ``center=True``)."""
        return self.n_samples // self.hop_length + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example as the network sees it (no batch dimension)."""
        if self.representation == "2d":
            return (1, self.n_mels, self.n_frames)
        return (self.n_mels, self.n_frames)

    def feature_key(self) -> tuple[int, int, int, int, int]:
        """What determines the log-mel tensor (the representation only reshapes it)."""
        return (self.sample_rate, self.clip_ms, self.n_mels, self.win_ms, self.hop_ms)


@dataclass(frozen=True)
class Block:
    """One body block.

    Args:
        type: ``conv`` (plain convolution), ``dsconv`` (depthwise-separable) or ``mbconv``
            (inverted residual: 1x1 expand, depthwise, 1x1 linear project).
        channels: output channels.
        kernel: kernel size: an integer (square for 2-D), or ``(freq, time)`` for a 2-D rectangle (the
            first layer of DS-CNN, say; search spaces use square kernels).
        stride: stride of the (depthwise) convolution: an integer, or ``(freq, time)``.
        expansion: expansion ratio of ``mbconv`` (1 means no expand layer); must be 1 otherwise.
        pool: 2x max pooling after the block.
        skip: residual connection, used only where the block's input and output shapes match.
    """

    type: str
    channels: int
    kernel: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    expansion: int = 1
    pool: bool = False
    skip: bool = False

    def __post_init__(self):
        if self.type not in BLOCK_TYPES:
            raise ValueError(f"unknown block type {self.type!r}; expected one of {BLOCK_TYPES}")
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                if len(value) != 2 or not all(_positive_int(v) for v in value):
                    raise ValueError(f"block {name} must be a positive integer or two of them "
                                     f"(freq, time), got {value!r}")
                object.__setattr__(self, name, tuple(int(v) for v in value))
            elif not _positive_int(value):
                raise ValueError(f"block {name} must be a positive integer, got {value!r}")
        for name in ("channels", "expansion"):
            if not _positive_int(getattr(self, name)):
                raise ValueError(f"block {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.type != "mbconv" and self.expansion != 1:
            raise ValueError(f"expansion={self.expansion} is only meaningful for mbconv blocks")
        for name in ("pool", "skip"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"block {name} must be true or false, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Genome:
    """A whole classifier: front end, body blocks, and the number of classes of the head."""

    frontend: FrontEnd
    blocks: tuple[Block, ...]
    n_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ValueError("a genome needs at least one block")
        if not isinstance(self.n_classes, (int, np.integer)) or self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.frontend.representation == "1d" and any(
                isinstance(v, tuple) for b in self.blocks for v in (b.kernel, b.stride)):
            raise ValueError("a 1-D genome takes integer kernels and strides, not (freq, time) pairs")

    def to_dict(self) -> dict[str, Any]:
        return {
            "frontend": asdict(self.frontend),
            "blocks": [asdict(b) for b in self.blocks],
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genome:
        """Parse the dict form; a missing or unknown field is named in the error."""
        _require_fields(data, ("frontend", "blocks", "n_classes"), "genome")
        _reject_unknown(data, ("frontend", "blocks", "n_classes"), "genome")
        _require_fields(data["frontend"], tuple(FrontEnd.__dataclass_fields__), "genome.frontend")
        _reject_unknown(data["frontend"], FrontEnd.__dataclass_fields__, "genome.frontend")
        if not isinstance(data["blocks"], Sequence) or isinstance(data["blocks"], str):
            raise ValueError("genome.blocks must be a list of blocks")
        blocks = []
        for i, b in enumerate(data["blocks"]):
            _require_fields(b, ("type", "channels", "kernel", "stride"), f"genome.blocks[{i}]")
            _reject_unknown(b, Block.__dataclass_fields__, f"genome.blocks[{i}]")
            blocks.append(Block(**b))
        return cls(FrontEnd(**data["frontend"]), tuple(blocks), data["n_classes"])

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @cached_property
    def key(self) -> str:
        """The genome's identity: its JSON with sorted keys (equal genomes, equal keys)."""
        return self.to_json(sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Genome:
        return cls.from_dict(json.loads(text))


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def per_dim(value: int | tuple[int, ...], rank: int) -> tuple[int, ...]:
    """A kernel or stride per spatial dimension: an integer repeated, or the given pair (2-D only)."""
    if isinstance(value, tuple):
        if len(value) != rank:
            raise ValueError(f"a {len(value)}-D kernel or stride {value} on a {rank}-D input")
        return value
    return (int(value),) * rank


def _require_fields(data: Any, fields: Sequence[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{where} is missing field(s): {', '.join(missing)}")


def _reject_unknown(data: Mapping[str, Any], allowed, where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{where} has unknown field(s): {', '.join(unknown)}")


def _conv_out(size: int, stride: int) -> int:
    """Output length of a 'same'-padded convolution or a ceil-mode pooling."""
    return -(-size // stride)


@dataclass(frozen=True)
class SearchSpace:
    """Bounds of the search. All choices are explicit lists so that files can state them."""

    sample_rate: int = 16000
    n_classes: int = 10
    clip_ms: tuple[int, ...] = (1000,)
    n_mels: tuple[int, ...] = (16, 20, 32, 40, 64)
    win_ms: tuple[int, ...] = (20, 25, 32, 40)
    hop_ms: tuple[int, ...] = (10, 16, 20)
    representations: tuple[str, ...] = REPRESENTATIONS
    max_blocks: int = 6
    min_blocks: int = 1
    block_types: tuple[str, ...] = BLOCK_TYPES
    channels: tuple[int, ...] = (8, 16, 24, 32, 48, 64, 96, 128)
    kernels: tuple[int, ...] = (3, 5, 7)
    strides: tuple[int, ...] = (1, 2)
    expansions: tuple[int, ...] = (1, 2, 4, 6)
    _encoder: UnitCubeEncoder = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in CHOICE_FIELDS:
            values = tuple(getattr(self, name))
            if not values:
                raise ValueError(f"search space: {name} needs at least one value")
            object.__setattr__(self, name, values)
        if not 1 <= self.min_blocks <= self.max_blocks:
            raise ValueError(
                f"search space: need 1 <= min_blocks <= max_blocks, got {self.min_blocks}, {self.max_blocks}"
            )
        for t in self.block_types:
            if t not in BLOCK_TYPES:
                raise ValueError(f"search space: unknown block type {t!r}; expected one of {BLOCK_TYPES}")
        for r in self.representations:
            if r not in REPRESENTATIONS:
                raise ValueError(f"search space: unknown representation {r!r}")
        for name in CHOICE_FIELDS:
            if name not in ("representations", "block_types") and any(int(v) < 1 for v in getattr(self, name)):
                raise ValueError(f"search space: {name} must all be positive, got {getattr(self, name)}")
        object.__setattr__(self, "_encoder", UnitCubeEncoder(self.pymoo_vars()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        allowed = [f for f in cls.__dataclass_fields__ if not f.startswith("_")]
        _reject_unknown(data, allowed, "search space")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    # ---- pymoo mixed variables -------------------------------------------------------
    def pymoo_vars(self) -> dict[str, Any]:
        """Variables for pymoo's mixed-variable algorithms (``Problem(vars=...)``)."""
        v: dict[str, Any] = {gene: Choice(options=list(getattr(self, choices)))
                             for gene, choices in FRONTEND_GENES.items()}
        v["n_blocks"] = Integer(bounds=(self.min_blocks, self.max_blocks))
        for i in range(self.max_blocks):
            for gene, choices in BLOCK_GENES.items():
                v[f"b{i}_{gene}"] = Binary() if choices is None else Choice(options=list(getattr(self, choices)))
        return v

    @property
    def n_var(self) -> int:
        return self._encoder.n_dims

    def to_assignment(self, genome: Genome) -> dict[str, Any]:
        """Genome -> variable assignment; inactive genes (block slots past the last block, the
        expansion of a block that is not ``mbconv``) get the first choice, their canonical value."""
        self.check(genome)
        a: dict[str, Any] = {gene: getattr(genome.frontend, gene) for gene in FRONTEND_GENES}
        a["n_blocks"] = len(genome.blocks)
        for i in range(self.max_blocks):
            block = genome.blocks[i] if i < len(genome.blocks) else None
            for gene, choices in BLOCK_GENES.items():
                active = block is not None and (gene != "expansion" or block.type == "mbconv")
                if choices is None:
                    a[f"b{i}_{gene}"] = bool(getattr(block, gene)) if active else False
                else:
                    a[f"b{i}_{gene}"] = getattr(block, gene) if active else getattr(self, choices)[0]
        return a

    def from_assignment(self, a: Mapping[str, Any], repair: bool = True) -> Genome:
        """Variable assignment -> genome (repaired to be buildable unless ``repair=False``)."""
        if repair:
            fe = self._valid_frontend(a)
        else:
            fe = FrontEnd(sample_rate=self.sample_rate, **{g: str(a[g]) if g == "representation" else int(a[g])
                                                           for g in FRONTEND_GENES})
        blocks = []
        for i in range(int(a["n_blocks"])):
            genes = {g: a[f"b{i}_{g}"] for g in BLOCK_GENES}
            btype = str(genes.pop("type"))
            values = {g: bool(v) if BLOCK_GENES[g] is None else int(v) for g, v in genes.items()}
            if btype != "mbconv":
                values["expansion"] = 1
            blocks.append(Block(type=btype, **values))
        genome = Genome(fe, tuple(blocks), self.n_classes)
        return self.repair(genome) if repair else genome

    def _valid_frontend(self, a: Mapping[str, Any]) -> FrontEnd:
        """Front end with the hop clipped to the window and mel bins to the FFT size."""
        win = int(a["win_ms"])
        hop = min(int(a["hop_ms"]), win)
        n_fft_bins = FrontEnd(self.sample_rate, int(a["clip_ms"]), 1, win, hop).n_fft // 2 + 1
        return FrontEnd(self.sample_rate, int(a["clip_ms"]), min(int(a["n_mels"]), n_fft_bins),
                        win, hop, str(a["representation"]))

    # ---- unit cube ---------------------------------------------------------------------
    def encode(self, genome: Genome) -> np.ndarray:
        """Genome -> canonical point of ``[0,1]^n_var``; ``decode(encode(g)) == g``."""
        return self._encoder.encode(self.to_assignment(genome))

    def decode(self, x: np.ndarray) -> Genome:
        """Any point of the unit cube -> a valid (repaired) genome."""
        return self.from_assignment(self._encoder.decode(x))

    # ---- validity ------------------------------------------------------------------------
    def check(self, genome: Genome) -> None:
        """Raise ``ValueError`` naming the first gene that lies outside this space."""
        fe = genome.frontend
        if genome.n_classes != self.n_classes:
            raise ValueError(f"genome has {genome.n_classes} classes, the space {self.n_classes}")
        if fe.sample_rate != self.sample_rate:
            raise ValueError(f"genome sample rate {fe.sample_rate} Hz, the space {self.sample_rate} Hz")
        for gene, choices in FRONTEND_GENES.items():
            if getattr(fe, gene) not in getattr(self, choices):
                raise ValueError(f"front end {gene}={getattr(fe, gene)!r} is not one of {list(getattr(self, choices))}")
        if not self.min_blocks <= len(genome.blocks) <= self.max_blocks:
            raise ValueError(f"{len(genome.blocks)} blocks, the space allows "
                             f"{self.min_blocks}..{self.max_blocks}")
        for i, b in enumerate(genome.blocks):
            for gene, choices in BLOCK_GENES.items():
                if choices is None or (gene == "expansion" and b.type != "mbconv"):
                    continue
                if getattr(b, gene) not in getattr(self, choices):
                    raise ValueError(f"block {i} {gene}={getattr(b, gene)!r} is not one of "
                                     f"{list(getattr(self, choices))}")

    def repair(self, genome: Genome) -> Genome:
        """Make a genome buildable and canonical.

        Downsampling (stride 2 or pooling) is dropped once every spatial dimension has reached
        1, since it can no longer shrink anything and would only waste a layer's padding.
        """
        fe = genome.frontend
        size = [fe.n_mels, fe.n_frames] if fe.representation == "2d" else [fe.n_frames]
        blocks = []
        min_stride = min(self.strides)
        for b in genome.blocks:
            if all(d == 1 for d in size):
                b = replace(b, stride=min_stride, pool=False)
            size = [_conv_out(d, s) for d, s in zip(size, per_dim(b.stride, len(size)))]
            if b.pool and all(d == 1 for d in size):
                b = replace(b, pool=False)
            if b.pool:
                size = [_conv_out(d, 2) for d in size]
            blocks.append(b)
        return Genome(fe, tuple(blocks), genome.n_classes)

    def to_x(self, genomes: Sequence[Genome], mixed: bool = False) -> np.ndarray:
        """Genomes -> pymoo design matrix: unit-cube rows, or (``mixed``) an object array of dicts."""
        if mixed:
            return np.array([self.to_assignment(g) for g in genomes], dtype=object)
        return np.stack([self.encode(g) for g in genomes])

    def from_x(self, X: np.ndarray) -> list[Genome]:
        """pymoo design matrix (unit-cube rows or dicts) -> repaired genomes."""
        X = np.asarray(X)
        if X.dtype == object and X.ndim == 1:
            return [self.from_assignment(a) for a in X]
        return [self.decode(x) for x in np.atleast_2d(X).astype(float)]

    def sample(self, n: int, seed: int | None = None) -> list[Genome]:
        """``n`` random valid genomes (uniform over the variables, then repaired)."""
        rng = np.random.default_rng(seed)
        return [self.decode(x) for x in rng.random((n, self.n_var))]


class GenomeSampling(Sampling):
    """pymoo sampling of random valid genomes of ``problem.space``.

    Args:
        mixed: produce dicts (for ``MixedVariableGA``) instead of unit-cube rows.
    """

    def __init__(self, mixed: bool = False):
        super().__init__()
        self.mixed = mixed

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        rng = random_state if random_state is not None else np.random.default_rng()
        genomes = problem.space.sample(n_samples, seed=int(rng.integers(2**31 - 1)))
        return problem.space.to_x(genomes, mixed=self.mixed)


class GenomeRepair(Repair):
    """pymoo repair that snaps every candidate of ``problem.space`` to its canonical genome."""

    def _do(self, problem, X, **kwargs):
        X = np.asarray(X)
        mixed = X.dtype == object and X.ndim == 1
        return problem.space.to_x(problem.space.from_x(X), mixed=mixed)
