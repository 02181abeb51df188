"""Typed run profiles loaded from YAML (``profiles/*.yaml``).

A profile says what data to use, how to condition, and which notebooks the book runs. Unknown keys are
errors (a typo in a profile must not silently fall back to a default).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import json
import math
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from .data.subjects import SubjectRule
from .layout import PROFILE_FILE
from .models.unet import UNetConfig
from .models.vae import VAEConfig
from .train.loop import TrainConfig
from .train.unet import train_unet
from .train.vae import train_vae

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "profiles"
DATA_SOURCES = ("cohort", "mimic", "ptbxl", "wfdb")


class ProfileError(ValueError):
    """A profile file is missing, malformed or holds an invalid value."""


@dataclass
class DataConfig:
    """Where records come from and how many.

    Relative paths (``data_dir``, ``code_map``, ``exclude``, the file of a ``csv:`` subject rule)
    are resolved when the profile is loaded, against the directory the command was run from
    (not the notebooks' working directory, which is ``notebooks/``): see :meth:`resolve_paths`.
    """

    source: str = "cohort"
    data_dir: str | None = None  # None with source=cohort: build the cohort into <run_dir>/cohort
    n: int | None = 4000  # records to prepare (cohort: records to build); None = all
    workers: int = 2
    baseline_removal: bool = False
    subject_id: str | None = None  # auto | record | header:KEY | path:REGEX | csv:FILE (data.subjects)
    code_map: str | None = None  # CSV code,text for diagnosis codes in WFDB headers (source wfdb)
    exclude: str | None = None  # file of record ids to skip, one a line

    def resolve_paths(self, base: str | os.PathLike | None = None) -> DataConfig:
        """Make the relative paths absolute against ``base`` (default: the current directory).

        Returns self. Nothing is checked for existence here; the reader that opens a path
        names the absolute path it tried.
        """
        root = Path(base) if base is not None else Path.cwd()

        def absolute(value: str | None) -> str | None:
            if value is None or str(value).strip() == "":
                return value
            p = Path(str(value)).expanduser()
            return str(p if p.is_absolute() else (root / p).resolve())

        self.data_dir = absolute(self.data_dir)
        self.code_map = absolute(self.code_map)
        self.exclude = absolute(self.exclude)
        if self.subject_id and self.subject_id.startswith("csv:"):
            self.subject_id = "csv:" + str(absolute(self.subject_id[4:].strip()))
        return self

    def validate(self, where: str) -> None:
        if self.source not in DATA_SOURCES:
            raise ProfileError(f"{where}: data.source must be one of {DATA_SOURCES}, got {self.source!r}")
        if self.source != "cohort" and not self.data_dir:
            raise ProfileError(f"{where}: data.data_dir is required for source {self.source!r}")
        if self.n is not None and self.n <= 0:
            raise ProfileError(f"{where}: data.n must be positive or null, got {self.n}")
        if self.workers < 1:
            raise ProfileError(f"{where}: data.workers must be >= 1, got {self.workers}")
        if self.subject_id is not None:
            try:
                SubjectRule.parse(self.subject_id)
            except ValueError as exc:
                raise ProfileError(f"{where}: data.subject_id: {exc}") from exc
        if self.code_map is not None and self.source != "wfdb":
            raise ProfileError(f"{where}: data.code_map applies to source 'wfdb', not {self.source!r}")


@dataclass
class TextConfig:
    """Text conditioning: which embedder and prompt template."""

    backend: str = "local"  # local | openai
    model: str | None = None  # None = the backend's default
    base_url: str | None = None  # OpenAI-compatible server; the key is only read from OPENAI_API_KEY
    prompt_mode: str = "paper"  # paper | clean
    batch_size: int = 64

    def validate(self, where: str) -> None:
        if self.backend not in ("local", "openai", "hash"):
            raise ProfileError(f"{where}: text.backend must be 'local' or 'openai', got {self.backend!r}")
        if self.prompt_mode not in ("paper", "clean"):
            raise ProfileError(f"{where}: text.prompt_mode must be 'paper' or 'clean', got {self.prompt_mode!r}")


@dataclass
class StageConfig:
    """One trained model: its architecture (``model``, checked by the model's own config class) and the
    optimisation settings (``train``, a :class:`diffusets_core.train.loop.TrainConfig`)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # stage-specific (KL schedule, sampler, ...)


@dataclass
class Profile:
    """One complete, reproducible configuration of the book's pipeline."""

    name: str
    description: str = ""
    seed: int = 0
    run_dir: str | None = None  # None = runs/<name>
    budget_minutes: float | None = None  # documented wall-time budget of the main job on 2 CPU cores
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    vae: StageConfig = field(default_factory=StageConfig)
    unet: StageConfig = field(default_factory=StageConfig)
    notebooks: list[str] = field(default_factory=lambda: ["01_data"])
    notebook_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolved_run_dir(self, override: str | os.PathLike | None = None) -> Path:
        """The run directory: the override, else the profile's, else ``runs/<name>`` under the repo."""
        if override is not None:
            return Path(override).resolve()
        if self.run_dir:
            p = Path(self.run_dir)
            return (p if p.is_absolute() else REPO_ROOT / p).resolve()
        return (REPO_ROOT / "runs" / self.name).resolve()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- typed loading -------------------------------------------------------------------------------------------------
# YAML 1.1, which PyYAML implements, reads a float only with a dot: ``2e-3`` and ``1e-4`` load as the *strings*
# "2e-3" and "1e-4" (``2.0e-3`` is a float). YAML 1.2 and JSON read both as numbers. The profile loader adds the
# YAML 1.2 exponent form, so a number in either notation is a number; a quoted value stays a string and is refused
# where a number is expected (one rule for int and float: quoting makes a string).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


class ProfileLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads exponent numbers without a dot (``2e-3``, ``1e3``) as floats, as YAML 1.2
    and JSON do."""


ProfileLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))

_NONE_TYPE = type(None)


def _describe(tp: Any) -> str:
    """``tp`` as a user reads it in an error: ``int``, ``float or null``, ``a list of int``, ``one of 'a', 'b'``."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return "any value"
    if tp is _NONE_TYPE or tp is None:
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        if args:
            return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
        return "a list"
    if origin in (list, collections.abc.Sequence):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or tp is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


class TypedLoader:
    """Checks values read from a profile file against the Python types that will receive them, before anything runs.

    Every error is a :class:`ProfileError` ``"<where>: <key.path>: expected <type>, got <type> <value>"``.
    Rules: ``bool`` only for ``bool`` (``true`` is not ``1``); ``int`` for ``int``, and a float with an integral
    value (``1e3``) becomes that ``int``; ``int`` or ``float`` for ``float``; strings are never numbers (a quoted
    ``"200"`` was made a string on purpose; the YAML 1.1 exponent gap is closed by :class:`ProfileLoader`); lists
    and tuples are YAML lists (kept as lists, with each item checked; fixed-length tuples check the length);
    ``dict[K, V]`` checks keys and values; ``Literal`` checks membership; ``X | None`` accepts ``null``; a
    dataclass is a mapping whose unknown keys are refused.
    """

    def __init__(self, where: str):
        self.where = where

    def error(self, path: str, message: str) -> ProfileError:
        return ProfileError(f"{self.where}: {path}: {message}" if path else f"{self.where}: {message}")

    def check(self, value: Any, tp: Any, path: str) -> Any:
        """``value`` checked against ``tp`` (numbers converted as above). Raises :class:`ProfileError`."""
        origin, args = get_origin(tp), get_args(tp)
        if tp is Any or tp is object:
            return value
        if origin in (Union, types.UnionType):
            if value is None and _NONE_TYPE in args:
                return None
            members = [a for a in args if a is not _NONE_TYPE]
            if len(members) == 1:  # X | None: X's own (deeper) error is the useful one
                if value is None:
                    raise self.mismatch(value, tp, path)
                return self.check(value, members[0], path)
            for member in members:
                try:
                    return self.check(value, member, path)
                except ProfileError:
                    continue
            raise self.mismatch(value, tp, path)
        if tp is _NONE_TYPE or tp is None:
            if value is not None:
                raise self.mismatch(value, tp, path)
            return None
        if origin is Literal:
            if not any(value == a and type(value) is type(a) for a in args):
                raise self.mismatch(value, tp, path)
            return value
        if tp is bool:
            if not isinstance(value, bool):
                raise self.mismatch(value, tp, path)
            return value
        if tp is int:
            if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value) and value.is_integer():
                return int(value)  # 1e3 (a float in YAML and JSON) where a count is expected
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.mismatch(value, tp, path)
            return value
        if tp is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise self.mismatch(value, tp, path)
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise self.mismatch(value, tp, path)
            return value
        if origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple):
            if not isinstance(value, (list, tuple)):
                raise self.mismatch(value, tp, path)
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                if len(value) != len(args):
                    raise self.error(path, f"expected {_describe(tp)}, got {len(value)} item(s) {list(value)!r}")
                return [self.check(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
            item = args[0] if args else Any
            return [self.check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if origin in (dict, collections.abc.Mapping) or tp is dict:
            if not isinstance(value, dict):
                raise self.mismatch(value, tp, path)
            key_tp, val_tp = args if args else (Any, Any)
            out = {}
            for k, v in value.items():
                sub = f"{path}.{k}" if path else str(k)
                out[self.check(k, key_tp, f"{sub} (key)")] = self.check(v, val_tp, sub)
            return out
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        raise TypeError(f"{path}: no profile rule for type {tp!r}")  # a programming error, not a user's

    def mismatch(self, value: Any, tp: Any, path: str) -> ProfileError:
        return self.error(path, f"expected {_describe(tp)}, got {_got(value)}")

    def fields(self, raw: Any, hints: dict[str, Any], path: str) -> dict[str, Any]:
        """A mapping whose keys must be in ``hints`` (name -> type), each value checked; returns the checked copy."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping, got {_got(raw)}")
        unknown = sorted(str(k) for k in raw if k not in hints)
        if unknown:
            raise self.error(path, f"unknown key(s) {unknown}; allowed: {sorted(hints)}")
        return {k: self.check(v, hints[k], f"{path}.{k}" if path else k) for k, v in raw.items()}

    def build(self, cls: type, raw: Any, path: str) -> Any:
        """An instance of the dataclass ``cls`` from the mapping ``raw`` (``None``: the defaults)."""
        if raw is None:
            return cls()
        hints = get_type_hints(cls)
        values = self.fields(raw, {f.name: hints[f.name] for f in dataclasses.fields(cls)}, path)
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.error(path, f"missing required key(s) {missing}")
        return cls(**values)


def _profile_path(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ProfileError(f"profile not found: {path} (available: {available})")
    return path


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load ``profiles/<name>.yaml`` (or a path to a YAML file) into a validated :class:`Profile`.

    Every value is checked against the type of the field (or model/training/stage option) that receives it, with
    the rules of :class:`TypedLoader`; exponent numbers without a dot (``2e-3``) are numbers
    (:class:`ProfileLoader`). Relative data paths are resolved against the current directory.

    Raises:
        ProfileError: the file is missing or not YAML, or a key is unknown, mistyped or out of range; the message
            names the file, the key path and what was expected.
    """
    path = _profile_path(name_or_path)
    try:
        raw = yaml.load(path.read_text(), Loader=ProfileLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at top level")
    return profile_from_dict({"name": path.stem, **raw}, str(path))


def profile_from_dict(raw: dict[str, Any], where: str) -> Profile:
    """A validated :class:`Profile` from a mapping (a parsed YAML profile, or a run's recorded ``profile.json``);
    ``where`` names the source in errors. Raises :class:`ProfileError` as :func:`load_profile`."""
    loader = TypedLoader(where)
    profile = loader.build(Profile, raw, "")
    _check_stages(profile, loader)
    profile.data.resolve_paths()  # relative data paths: against the directory the command was run from
    profile.data.validate(where)
    profile.text.validate(where)
    if not profile.notebooks:
        raise ProfileError(f"{where}: notebooks must be a non-empty list")
    return profile


def recorded_profile(run_dir: str | os.PathLike) -> Profile | None:
    """The profile recorded in ``run_dir/profile.json`` (what ``diffusets book`` ran the run with), checked like a
    profile file; ``None`` when the run has no record. Raises :class:`ProfileError` on an unreadable or invalid
    record (the message names the file)."""
    path = Path(run_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: not a readable profile record: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a JSON object")
    return profile_from_dict(raw, str(path))


def _check_stages(profile: Profile, loader: TypedLoader) -> None:
    """Fail at load time, not an hour into training, on a bad model, training or stage key: each key must be a
    field of the model's config class, of :class:`TrainConfig`, or a keyword option of the stage's training function,
    with a value of that field's type; the model's own checks (``__post_init__``) then run on the values."""
    for name, cls in (("vae", VAEConfig), ("unet", UNetConfig)):
        stage: StageConfig = getattr(profile, name)
        stage.model = loader.fields(stage.model, _field_types(cls), f"{name}.model")
        stage.train = loader.fields(stage.train, _field_types(TrainConfig), f"{name}.train")
        stage.extra = loader.fields(stage.extra, _stage_extra_types(name), f"{name}.extra")
        try:
            cls.from_dict(dict(stage.model))
        except (TypeError, ValueError) as exc:
            raise loader.error(f"{name}.model", str(exc)) from None


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _stage_extra_types(name: str) -> dict[str, Any]:
    """Keyword options of the stage's training function that a profile may set under ``extra``, with their types."""
    fn = train_vae if name == "vae" else train_unet
    fixed = {"run_dir", "model", "train", "seed", "resume"}
    hints = get_type_hints(fn)
    return {p: hints.get(p, Any) for p in inspect.signature(fn).parameters if p not in fixed}
