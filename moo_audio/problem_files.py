"""Problem files: an :class:`~moo_audio.problem.AudioNASProblem` declared in TOML.

A problem file names the dataset and its loader options, the search-space bounds, the energy model,
the objectives, the constraints, the training budget and stopping rules, the seed, and defaults for
``moo-audio search`` (algorithm, evaluations, workers, algorithm options) and for the report
(baselines). ``problems/builtin.toml`` documents every key; ``docs/user_guide.md`` lists them.

Files are loaded by path or by name (``builtin`` -> ``builtin.toml``, looked up in ``./problems``
and then among the problem files shipped inside the package, ``moo_audio/problems``; the
checkout's top-level ``problems/`` links to that folder). Loading checks
every key and type against the classes the values are passed to (``SearchSpace``, ``Constraints``,
``TrainBudget``, the dataset loader) and raises :class:`ProblemFileError` naming the file and the
key. Data is not touched until :meth:`ProblemSpec.check_data` or :meth:`ProblemSpec.load_dataset`,
so a file for data you do not have still validates.

Path options (``dataset.root``, ``dataset.segments``, ``dataset.ontology``, ``energy.path``) expand
``${VAR}``, ``${VAR:-default}`` and ``~``, and a relative path is relative to the problem file.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from moo_audio.algorithms.registry import ALGORITHM_NAMES
from moo_audio.augment import Augmentation
from moo_audio.costs import DTYPES
from moo_audio.nets import BASELINES
from moo_audio.objectives import OBJECTIVE_NAMES
from moo_audio.problem import Constraints
from moo_audio.space import FrontEnd, Genome, SearchSpace
from moo_audio.training import DEFAULT_STOPPING, STOPPING_RULES, TrainBudget

#: dataset loader options that are paths
PATH_OPTIONS = ("root", "segments", "ontology")
#: SearchSpace fields a problem file may set; the rate, classes and clip length come from the dataset
SPACE_KEYS = tuple(f.name for f in fields(SearchSpace)
                   if f.init and f.name not in ("sample_rate", "n_classes", "clip_ms"))
ENERGY_MODELS = ("analytic", "forest")
#: ``[training]`` keys that are options of AudioNASProblem rather than of TrainBudget
PROBLEM_OPTIONS = ("threads", "folds")
_TOP_KEYS = ("name", "description", "seed", "objectives", "dataset", "space", "energy", "constraints",
             "training", "search", "algorithms", "report")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


class ProblemFileError(ValueError):
    """A problem file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class SearchDefaults:
    """``[search]``: what ``moo-audio search`` uses when its options are not given."""

    algorithm: str = "evolution"
    evaluations: int = 60
    workers: int = 2


@dataclass(frozen=True)
class BaselineSpec:
    """One ``[[report.baselines]]`` entry: a MobileNet and its width multiplier."""

    model: str
    width: float

    @property
    def label(self) -> str:
        return f"{self.model} x{self.width:g}"


@dataclass(frozen=True)
class ProblemSpec:
    """A validated problem file. ``text`` is the file's content and ``sha256`` its digest."""

    path: Path
    text: str = field(repr=False)
    name: str
    description: str
    seed: int
    dataset_name: str
    dataset_options: Mapping[str, Any]
    space_options: Mapping[str, Any]
    energy: Mapping[str, Any]
    constraints: Constraints
    budget: TrainBudget
    stopping: tuple[str, ...]
    search: SearchDefaults
    algorithm_options: Mapping[str, Mapping[str, Any]]
    baselines: tuple[BaselineSpec, ...]
    #: ``[training]`` options of AudioNASProblem itself (``threads``, ``folds``); absent: its defaults
    problem_options: Mapping[str, int] = field(default_factory=dict)
    objectives: tuple[str, ...] = OBJECTIVE_NAMES
    raw_paths: Mapping[str, str] = field(default_factory=dict)  # path option -> text as written

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def where(self, key: str) -> str:
        return f"{self.path}: {key}"

    # ---- data ---------------------------------------------------------------------------
    def check_data(self) -> None:
        """Raise :class:`ProblemFileError` naming the key if a path option points at nothing."""
        for key in PATH_OPTIONS:
            value = self.dataset_options.get(key)
            if isinstance(value, str) and not Path(value).exists():
                raise ProblemFileError(self._missing(f"dataset.{key}", value))
        path = self.energy.get("path")
        if path is not None and not Path(path).is_file():
            raise ProblemFileError(self._missing("energy.path", path))

    def _missing(self, key: str, value: str) -> str:
        written = self.raw_paths.get(key, value)
        hint = f" (written {written!r}" + (
            "; set the variable or edit the file)" if "${" in written else ")") if written != value else ""
        return self.where(f"{key}: not found: {value}{hint}")

    def load_dataset(self):
        """The dataset, loaded with the file's options; errors name the file."""
        from moo_audio.data import load_dataset

        self.check_data()
        try:
            return load_dataset(self.dataset_name, **self.dataset_options)
        except (ValueError, FileNotFoundError, NotADirectoryError) as err:
            raise ProblemFileError(self.where(f"[dataset] {err}")) from None

    # ---- what the file builds -------------------------------------------------------------
    def space(self, sample_rate: int, n_classes: int, clip_ms: int) -> SearchSpace:
        try:
            return SearchSpace(sample_rate=sample_rate, n_classes=n_classes, clip_ms=(clip_ms,),
                               **self.space_options)
        except ValueError as err:
            raise ProblemFileError(self.where(f"[space] {err}")) from None

    def declared_space(self, n_classes: int = 12) -> SearchSpace:
        """The file's search space without loading its data: the rate and clip length the file
        gives its loader (or the loader's defaults), ``n_classes`` classes (energy hardly depends on them)."""
        from moo_audio.data.loaders import LOADERS

        defaults = {k: p.default for k, p in inspect.signature(LOADERS[self.dataset_name]).parameters.items()}
        options = {**defaults, **self.dataset_options}
        return self.space(options["sample_rate"], n_classes, options["clip_ms"])

    def energy_model(self):
        """The energy model the file describes (the analytic proxy or a saved forest)."""
        from moo_audio.energy import AnalyticEnergyModel

        if self.energy["model"] == "forest":
            from moo_audio.energy import ForestEnergyModel
            from moo_audio.energy.packaged import load_packaged

            if "packaged" in self.energy:
                return load_packaged(self.energy["packaged"], self.energy.get("base"))
            self.check_data()
            try:
                return ForestEnergyModel.load(self.energy["path"])
            except (ValueError, FileNotFoundError) as err:
                raise ProblemFileError(self.where(f"energy.path: {err}")) from None
        options = {k: v for k, v in self.energy.items() if k != "model"}
        try:
            return AnalyticEnergyModel(**options)
        except ValueError as err:
            raise ProblemFileError(self.where(f"[energy] {err}")) from None

    def energy_fingerprint(self) -> str:
        """The energy model's name, and for a forest the SHA-256 of its file (of its measurements
        table, for a packaged one): a resumed run must predict energy with the same model."""
        model = self.energy_model()
        if self.energy["model"] != "forest":
            return model.name
        if "packaged" in self.energy:
            from moo_audio.energy.packaged import table_sha256

            return f"{model.name} table sha256 {table_sha256(self.energy['packaged'])}"
        return f"{model.name} sha256 {hashlib.sha256(Path(self.energy['path']).read_bytes()).hexdigest()}"

    def make_problem(self, dataset=None, *, seed: int | None = None, **kwargs):
        """The :class:`~moo_audio.problem.AudioNASProblem` of this file.

        Args:
            dataset: the loaded dataset (default: :meth:`load_dataset`).
            seed: overrides the file's seed.
            kwargs: passed on (``store``, ``runner``, ``threads``, ``feature_cache``), over the file's
                ``[training]`` problem options.
        """
        from moo_audio.problem import AudioNASProblem

        kwargs = {**self.problem_options, **kwargs}

        dataset = dataset if dataset is not None else self.load_dataset()
        space = self.space(dataset.sample_rate, dataset.n_classes, dataset.clip_ms)
        return AudioNASProblem(dataset, space=space, energy_model=self.energy_model(),
                               budget=self.budget, stopping=self.stopping,
                               constraints=self.constraints,
                               seed=self.seed if seed is None else seed, **kwargs)

    def baseline_genomes(self, sample_rate: int, n_classes: int, clip_ms: int) -> dict[str, Genome]:
        """The file's baselines by label, each on its own front end (DS-CNN's) or on
        :meth:`baseline_frontend`."""
        from moo_audio.nets import baseline

        def frontend(name: str) -> FrontEnd:
            own = BASELINES[name].frontend
            return own(sample_rate, clip_ms) if own is not None else self.baseline_frontend(sample_rate, clip_ms)

        return {b.label: baseline(b.model, b.width, frontend(b.model), n_classes) for b in self.baselines}

    def baseline_frontend(self, sample_rate: int, clip_ms: int) -> FrontEnd:
        """The richest 2-D front end of the space: most mel bins, shortest window and hop."""
        space = self.space(sample_rate, 2, clip_ms)
        win = min(space.win_ms)
        hop = min(h for h in space.hop_ms if h <= win) if any(h <= win for h in space.hop_ms) else win
        n_fft_bins = FrontEnd(sample_rate, clip_ms, 1, win, hop).n_fft // 2 + 1
        return FrontEnd(sample_rate, clip_ms, min(max(space.n_mels), n_fft_bins), win, hop, "2d")

    def algorithm_kwargs(self, name: str) -> dict[str, Any]:
        return dict(self.algorithm_options.get(name, {}))


# ---- finding and reading files --------------------------------------------------------------------
def problem_dirs() -> list[Path]:
    """Where problem names are looked up: ``./problems``, then the files shipped in the package."""
    here = Path.cwd() / "problems"
    shipped = Path(str(resources.files("moo_audio") / "problems")).resolve()
    return [here] if here.resolve() == shipped else [here, shipped]


def shipped_spaces(n_classes: int = 12) -> dict[str, SearchSpace]:
    """The search spaces of the problem files that ship with the package, by name."""
    shipped = Path(str(resources.files("moo_audio") / "problems"))
    return {p.stem: load_problem(p).declared_space(n_classes) for p in sorted(shipped.glob("*.toml"))}


def available_problems() -> dict[str, Path]:
    """Problem names -> files, the first folder of :func:`problem_dirs` winning."""
    found: dict[str, Path] = {}
    for folder in reversed(problem_dirs()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return dict(sorted(found.items()))


def find_problem(name_or_path: str | os.PathLike) -> Path:
    """The file of a problem name (``builtin``) or path (``my/problem.toml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == ".toml" or len(path.parts) > 1:
        raise ProblemFileError(f"problem file not found: {path}")
    known = available_problems()
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    raise ProblemFileError(f"unknown problem {str(name_or_path)!r}: not a file, and not one of "
                           f"{sorted(known) or 'the (missing) problems/ folder'}")


def load_problem(name_or_path: str | os.PathLike) -> ProblemSpec:
    """Read and validate a problem file given by name or path."""
    path = find_problem(name_or_path)
    return parse_problem(path.read_text(), path)


def parse_problem(text: str, path: str | os.PathLike) -> ProblemSpec:
    """Validate problem-file ``text``; ``path`` names it in errors and anchors relative paths."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProblemFileError(f"{path}: not valid TOML: {err}") from None
    return _Parser(path).spec(data, text)


# ---- validation -----------------------------------------------------------------------------------
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list",
               dict: "table"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _Parser:
    """Checks one file's tables; every error goes through :meth:`fail` and names file and key."""

    def __init__(self, path: Path):
        self.path = path
        self.raw_paths: dict[str, str] = {}

    def fail(self, key: str, message: str) -> typing.NoReturn:
        raise ProblemFileError(f"{self.path}: {key}: {message}")

    def table(self, data: Mapping, key: str) -> dict:
        value = data.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_type_name(value)}")
        return value

    def allowed(self, data: Mapping, allowed: Sequence[str], where: str) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            place = f"[{where}]" if where else "top level"
            self.fail(f"{where + '.' if where else ''}{unknown[0]}",
                      f"unknown key in {place}; expected one of: {', '.join(allowed)}")

    def check_type(self, key: str, value: Any, hint: Any) -> Any:
        """``value`` checked against a type hint (int, float, str, bool, Optional, tuple[X, ...])."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            members = [a for a in args if a is not type(None)]
            return self.check_type(key, value, members[0]) if len(members) == 1 else value
        if origin is tuple:
            if not isinstance(value, list):
                self.fail(key, f"expected a list, got {_type_name(value)} {value!r}")
            return tuple(self.check_type(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}.get(hint)
        if ok is not None and not ok(value):
            self.fail(key, f"expected {_TYPE_NAMES[hint]}, got {_type_name(value)} {value!r}")
        return float(value) if hint is float else value

    def dataclass_options(self, data: Mapping, cls: type, keys: Sequence[str], where: str) -> dict:
        self.allowed(data, keys, where)
        hints = typing.get_type_hints(cls)
        return {k: self.check_type(f"{where}.{k}", v, hints[k]) for k, v in data.items()}

    def path_value(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a path (string), got {_type_name(value)} {value!r}")

        def env(match: re.Match) -> str:
            name, has_default, default = match.group(1), match.group(2), match.group(3)
            if name in os.environ:
                return os.environ[name]
            if has_default is None:
                self.fail(key, f"environment variable {name} is not set (write ${{{name}:-default}} "
                               "for a default)")
            return default

        expanded = os.path.expanduser(_ENV.sub(env, value))
        resolved = Path(expanded) if Path(expanded).is_absolute() else self.path.parent / expanded
        self.raw_paths[key] = value
        return str(resolved.resolve())

    # ---- sections ---------------------------------------------------------------------------
    def spec(self, data: dict, text: str) -> ProblemSpec:
        self.allowed(data, _TOP_KEYS, "")
        name = self.check_type("name", data.get("name", self.path.stem), str)
        description = self.check_type("description", data.get("description", ""), str)
        seed = self.check_type("seed", data.get("seed", 0), int)
        if seed < 0:
            self.fail("seed", f"must be >= 0, got {seed}")
        objectives = self.check_type("objectives", data.get("objectives", list(OBJECTIVE_NAMES)),
                                     tuple[str, ...])
        if objectives != OBJECTIVE_NAMES:
            self.fail("objectives", f"AudioNASProblem minimises exactly {list(OBJECTIVE_NAMES)} in this "
                                    f"order; got {list(objectives)}")
        dataset_name, dataset_options = self.dataset(self.table(data, "dataset"))
        space = self.dataclass_options(self.table(data, "space"), SearchSpace, SPACE_KEYS, "space")
        energy = self.energy(self.table(data, "energy"))
        constraints = self.build("constraints", Constraints, self.dataclass_options(
            self.table(data, "constraints"), Constraints, [f.name for f in fields(Constraints)],
            "constraints"))
        training = dict(self.table(data, "training"))
        budget_keys = [f.name for f in fields(TrainBudget)]
        self.allowed(training, budget_keys + ["stopping", *PROBLEM_OPTIONS], "training")
        problem_options = {key: training.pop(key) for key in PROBLEM_OPTIONS if key in training}
        for key, value in problem_options.items():
            if self.check_type(f"training.{key}", value, int) < 1:
                self.fail(f"training.{key}", f"must be >= 1, got {value}")
        augment = training.pop("augment", None)
        if augment is not None:
            if not isinstance(augment, dict):
                self.fail("training.augment", f"expected a table ([training.augment]), got {_type_name(augment)}")
            augment = self.build("training.augment", Augmentation, self.dataclass_options(
                augment, Augmentation, [f.name for f in fields(Augmentation)], "training.augment"))
        stopping = self.check_type("training.stopping", training.pop("stopping", list(DEFAULT_STOPPING)),
                                   tuple[str, ...])
        for i, rule in enumerate(stopping):
            if rule not in STOPPING_RULES:
                self.fail(f"training.stopping[{i}]", f"unknown rule {rule!r}; expected one of {STOPPING_RULES}")
        budget = self.build("training", TrainBudget, {
            **self.dataclass_options(training, TrainBudget, budget_keys, "training"), "augment": augment})
        search = self.build("search", SearchDefaults, self.dataclass_options(
            self.table(data, "search"), SearchDefaults, [f.name for f in fields(SearchDefaults)], "search"))
        if search.algorithm not in ALGORITHM_NAMES:
            self.fail("search.algorithm", f"unknown algorithm {search.algorithm!r}; expected one of "
                                          f"{ALGORITHM_NAMES}")
        for key in ("evaluations", "workers"):
            if getattr(search, key) < 1:
                self.fail(f"search.{key}", f"must be >= 1, got {getattr(search, key)}")
        algorithms = self.table(data, "algorithms")
        self.allowed(algorithms, ALGORITHM_NAMES, "algorithms")
        for algo, options in algorithms.items():
            if not isinstance(options, dict):
                self.fail(f"algorithms.{algo}", f"expected a table of options, got {_type_name(options)}")
        baselines = self.baselines(self.table(data, "report"))
        self.space_check(space)
        return ProblemSpec(self.path, text, name, description, seed, dataset_name, dataset_options,
                           space, energy, constraints, budget, tuple(stopping), search,
                           {k: dict(v) for k, v in algorithms.items()}, baselines, problem_options,
                           raw_paths=dict(self.raw_paths))

    def build(self, where: str, cls: type, options: dict):
        try:
            return cls(**options)
        except ValueError as err:
            self.fail(f"[{where}]", str(err))

    def space_check(self, options: dict) -> None:
        # bounds that do not depend on the dataset are checked now, with a placeholder rate and classes
        try:
            SearchSpace(**options)
        except ValueError as err:
            self.fail("[space]", str(err))

    def dataset(self, table: dict) -> tuple[str, dict]:
        from moo_audio.data.loaders import LOADERS  # the loaders module, without loading any data

        if "name" not in table:
            self.fail("dataset.name", f"missing; expected one of {sorted(LOADERS)}")
        name = self.check_type("dataset.name", table["name"], str)
        if name not in LOADERS:
            self.fail("dataset.name", f"unknown dataset {name!r}; expected one of {sorted(LOADERS)}")
        params = inspect.signature(LOADERS[name]).parameters
        options = {k: v for k, v in table.items() if k != "name"}
        self.allowed(options, list(params), "dataset")
        missing = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options]
        if missing:
            self.fail(f"dataset.{missing[0]}", f"missing; the {name!r} loader requires it")
        for key, value in options.items():
            if key in PATH_OPTIONS and isinstance(value, str):
                options[key] = self.path_value(f"dataset.{key}", value)
            elif key in PATH_OPTIONS and not isinstance(value, dict):
                self.fail(f"dataset.{key}", f"expected a path (string), got {_type_name(value)} {value!r}")
            elif key not in PATH_OPTIONS:
                options[key] = self.loader_value(f"dataset.{key}", value, params[key].default)
        return name, options

    def loader_value(self, key: str, value: Any, default: Any) -> Any:
        """A loader option, checked against the type of its default (the loaders check ranges)."""
        if isinstance(default, bool):
            return self.check_type(key, value, bool)
        if isinstance(default, int):
            return self.check_type(key, value, int)
        if isinstance(default, float):
            return self.check_type(key, value, float)
        if isinstance(default, tuple):
            return tuple(self.check_type(key, value, tuple[float, ...]))
        if isinstance(default, str) and not isinstance(value, str):
            self.fail(key, f"expected string, got {_type_name(value)} {value!r}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            self.fail(key, f"expected a list of strings, got {value!r}")
        return value

    def energy(self, table: dict) -> dict:
        from moo_audio.energy.features import BASES
        from moo_audio.energy.packaged import DEFAULT_MODEL, PACKAGED

        model = self.check_type("energy.model", table.get("model", "forest"), str)
        if model not in ENERGY_MODELS:
            self.fail("energy.model", f"unknown energy model {model!r}; expected one of {ENERGY_MODELS}")
        if model == "forest":
            self.allowed(table, ("model", "path", "packaged", "base"), "energy")
            if "path" in table and ("packaged" in table or "base" in table):
                self.fail("energy.path", "give a forest file (path) or a packaged model (packaged, base), not both")
            if "path" in table:
                return {"model": model, "path": self.path_value("energy.path", table["path"])}
            packaged = self.check_type("energy.packaged", table.get("packaged", DEFAULT_MODEL), str)
            if packaged not in PACKAGED:
                self.fail("energy.packaged", f"unknown packaged energy model {packaged!r}; expected one of {PACKAGED}")
            out = {"model": model, "packaged": packaged}
            if "base" in table:
                out["base"] = self.check_type("energy.base", table["base"], str)
                if out["base"] not in BASES:
                    self.fail("energy.base", f"unknown base {out['base']!r}; expected one of {[b for b in BASES if b]}")
            return out
        self.allowed(table, ("model", "pj_per_mac", "pj_per_byte", "dtype"), "energy")
        out = {"model": model}
        for key in ("pj_per_mac", "pj_per_byte"):
            if key in table:
                out[key] = self.check_type(f"energy.{key}", table[key], float)
        if "dtype" in table:
            out["dtype"] = self.check_type("energy.dtype", table["dtype"], str)
            if out["dtype"] not in DTYPES:
                self.fail("energy.dtype", f"expected one of {list(DTYPES)}, got {out['dtype']!r}")
        return out

    def baselines(self, table: dict) -> tuple[BaselineSpec, ...]:
        self.allowed(table, ("baselines",), "report")
        entries = table.get("baselines", [{"model": "mobilenet_v1", "width": 0.25},
                                          {"model": "mobilenet_v2", "width": 0.35}])
        if not isinstance(entries, list):
            self.fail("report.baselines", f"expected a list of tables, got {_type_name(entries)}")
        out = []
        for i, entry in enumerate(entries):
            key = f"report.baselines[{i}]"
            if not isinstance(entry, dict):
                self.fail(key, f"expected a table {{model = ..., width = ...}}, got {_type_name(entry)}")
            self.allowed(entry, ("model", "width"), key)
            model = self.check_type(f"{key}.model", entry.get("model"), str)
            if model not in BASELINES:
                self.fail(f"{key}.model", f"unknown baseline {model!r}; expected one of {sorted(BASELINES)}")
            width = self.check_type(f"{key}.width", entry.get("width", 1.0), float)
            if not 0 < width <= 4:
                self.fail(f"{key}.width", f"must be in (0, 4], got {width}")
            out.append(BaselineSpec(model, width))
        return tuple(out)
