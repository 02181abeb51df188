"""The package's imports point one way (issue 14): base -> data -> text -> models -> diffusion -> train -> eval ->
apps/viz -> config/book/cli.

Every module of ``diffusets_core`` is parsed with :mod:`ast`; every import (module level AND inside functions,
relative and absolute) is resolved to the package module it names and its layer compared with the importer's.
A module may import its own layer and the layers left of it, never one to its right.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = "diffusets_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layer of each top-level part of the package (lower = more basic). Parts not listed are an error: add them.
LAYERS: dict[str, int] = {
    # base: imports nothing from the package but other base modules
    "": 0,  # the package root (``diffusets_core/__init__.py``: ``__version__``)
    "fileio": 0,
    "progress": 0,
    "checkpoint": 0,
    "device": 0,
    "layout": 0,
    "argtypes": 0,
    "data": 1,
    "text": 2,
    "models": 3,
    "diffusion": 4,
    "train": 5,
    "eval": 6,
    "apps": 7,
    "viz": 7,
    "config": 8,
    "book": 8,
    "cli": 8,
}
LAYER_NAMES = {
    0: "base",
    1: "data",
    2: "text",
    3: "models",
    4: "diffusion",
    5: "train",
    6: "eval",
    7: "apps/viz",
    8: "config/book/cli",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute module names an ``ImportFrom`` refers to (the module, and ``module.name`` for each name, since
    ``from pkg import sub`` may import a submodule)."""
    if node.level:
        base = importer.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [mod] + [f"{mod}.{a.name}" for a in node.names]


def package_imports() -> list[tuple[str, str, int]]:
    """``(importer, imported, line)`` for every import of a ``diffusets_core`` module anywhere in the package."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = _module_name(path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = _resolve(importer, is_package, node)
                # ``from . import x`` inside a package: only the submodule candidates count
                if not node.module:
                    names = names[1:]
            else:
                continue
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    found.append((importer, name, node.lineno))
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top not in LAYERS:
        raise KeyError(f"{module}: part {top!r} has no layer in tests/test_layers.py LAYERS; add it")
    return LAYERS[top]


def _existing(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file() or module == PACKAGE


def violations() -> set[tuple[str, str]]:
    bad = set()
    for importer, imported, _ in package_imports():
        if not _existing(imported):  # ``from .x import name`` also yields ``x.name``: keep real modules only
            continue
        if layer_of(imported) > layer_of(importer):
            bad.add((importer, imported))
    return bad


def test_every_part_of_the_package_has_a_layer():
    for path in ROOT.rglob("*.py"):
        layer_of(_module_name(path))


def test_imports_point_one_way():
    new = sorted(violations())
    lines = [f"{a} ({LAYER_NAMES[layer_of(a)]}) imports {b} ({LAYER_NAMES[layer_of(b)]})" for a, b in new]
    assert not new, "imports against the layer order:\n" + "\n".join(lines)


@pytest.mark.parametrize("lower", ["models", "diffusion"])
def test_inference_does_not_import_training_or_evaluation(lower):
    bad = sorted(
        {
            (a, b)
            for a, b, _ in package_imports()
            if a.split(".")[1:2] == [lower] and b.split(".")[1:2] in (["train"], ["eval"])
        }
    )
    assert not bad, f"{lower} must not import train or eval: {bad}"


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    src = "from ..train import stages\n\ndef f():\n    from ...diffusets_core.eval import report\n    import diffusets_core.apps\n"
    tree = ast.parse(src)
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(nodes) == 3
    resolved = _resolve("diffusets_core.diffusion.pipeline", False, nodes[0])
    assert resolved == ["diffusets_core.train", "diffusets_core.train.stages"]


def test_the_layout_names_what_contracts_md_lists():
    from diffusets_core import layout

    contracts = (ROOT.parent / "CONTRACTS.md").read_text(encoding="utf-8")
    for name in (
        layout.DATA_DIR,
        layout.EMBEDDINGS_DIR,
        layout.VAE_DIR,
        layout.LATENTS_DIR,
        layout.UNET_DIR,
        layout.NOC_DIR,
        layout.SAMPLES_DIR,
        layout.EVAL_DIR,
        layout.EXECUTED_DIR,
        layout.EXPLORER_DIR,
        layout.EVAL_GUIDANCE_DIR,
        layout.COHORT_DIR,
        layout.BOOK_SRC_DIR,
    ):
        assert f"{name}/" in contracts, name
    for name in (
        layout.MODEL_FILE,
        layout.SAMPLING_FILE,
        layout.PROGRESS_FILE,
        layout.MANIFEST_FILE,
        layout.PREPARE_FILE,
    ):
        assert name in contracts, name
    assert layout.unet_model("run", layout.NOC_DIR) == Path("run/unet_noc/model.pt")
    assert layout.vae_model("run") == Path("run/vae/model.pt")


def test_no_private_names_cross_modules():
    """A name starting with ``_`` is a module's own business: no other module of the package imports it."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = _resolve(importer, path.name == "__init__.py", node)[0]
                if module.startswith(PACKAGE) and module != importer:
                    bad += [
                        f"{importer}:{node.lineno} imports {a.name} from {module}"
                        for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")
                    ]
    assert not bad, bad


def test_no_dynamic_imports_around_the_layer_check():
    """``importlib.import_module`` / ``__import__`` would hide an import from the check above."""
    hits = [
        f"{path.relative_to(ROOT.parent)}:{i}"
        for path in sorted(ROOT.rglob("*.py"))
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bimport_module\(|\b__import__\(", line)
    ]
    assert not hits, hits
