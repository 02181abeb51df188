"""Stage 1 of rare-disease generation: a condition name -> a clinical description of its ECG picture.

Two sources:

* ``source="table"`` (default, offline): the curated table ``condition_descriptions.yaml`` shipped with the
  package. Each entry holds the description as machine-report statements joined by ``|`` (the form the model
  was trained on), the textbook picture (``expected``), the measurable ``signature`` (feature + direction) and a
  textbook/guideline citation. The entries were written from clinical knowledge, not tuned to any measurement.
* ``source="llm"``: an LLM writes the statements through the ``openai`` chat-completions API (or any
  OpenAI-compatible server via ``base_url``). The key is read from ``OPENAI_API_KEY`` only; it is never a
  parameter, never written to disk and redacted from error messages. Answers are cached on disk
  (``cache_dir``, keyed by model + endpoint + prompt): the JSON file stores the prompt and the raw answer
  beside the parsed description, so a cached answer is reused without a request. The signature to test
  still comes from the table when the condition is in it (what to measure must not depend on the LLM).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..text.embedders import is_loopback_url, sanitize_url

__all__ = [
    "ConditionDescription",
    "DescriptionError",
    "load_table",
    "lookup",
    "describe_condition",
    "llm_prompt",
    "parse_statements",
    "DEFAULT_LLM_MODEL",
    "TABLE_PATH",
]

TABLE_PATH = Path(__file__).with_name("condition_descriptions.yaml")
DEFAULT_LLM_MODEL = "gpt-4o-mini"

SYSTEM_PROMPT = (
    "You are a cardiologist writing the automated interpretation statements of a 12-lead ECG machine report."
)
USER_TEMPLATE = (
    "Write the machine-report statements of a typical resting 12-lead ECG of an adult patient with {name}. "
    "Use the short standard statements of ECG machine reports (for example 'Sinus rhythm', "
    "'Left ventricular hypertrophy', 'Abnormal ECG'), starting with the rhythm statement and ending with "
    "'Normal ECG', 'Borderline ECG' or 'Abnormal ECG'. Use at most 6 statements. Answer with the statements "
    "only, separated by ' | ', on one line, with no explanation."
)


class DescriptionError(RuntimeError):
    """The condition is unknown, the LLM is not reachable/configured, or its answer cannot be used."""


@dataclass
class ConditionDescription:
    """A condition's description and how it was obtained."""

    key: str  # table key (or a slug of the name for LLM-only conditions)
    name: str
    description: str  # statements joined with '|': what is embedded and fed to the model
    source: str  # "table" or "llm"
    signature: list = field(default_factory=list)  # [{"feature": ..., "direction": "increase"|"decrease"}]
    expected: str = ""
    citation: str = ""
    model: str | None = None  # LLM model (source="llm")
    prompt: list | None = None  # chat messages sent (source="llm")
    answer: str | None = None  # raw LLM answer (source="llm")
    cached: bool = False
    cache_path: str | None = None

    @property
    def statements(self) -> list[str]:
        return [s for s in (p.strip() for p in self.description.split("|")) if s]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statements"] = self.statements
        return d


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(s).lower()).strip()


def _slug(s: str) -> str:
    return _norm(s).replace(" ", "_") or "condition"


def load_table(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The curated table as ``{key: entry}``; every entry is checked for statements, signature and citation."""
    import yaml

    p = Path(path) if path else TABLE_PATH
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    table = data.get("conditions", {}) if isinstance(data, dict) else {}
    for key, e in table.items():
        missing = [f for f in ("name", "description", "signature", "citation") if not e.get(f)]
        if missing:
            raise DescriptionError(f"{p}: entry {key!r} lacks {', '.join(missing)}")
        for s in e["signature"]:
            if s.get("direction") not in ("increase", "decrease") or not s.get("feature"):
                raise DescriptionError(f"{p}: entry {key!r} has a bad signature item {s!r}")
    return table


def lookup(name: str, table: dict | None = None) -> tuple[str, dict] | None:
    """``(key, entry)`` of the table entry whose key, name or alias matches ``name`` (case/punctuation-blind)."""
    table = load_table() if table is None else table
    want = _norm(name)
    for key, e in table.items():
        names = [key, e.get("name", "")] + list(e.get("aliases", []) or [])
        if want in {_norm(n) for n in names}:
            return key, e
    return None


def llm_prompt(name: str) -> list[dict[str, str]]:
    """The chat messages sent to the LLM for ``name``."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_TEMPLATE.format(name=name)}]


def parse_statements(answer: str) -> list[str]:
    """Statements from an LLM answer: split on '|' or new lines; bullets, numbering and quotes removed."""
    text = answer.strip().strip("`")
    parts = re.split(r"\||\n", text)
    out = []
    for p in parts:
        p = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", p).strip().strip("\"'").strip()
        if p:
            out.append(p)
    return out


def _default_cache_dir() -> Path:
    return Path(os.environ.get("DIFFUSETS_DESCRIPTIONS_CACHE", Path.home() / ".cache" / "diffusets" / "descriptions"))


def _from_table(name: str, table: dict) -> ConditionDescription:
    hit = lookup(name, table)
    if hit is None:
        raise DescriptionError(
            f"{name!r} is not in the descriptions table ({', '.join(sorted(table))}); "
            "use source='llm' or add a cited entry to condition_descriptions.yaml"
        )
    key, e = hit
    return ConditionDescription(
        key=key,
        name=e["name"],
        description=e["description"],
        source="table",
        signature=[dict(s) for s in e["signature"]],
        expected=e.get("expected", ""),
        citation=e["citation"],
    )


def describe_condition(
    name: str,
    source: str = "table",
    *,
    model: str = DEFAULT_LLM_MODEL,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    table: dict | None = None,
    timeout: float = 60.0,
    refresh: bool = False,
) -> ConditionDescription:
    """Describe ``name``'s ECG picture as ``|``-joined machine-report statements (see the module docstring).

    ``source="llm"`` needs ``OPENAI_API_KEY`` (a loopback ``base_url`` without a key gets a dummy key) and
    writes ``<cache_dir>/<slug>-<hash>.json`` with the prompt, the raw answer and the description; a later call
    with the same model, endpoint and prompt reads that file and makes no request (``refresh=True`` re-asks).
    """
    table = load_table() if table is None else table
    if source == "table":
        return _from_table(name, table)
    if source != "llm":
        raise ValueError(f"source must be 'table' or 'llm', got {source!r}")

    messages = llm_prompt(name)
    endpoint = sanitize_url(base_url) if base_url else "openai-default"
    digest = hashlib.sha256(
        json.dumps({"model": model, "endpoint": endpoint, "messages": messages}, sort_keys=True).encode()
    ).hexdigest()[:16]
    cdir = Path(cache_dir) if cache_dir else _default_cache_dir()
    path = cdir / f"{_slug(name)}-{digest}.json"
    hit = lookup(name, table)
    key = hit[0] if hit else _slug(name)
    entry = hit[1] if hit else {}

    def build(answer: str, cached: bool) -> ConditionDescription:
        statements = parse_statements(answer)
        if not statements:
            raise DescriptionError(f"the LLM answer for {name!r} holds no statements: {answer[:200]!r}")
        return ConditionDescription(
            key=key,
            name=entry.get("name", name),
            description="|".join(statements),
            source="llm",
            signature=[dict(s) for s in entry.get("signature", [])],
            expected=entry.get("expected", ""),
            citation=entry.get("citation", ""),
            model=model,
            prompt=messages,
            answer=answer,
            cached=cached,
            cache_path=str(path),
        )

    if path.is_file() and not refresh:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return build(stored["answer"], cached=True)

    key_env = os.environ.get("OPENAI_API_KEY") or None
    if key_env is None:
        if base_url and is_loopback_url(base_url):
            key_env = "no-key"
        else:
            raise DescriptionError(
                "source='llm' needs the OPENAI_API_KEY environment variable "
                "(or a loopback base_url of a local OpenAI-compatible server)"
            )
    import openai

    def redact(s: Any) -> str:
        s = str(s)
        return s.replace(key_env, "***") if key_env and key_env != "no-key" else s

    try:
        client = openai.OpenAI(api_key=key_env, base_url=base_url, timeout=timeout, max_retries=2)
        resp = client.chat.completions.create(model=model, messages=messages, temperature=0)
        answer = resp.choices[0].message.content or ""
    except openai.OpenAIError as exc:
        raise DescriptionError(
            f"LLM request for {name!r} to {endpoint} failed: {type(exc).__name__}: {redact(exc)}"
        ) from None
    result = build(answer, cached=False)
    record = {
        "condition": name,
        "key": key,
        "model": model,
        "endpoint": endpoint,
        "messages": messages,
        "answer": answer,
        "description": result.description,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    cdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2))
    return result
