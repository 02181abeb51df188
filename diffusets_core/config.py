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
from .fileio import atomic_write_text
from .layout import PROFILE_FILE
from .models.factory import UNET_CONFIGS, unet_config_from_dict
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
        if self.n is None and self.source == "cohort":
            raise ProfileError(f"{where}: data.n: the cohort source builds n records; give a positive number, not null")
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
# PyYAML implements YAML 1.1, whose implicit numbers change values silently: ``2e-3`` is the *string* "2e-3" (a
# float needs a dot), ``010`` is the octal 8, ``1:30`` the sexagesimal 90, ``1_000`` is 1000, and a key given twice
# keeps its last value. The profile loader reads numbers as YAML 1.2 (core schema) and JSON do instead: ints are
# decimal ``[-+]?[0-9]+``, ``0o`` octal or ``0x`` hex; floats have a dot or an exponent (``2e-3``, ``1.5``, ``.inf``);
# anything else (``1:30``, ``1_000``) stays a string, which the type check refuses where a number is expected. A
# decimal int with a leading zero (``010``) is refused: YAML 1.2 reads it as 10 but a YAML 1.1 reader as 8, so the
# file means two things. A key repeated in one mapping is refused with both lines. A quoted value stays a string.
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class ProfileLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 numbers (see the rule above) that refuses a key repeated in a mapping.

    Raises ``yaml.constructor.ConstructorError`` (a ``yaml.YAMLError``) naming the line for a leading-zero int or a
    duplicate key.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue  # a merge (<<) may override keys on purpose; other keys are checked by PyYAML
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} on line {line} (first on line {first[key]}); give each key once",
                        key_node.start_mark,
                    )
                first[key] = line
        return super().construct_mapping(node, deep=deep)


def _construct_int_12(loader: ProfileLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    digits = text.lstrip("+-")
    if digits.startswith(("0o", "0x")):
        return int(text, 0)
    if not digits.isdigit():  # an explicit !!int tag on something that is not a YAML 1.2 int
        raise yaml.constructor.ConstructorError(None, None, f"not an int: {text!r}", node.start_mark)
    if len(digits) > 1 and digits.startswith("0"):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{text}: an int with a leading zero is ambiguous (YAML 1.1 reads it as octal, YAML 1.2 as decimal); "
            f"write {int(text, 10)} for the decimal or 0o{digits.lstrip('0') or '0'} for the octal",
            node.start_mark,
        )
    return int(text, 10)


ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ProfileLoader.add_implicit_resolver(_INT_TAG, _INT_12, list("-+0123456789"))
ProfileLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))
ProfileLoader.add_constructor(_INT_TAG, _construct_int_12)

_NONE_TYPE = type(None)


def describe_type(tp: Any) -> str:
    """``tp`` as a user reads it in an error: ``int``, ``float or null``, ``a list of int``, ``one of 'a', 'b'``."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return "any value"
    if tp is _NONE_TYPE or tp is None:
        return "null"
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe_type(args[0])}"
        if args:
            return f"a list of {len(args)} ({', '.join(describe_type(a) for a in args)})"
        return "a list"
    if origin in (list, collections.abc.Sequence):
        return f"a list of {describe_type(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or tp is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def describe_value(value: Any) -> str:
    """``value`` as an error shows what was given: its type and (shortened) repr, ``str '200'``."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


class TypedLoader:
    """Checks values read from a profile file against the Python types that will receive them, before anything runs.

    Every error is a :class:`ProfileError` ``"<where>: <key.path>: expected <type>, got <type> <value>"``.
    Rules: ``bool`` only for ``bool`` (``true`` is not ``1``); ``int`` for ``int``, and a float with an integral
    value (``1e3``) becomes that ``int``; ``int`` or ``float`` for ``float``; strings are never numbers (a quoted
    ``"200"`` was made a string on purpose; numbers are read as YAML 1.2 reads them, by :class:`ProfileLoader`); lists
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
                    raise self.error(path, f"expected {describe_type(tp)}, got {len(value)} item(s) {list(value)!r}")
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
        return self.error(path, f"expected {describe_type(tp)}, got {describe_value(value)}")

    def fields(self, raw: Any, hints: dict[str, Any], path: str) -> dict[str, Any]:
        """A mapping whose keys must be in ``hints`` (name -> type), each value checked; returns the checked copy."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping, got {describe_value(raw)}")
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


def load_profile(
    name_or_path: str | os.PathLike, overrides: collections.abc.Mapping[str, Any] | None = None
) -> Profile:
    """Load ``profiles/<name>.yaml`` (or a path to a YAML file) into a validated :class:`Profile`.

    Every value is checked against the type of the field (or model/training/stage option) that receives it, with
    the rules of :class:`TypedLoader`; numbers are read as YAML 1.2 reads them (``2e-3`` is a number, ``010`` and
    ``1:30`` are not) and a key given twice is refused (:class:`ProfileLoader`). Relative data paths are resolved against the current directory.

    ``overrides`` (dotted key path -> value, e.g. ``{"unet.train.max_steps": 2, "data.n": 120}``) replace settings
    of the file before anything is checked, with the rules of :func:`with_overrides`.

    Raises:
        ProfileError: the file is missing or not YAML, or a key is unknown, mistyped or out of range (an override's
            too); the message names the file, the key path and what was expected.
    """
    path = _profile_path(name_or_path)
    try:
        raw = yaml.load(path.read_text(), Loader=ProfileLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at top level")
    raw = {"name": path.stem, **raw}
    if overrides:
        raw = _apply_overrides(raw, overrides, str(path))
        return profile_from_dict(raw, _overridden_where(str(path), overrides))
    return profile_from_dict(raw, str(path))


# ---- overrides: one setting changed for one run ----------------------------------------------------------------
# `diffusets book --profile gpu --set unet.train.max_steps=2 --set data.n=120` runs the gpu profile with those two
# settings changed (CI's 2-step build of a profile sized for a GPU; a quick trial of a setting). A key is the dotted
# path of the setting as the profile file nests it; the value is read as a profile file's value is (YAML 1.2 numbers,
# `[1, 2]` a list, `null`), then the whole profile is checked as a file is. The run records the changed profile in
# its profile.json like any other, so use --run-dir for a scaled-down trial of a profile whose full run you keep.


def _override_schema(top: str) -> dict[str, Any] | None:
    """The keys allowed one level below ``top`` (name -> a nested schema dict, or ``None`` for a leaf)."""
    if top in ("data", "text"):
        cls = DataConfig if top == "data" else TextConfig
        return {f.name: None for f in dataclasses.fields(cls)}
    if top in ("vae", "unet"):
        return {
            "model": {k: None for k in _model_field_types(top)},
            "train": {k: None for k in _field_types(TrainConfig)},
            "extra": {k: None for k in _stage_extra_types(top)},
        }
    return None


def _check_override_key(key: str, where: str) -> list[str]:
    """``key`` split into its parts, after checking that it names a setting a profile has; raises ProfileError
    naming the first part that does not exist (and what exists there)."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ProfileError(f"{where}: override {key!r}: expected a dotted key such as unet.train.max_steps")
    settable = [f.name for f in dataclasses.fields(Profile) if f.name != "name"]
    top = parts[0]
    if top not in settable:
        raise ProfileError(f"{where}: override {key}: unknown key {top!r}; allowed: {sorted(settable)}")
    if top == "notebook_params":
        if len(parts) != 3:
            raise ProfileError(
                f"{where}: override {key}: expected notebook_params.<notebook>.<parameter>, "
                "e.g. notebook_params.04_diffusion.ddpm_steps"
            )
        notebooks_dir = REPO_ROOT / "notebooks"
        if not (notebooks_dir / f"{parts[1]}.ipynb").is_file():
            known = sorted(p.stem for p in notebooks_dir.glob("*.ipynb"))
            raise ProfileError(f"{where}: override {key}: no notebook {parts[1]!r}; notebooks: {known}")
        return parts  # the parameter is checked against the notebook's parameters cell (book.check_profile_parameters)
    schema: dict[str, Any] | None = _override_schema(top)
    for depth, part in enumerate(parts[1:], start=1):
        if schema is None:
            leaf = ".".join(parts[:depth])
            raise ProfileError(f"{where}: override {key}: {leaf} is a value, not a section (set {leaf} itself)")
        if part not in schema:
            section = ".".join(parts[:depth])
            raise ProfileError(f"{where}: override {key}: unknown key {part!r} in {section}; allowed: {sorted(schema)}")
        schema = schema[part]
    if schema is not None:
        raise ProfileError(
            f"{where}: override {key}: {key} is a section; set one of its keys ({', '.join(sorted(schema))})"
        )
    return parts


def _apply_overrides(raw: dict[str, Any], overrides: collections.abc.Mapping[str, Any], where: str) -> dict[str, Any]:
    """A deep copy of the profile mapping ``raw`` with each override's value put at its key path."""
    out = json.loads(json.dumps(raw, default=list))  # a deep copy; tuples become the lists a profile file gives
    for key, value in overrides.items():
        parts = _check_override_key(str(key), where)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ProfileError(
                    f"{where}: override {key}: {'.'.join(parts[: i + 1])} holds {describe_value(child)}, not a mapping"
                )
            node = child
        node[parts[-1]] = value
    return out


def _overridden_where(where: str, overrides: collections.abc.Mapping[str, Any]) -> str:
    return f"{where} with override(s) {', '.join(str(k) for k in overrides)}"


def with_overrides(
    profile: Profile, overrides: collections.abc.Mapping[str, Any], *, where: str | None = None
) -> Profile:
    """A new, fully checked :class:`Profile`: ``profile`` with each ``key path -> value`` of ``overrides`` replaced.

    Keys are the dotted paths of a profile file (``data.n``, ``unet.train.max_steps``, ``vae.model.channels``,
    ``notebook_params.06_benchmark.n_boot``); a key may name a setting the file leaves at its default. A whole value
    is replaced (a list by a list). ``name`` cannot be overridden. The result is checked as a profile file is
    (:func:`profile_from_dict`); ``profile`` is not changed.

    Raises:
        ProfileError: a key that names no setting (the message names the key, the first unknown part and the keys
            allowed there), or a value of the wrong type or range (named as a file's would be).
    """
    where = where or f"profile {profile.name!r}"
    if not overrides:
        return profile
    raw = _apply_overrides(profile.to_dict(), overrides, where)
    return profile_from_dict(raw, _overridden_where(where, overrides))


def parse_override(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` (a command line's ``--set``) -> ``(KEY, value)``, the value read as a profile file's value
    is (:class:`ProfileLoader`: ``2e-3`` a number, ``[1, 2]`` a list, ``null`` None, ``"200"`` a string). The key is
    checked when the override is applied (:func:`with_overrides`). Raises ValueError without ``=`` or a key."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE (e.g. unet.train.max_steps=2), got {text!r}")
    try:
        parsed = yaml.load(value, Loader=ProfileLoader) if value.strip() else None  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ValueError(f"{key}: the value {value!r} is not a YAML value: {exc}") from None
    return key, parsed


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


# ---- the profile a run records ------------------------------------------------------------------------------------
# Rule: a run directory records the profile it is run with in profile.json (written by `diffusets book` before it
# executes a chapter, and by train-vae / train-unet after a model is trained). Without --profile a command uses the
# recorded profile as recorded (else the default, cpu); --profile with the recorded name uses that file's current
# settings and updates the record; --profile naming another profile is refused unless --reprofile is given, so a
# run's models are never trained with two profiles by accident. A command records the profile only once everything
# it was given has been checked.


class ProfileMismatch(ProfileError):
    """A run directory was to be run with another profile than the one it records (see :func:`check_run_profile`)."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def profile_changes(old: Profile, new: Profile) -> list[str]:
    """``"key.path: old -> new"`` for each setting that differs between two profiles (JSON values compared, so a
    tuple equals the list it is recorded as)."""
    a = _flatten(json.loads(json.dumps(old.to_dict())))
    b = _flatten(json.loads(json.dumps(new.to_dict())))
    return [
        f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def mismatch_message(run_dir: Path, recorded: Profile, profile: Profile, what: str) -> str:
    """Why ``run_dir`` (recorded with ``recorded``) is not run with ``profile``, and the two ways on."""
    return (
        f"{what}: the run {run_dir} was made with profile {recorded.name!r} (recorded in {run_dir / PROFILE_FILE}); "
        f"run without --profile to continue it with {recorded.name!r}, or add --reprofile to switch the run to "
        f"{profile.name!r}"
    )


def check_run_profile(
    run_dir: str | os.PathLike, profile: Profile, *, reprofile: bool = False, what: str | None = None
) -> Profile | None:
    """The profile ``run_dir`` records (``None``: no record), after checking that ``profile`` may run it.

    Raises:
        ProfileMismatch: the run records a profile of another name and ``reprofile`` is false; ``what`` names the
            input the profile came from in the message (default ``profile '<name>'``).
        ProfileError: the record is unreadable or invalid (with ``reprofile`` it is replaced instead).
    """
    run_dir = Path(run_dir)
    try:
        recorded = recorded_profile(run_dir)
    except ProfileError:
        if reprofile:
            return None
        raise
    if recorded is not None and recorded.name != profile.name and not reprofile:
        raise ProfileMismatch(mismatch_message(run_dir, recorded, profile, what or f"profile {profile.name!r}"))
    return recorded


def write_profile_record(run_dir: str | os.PathLike, profile: Profile) -> Path:
    """Record ``profile`` (every setting, as JSON) in ``run_dir/profile.json``, atomically; returns the path."""
    path = Path(run_dir) / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(profile.to_dict(), indent=2))
    return path


@dataclass
class RunProfile:
    """The profile a command runs a run directory with, and where it came from (:func:`run_profile`)."""

    profile: Profile
    run_dir: Path
    recorded: Profile | None  # what run_dir/profile.json holds (None: nothing)
    requested: str | None  # the --profile value, None when not given
    record_error: str | None = None  # why run_dir/profile.json does not load (then ``recorded`` is None)

    def mismatch(self, *, reprofile: bool) -> str | None:
        """The refusal message when ``--profile`` names another profile than the recorded one, or the record does not
        load (None: the profile may run the directory)."""
        if reprofile:
            return None
        if self.record_error is not None:
            return f"{self.record_error}\n  (add --reprofile to replace the record with profile {self.profile.name!r})"
        if self.requested is None or self.recorded is None:
            return None
        if self.recorded.name == self.profile.name:
            return None
        return mismatch_message(self.run_dir, self.recorded, self.profile, f"--profile {self.requested}")

    def source(self) -> str:
        """Where the profile was read from, for messages: the ``--profile`` file, else the run's record, else the
        default profile's file."""
        if self.requested is not None:
            return str(_profile_path(self.requested))
        if self.recorded is not None:
            return str(self.run_dir / PROFILE_FILE)
        return str(_profile_path(self.profile.name))

    def changes(self) -> list[str]:
        """Settings the record changes when this profile is recorded (all of them when the name changes)."""
        return [] if self.recorded is None else profile_changes(self.recorded, self.profile)

    def needs_record(self) -> bool:
        """Whether ``run_dir/profile.json`` must be (re)written to say this profile."""
        return self.recorded is None or bool(self.changes())

    def note(self) -> str:
        """One line for the user: which profile, where it came from, and what its record will say."""
        record = self.run_dir / PROFILE_FILE
        changes = self.changes()
        shown = "; ".join(changes[:5]) + (f"; ... ({len(changes)} in all)" if len(changes) > 5 else "")
        if self.recorded is None:
            source = "--profile" if self.requested is not None else f"the default; {self.run_dir} records none"
            return f"profile {self.profile.name!r} ({source}); to be recorded in {record}"
        if self.recorded.name != self.profile.name:
            return f"profile {self.profile.name!r} (--profile --reprofile) replaces {self.recorded.name!r} in {record}"
        source = "--profile" if self.requested is not None else "the run's"
        if changes:
            return f"profile {self.profile.name!r} ({source}); updating its recorded settings in {record}: {shown}"
        return f"profile {self.profile.name!r} ({source}), as recorded in {record}"


def run_profile(
    run_dir: str | os.PathLike | None,
    requested: str | os.PathLike | None,
    *,
    default: str = "cpu",
    overrides: collections.abc.Mapping[str, Any] | None = None,
) -> RunProfile:
    """Which profile a command runs ``run_dir`` with (the rule above; nothing is written).

    ``requested`` (``--profile``: a name or a YAML path) is loaded; without it the run's record is used, else
    ``default``. ``run_dir`` ``None``: the profile's own run directory (``runs/<name>``). Whether a requested profile
    may replace the record is :meth:`RunProfile.mismatch`'s answer. ``overrides`` (``--set``) change settings of the
    profile chosen so (:func:`with_overrides`). Raises :class:`ProfileError` for a profile or a record that does not
    load, or an override that does not apply.
    """
    if requested is not None:
        profile = load_profile(requested, overrides)
        path = profile.resolved_run_dir(run_dir)
        try:
            recorded = recorded_profile(path)
        except ProfileError as exc:  # a broken record: replaced only with --reprofile
            return RunProfile(profile, path, None, str(requested), record_error=str(exc))
        return RunProfile(profile, path, recorded, str(requested))
    if run_dir is None:
        fallback = load_profile(default)
        path = fallback.resolved_run_dir()
    else:
        fallback, path = None, Path(run_dir).resolve()
    try:
        recorded = recorded_profile(path)
    except ProfileError as exc:
        raise ProfileError(f"{exc}\n  (give --profile NAME --reprofile to replace the record)") from None
    profile = recorded if recorded is not None else (fallback or load_profile(default))
    if overrides:
        source = str(path / PROFILE_FILE) if recorded is not None else str(_profile_path(profile.name))
        profile = with_overrides(profile, overrides, where=source)
    return RunProfile(profile, path, recorded, None)


def _check_stages(profile: Profile, loader: TypedLoader) -> None:
    """Fail at load time, not an hour into training, on a bad model, training or stage key: each key must be a
    field of the model's config class (the U-Net: of the config of the network ``arch`` names; the other network's
    fields only at their defaults), of :class:`TrainConfig`, or a keyword option of the stage's training function,
    with a value of that field's type; the model's own checks (``__post_init__``) then run on the values."""
    for name, from_dict in (("vae", VAEConfig.from_dict), ("unet", unet_config_from_dict)):
        stage: StageConfig = getattr(profile, name)
        stage.model = loader.fields(stage.model, _model_field_types(name), f"{name}.model")
        stage.train = loader.fields(stage.train, _field_types(TrainConfig), f"{name}.train")
        stage.extra = loader.fields(stage.extra, _stage_extra_types(name), f"{name}.extra")
        try:
            from_dict(dict(stage.model))
        except (TypeError, ValueError) as exc:
            raise loader.error(f"{name}.model", str(exc)) from None
        try:
            TrainConfig.from_overrides(dict(stage.train), profile.seed)  # its ranges (max_steps >= 1, lr > 0, ...)
        except ValueError as exc:
            raise loader.error(name, str(exc)) from None


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _model_field_types(name: str) -> dict[str, Any]:
    """Keys a profile's ``<name>.model`` may set, with their types: the VAE config's fields, or for the U-Net ``arch``
    and the fields of every network's config (whether the network ``arch`` names takes them is
    :func:`~diffusets_core.models.factory.unet_config_from_dict`'s check)."""
    if name == "vae":
        return _field_types(VAEConfig)
    types: dict[str, Any] = {"arch": str}
    for cls in UNET_CONFIGS.values():
        types.update(_field_types(cls))
    return types


def _stage_extra_types(name: str) -> dict[str, Any]:
    """Keyword options of the stage's training function that a profile may set under ``extra``, with their types."""
    fn = train_vae if name == "vae" else train_unet
    fixed = {"run_dir", "model", "train", "seed", "resume"}
    hints = get_type_hints(fn)
    return {p: hints.get(p, Any) for p in inspect.signature(fn).parameters if p not in fixed}
