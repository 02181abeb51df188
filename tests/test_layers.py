"""The package's imports point one way: base -> data -> text -> models -> diffusion -> train -> eval ->
apps/viz -> config/book/cli.

Every module of ``diffusets_core`` is parsed with :mod:`ast`; every import (module level AND inside functions,
relative and absolute) is resolved to the package module it names and its layer compared with the importer's.
A module may import its own layer and the layers left of it, never one to its right.

The repository also stands alone: no tracked file cites documents that are not in it.
"""

from __future__ import annotations

import ast
import re
import subprocess
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
    "publish": 8,
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


# ------------------------------------------------------------------------------------ the repository stands alone
REPO = ROOT.parent
#: Citations of planning notes kept outside the repository (a reader cannot open them). Built by concatenation so
#: that this file does not match itself.
OUTSIDE_CITATIONS = ("REFERENCE" + ".md", "DESIGN" + ".md", "REFERENCE" + " §", "DESIGN" + " §", "../" + "shared")
#: Folders searched when the tree is not a git checkout (e.g. an unpacked source archive).
SEARCHED_DIRS = ("diffusets_core", "tests", "notebooks", "book", "benchmarks", "profiles")


def tracked_files(repo: Path) -> list[Path]:
    """Files git tracks under ``repo``; without git (or outside a checkout) every file of :data:`SEARCHED_DIRS`
    and the top-level ``*.md`` files, skipping caches."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True, timeout=60
        ).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = []
    if names:
        return [repo / n for n in names if (repo / n).is_file()]
    files = sorted(repo.glob("*.md"))
    for d in SEARCHED_DIRS:
        files += sorted(p for p in (repo / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def outside_citations(files: list[Path], root: Path) -> list[str]:
    """``path:line: text`` for every line of ``files`` that cites one of :data:`OUTSIDE_CITATIONS`."""
    hits = []
    needles = [s.encode() for s in OUTSIDE_CITATIONS]
    for path in files:
        data = path.read_bytes()
        if not any(n in data for n in needles):
            continue
        for i, line in enumerate(data.splitlines(), 1):
            if any(n in line for n in needles):
                hits.append(f"{path.relative_to(root)}:{i}: {line.decode('utf-8', 'replace').strip()[:160]}")
    return hits


def test_no_file_cites_documents_outside_the_repository():
    """Code, tests, chapters and docs cite public sources (the paper, the authors' code, library docs), never
    planning notes that exist only on a developer's machine."""
    files = tracked_files(REPO)
    assert any(p.name == "test_layers.py" for p in files)  # the search really covers the tests
    hits = outside_citations(files, REPO)
    assert not hits, "citations of documents not in the repository:\n" + "\n".join(hits)


def test_the_citation_check_finds_each_form(tmp_path):
    (tmp_path / "tests").mkdir()
    for i, needle in enumerate(OUTSIDE_CITATIONS):
        (tmp_path / "tests" / f"m{i}.py").write_text(f"x = 1\n# see {needle} 3\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("Cites the paper (Lai et al. 2025), Methods.\n", encoding="utf-8")
    (tmp_path / "tests" / "__pycache__").mkdir()
    (tmp_path / "tests" / "__pycache__" / "m0.pyc").write_text(OUTSIDE_CITATIONS[0], encoding="utf-8")
    (tmp_path / "runs").mkdir()  # outputs, not sources
    (tmp_path / "runs" / "notes.md").write_text(OUTSIDE_CITATIONS[0], encoding="utf-8")
    files = tracked_files(tmp_path)  # not a git checkout: the folder walk
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files) == ["README.md"] + [
        f"tests/m{i}.py" for i in range(len(OUTSIDE_CITATIONS))
    ]
    hits = outside_citations(files, tmp_path)
    assert sorted(h.split(":")[0] for h in hits) == sorted(f"tests/m{i}.py" for i in range(len(OUTSIDE_CITATIONS)))
    assert all(":2: " in h for h in hits)
