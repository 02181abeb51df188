"""Typed run profiles loaded from YAML (``profiles/*.yaml``).

A profile says what data to use, how to condition, and which notebooks the book runs. Unknown keys are
errors (a typo in a profile must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.subjects import SubjectRule
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


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    return cls(**raw)


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load ``profiles/<name>.yaml`` (or a path to a YAML file) into a validated :class:`Profile`."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ProfileError(f"profile not found: {path} (available: {available})")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: expected a mapping at top level")
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    where = str(path)
    data = _build(DataConfig, raw.pop("data", None), f"{where}: data")
    text = _build(TextConfig, raw.pop("text", None), f"{where}: text")
    stages = {k: _build(StageConfig, raw.pop(k, None), f"{where}: {k}") for k in ("vae", "unet")}
    profile = _build(Profile, {**raw, "data": data, "text": text, **stages}, where)
    _check_stages(profile, where)
    data.resolve_paths()  # relative data paths: against the directory the command was run from
    data.validate(where)
    text.validate(where)
    if not isinstance(profile.notebooks, list) or not profile.notebooks:
        raise ProfileError(f"{where}: notebooks must be a non-empty list")
    return profile


def _check_stages(profile: Profile, where: str) -> None:
    """Fail at load time, not an hour into training, on a bad model or training key."""
    for name, cls in (("vae", VAEConfig), ("unet", UNetConfig)):
        stage: StageConfig = getattr(profile, name)
        try:
            cls.from_dict(dict(stage.model))
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{where}: {name}.model: {exc}") from None
        allowed = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(stage.train) - allowed)
        if unknown:
            raise ProfileError(f"{where}: {name}.train: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        allowed_extra = _stage_extra_keys(name)
        unknown = sorted(set(stage.extra) - allowed_extra)
        if unknown:
            raise ProfileError(f"{where}: {name}.extra: unknown key(s) {unknown}; allowed: {sorted(allowed_extra)}")


def _stage_extra_keys(name: str) -> set[str]:
    """Keyword options of the stage's training function that a profile may set under ``extra``."""
    fn = train_vae if name == "vae" else train_unet
    fixed = {"run_dir", "model", "train", "seed", "resume"}
    return {p for p in inspect.signature(fn).parameters if p not in fixed}
