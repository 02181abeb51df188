"""The package's functions stay readable: none is longer than :data:`MAX_LINES` lines, and no public function takes
more than :data:`MAX_KEYWORDS` keyword arguments beyond one config object.

Every module of ``diffusets_core`` is parsed with :mod:`ast`. A function's length runs from its ``def`` line to
the last line of its body (``end_lineno``), docstring included, decorators not. A function's keyword arguments are
the parameters a caller may leave out or must name: positional-or-keyword parameters with a default, every
keyword-only parameter and ``**kwargs`` (one); a parameter named ``config`` (the settings object) is not counted.
Public means a module-level function or a method of a module-level class whose names, and the module path's parts,
do not start with ``_`` (a class's ``__init__`` and ``__call__`` count as public). Run ``python tests/test_code_shape.py`` for the longest functions and the keyword counts.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "diffusets_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

MAX_LINES = 120
MAX_KEYWORDS = 8

#: Functions allowed to be longer than MAX_LINES (``module/path.function``): none.
LONG_ALLOWED: set[str] = set()

#: Public functions with more than MAX_KEYWORDS keyword arguments, each with why it keeps them for now.
KEYWORDS_ALLOWED = {
    "train/unet.train_unet": "a stage's trainer: the profile's three blocks (model, train) come as two dicts and its "
    "extras as keywords named like the profile's keys, so a profile maps onto it one to one",
    "diffusion/pipeline.DiffuSETSPipeline.__call__": "the diffusers pipeline convention: per-call patient values "
    "and sampling overrides, each defaulting to the model's saved settings",
    "diffusion/samplers/base.Sampler.sample": "the samplers' loop, with diffusers' arguments (steps, generator, "
    "clipping, guidance callback)",
    "diffusion/gaussian.GaussianDiffusion.sample": "mirrors Sampler.sample, adding the guidance settings",
    "apps/explorer.Explorer.explore": "the widget's one call: a control per keyword (patient values, seed, guidance, "
    "sampler, steps, comparison, the twin's reference), defaults the fast path's, as the pipeline's call it wraps",
    "apps/rare_disease.generate_condition": "the rare-disease chapter's experiment: patient, seeds and controls",
    "apps/summaries.summarize_rare_disease": "one sentence builder over the rare-disease chapter's results",
    "text/embedders.OpenAIEmbedder.__init__": "a wrapper of the openai client: its own request and retry settings "
    "(batch, retries, back-off, timeout, encoding, the window) pass straight through",
    "eval/metrics.signal_metrics": "a metric function, not an entry point: every keyword is a documented knob of "
    "the metrics (k of precision/recall and of density/coverage, bootstrap, chunking, the optional CLIP pairs)",
}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(ROOT).with_suffix("").as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(ROOT.rglob("*.py"))
    ]


def _functions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node, public)`` for every function of a module, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield (
                prefix + node.name,
                node,
                (not node.name.startswith("_") or node.name in ("__init__", "__call__")) and "<locals>" not in prefix,
            )
            yield from _functions(node, f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            public_class = not node.name.startswith("_")
            for name, fn, public in _functions(node, f"{prefix}{node.name}."):
                yield name, fn, public and public_class


def function_lengths() -> dict[str, int]:
    """``module/path.qualified_name`` -> lines from ``def`` to the end of the body."""
    return {
        f"{mod}.{name}": fn.end_lineno - fn.lineno + 1 for mod, tree in _modules() for name, fn, _ in _functions(tree)
    }


def keyword_count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Keyword arguments of ``fn`` (see the module docstring)."""
    a = fn.args
    with_default = a.args[len(a.args) - len(a.defaults) :] if a.defaults else []
    names = [p.arg for p in with_default + a.kwonlyargs]
    return sum(n != "config" for n in names) + (a.kwarg is not None)


def public_keyword_counts() -> dict[str, int]:
    """``module/path.qualified_name`` -> keyword arguments, for every public function."""
    out = {}
    for mod, tree in _modules():
        if any(part.startswith("_") and part != "__init__" for part in mod.split("/")):
            continue
        for name, fn, public in _functions(tree):
            if public:
                out[f"{mod}.{name}"] = keyword_count(fn)
    return out


def test_no_function_is_longer_than_the_limit():
    lengths = function_lengths()
    long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in LONG_ALLOWED}
    assert not long, f"functions longer than {MAX_LINES} lines (split them into named steps): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(long.items(), key=lambda kv: -kv[1])
    )
    stale = sorted(name for name in LONG_ALLOWED if lengths.get(name, 0) <= MAX_LINES)
    assert not stale, f"allowed as long but now short or gone (remove from LONG_ALLOWED): {stale}"


def test_no_public_function_takes_too_many_keywords():
    counts = public_keyword_counts()
    many = {name: n for name, n in counts.items() if n > MAX_KEYWORDS and name not in KEYWORDS_ALLOWED}
    assert not many, (
        f"public functions with more than {MAX_KEYWORDS} keyword arguments (gather the settings in a config "
        "dataclass): " + ", ".join(f"{name} ({n})" for name, n in sorted(many.items(), key=lambda kv: -kv[1]))
    )
    stale = sorted(name for name in KEYWORDS_ALLOWED if counts.get(name, 0) <= MAX_KEYWORDS)
    assert not stale, f"allowed many keywords but now within the limit (remove from KEYWORDS_ALLOWED): {stale}"


def test_the_counters(tmp_path):
    src = (
        "def f(a, b=1, *args, c, d=2, config=None, **kw):\n"
        "    '''doc'''\n"
        "    def inner(x=1, y=2):\n"
        "        return x\n"
        "    return a\n"
        "class C:\n"
        "    def m(self, p=1):\n"
        "        pass\n"
    )
    tree = ast.parse(src)
    found = {name: (fn, public) for name, fn, public in _functions(tree)}
    assert set(found) == {"f", "f.<locals>.inner", "C.m"}
    assert found["f"][1] and not found["f.<locals>.inner"][1] and found["C.m"][1]
    assert keyword_count(found["f"][0]) == 4  # b, c, d, **kw; config and *args are not counted
    assert keyword_count(found["C.m"][0]) == 1
    assert found["f"][0].end_lineno - found["f"][0].lineno + 1 == 5


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"longest functions (limit {MAX_LINES}):")
    for name, lines in sorted(function_lengths().items(), key=lambda kv: -kv[1])[:n]:
        print(f"  {lines:4d}  {name}")
    print(f"most keyword arguments of public functions (limit {MAX_KEYWORDS}):")
    for name, k in sorted(public_keyword_counts().items(), key=lambda kv: -kv[1])[:n]:
        print(f"  {k:4d}  {name}")
