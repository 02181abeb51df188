"""The package's imports point one way: base -> data -> text -> models -> diffusion -> generate -> train -> eval ->
apps/viz -> config/book/cli.

Every module of ``diffusets_core`` is parsed with :mod:`ast`; every import (module level AND inside functions,
relative and absolute) is resolved to the package module it names and its layer compared with the importer's.
A module may import its own layer and the layers left of it, never one to its right; and the imports inside a layer
form no cycle (a cycle across layers needs an import to the right, which the layer check already refuses).

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
    "measured": 0,
    "settings": 0,  # the schemas of the measured-results files (stdlib only: runs on a machine with PyTorch alone)
    "data": 1,
    "text": 2,
    "models": 3,
    "diffusion": 4,
    "generate": 5,
    "train": 6,
    "eval": 7,
    "apps": 8,
    "viz": 8,
    "config": 9,
    "book": 9,
    "publish": 9,
    "cli": 9,
}
LAYER_NAMES = {
    0: "base",
    1: "data",
    2: "text",
    3: "models",
    4: "diffusion",
    5: "generate",
    6: "train",
    7: "eval",
    8: "apps/viz",
    9: "config/book/cli",
}


def _module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
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


def package_imports(root: Path = ROOT) -> list[tuple[str, str, int]]:
    """``(importer, imported, line)`` for every import of a ``diffusets_core`` module anywhere in the package (the
    package folder ``root``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = _module_name(path, root)
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


def _existing(module: str, root: Path = ROOT) -> bool:
    rel = Path(*module.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file() or module == PACKAGE


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


@pytest.mark.parametrize("lower", ["models", "diffusion", "generate"])
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


def layer_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Importer -> the modules of its own layer it imports (module level and inside functions), for the package
    folder ``root``; names that are not modules (``from .x import name`` also yields ``x.name``) are left out."""
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in package_imports(root):
        if imported != importer and _existing(imported, root) and layer_of(imported) == layer_of(importer):
            graph.setdefault(importer, set()).add(imported)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as ``[a, b, ..., a]``: one per strongly connected component of two or more
    modules (Tarjan's algorithm), the shortest cycle through the component's first module in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:  # v is the root of a component: everything above it on the stack
            component = set(stack[stack.index(v) :])
            del stack[stack.index(v) :]
            if len(component) > 1:
                components.append(component)

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    cycles = []
    for component in components:
        start = min(component)
        paths, frontier, cycle = {start: [start]}, [start], None
        while cycle is None:  # breadth first inside the component until an edge leads back to the start
            nxt = []
            for v in frontier:
                for w in sorted(graph.get(v, set()) & component):
                    if w == start:
                        cycle = paths[v] + [start]
                        break
                    if w not in paths:
                        paths[w] = paths[v] + [w]
                        nxt.append(w)
                if cycle is not None:
                    break
            frontier = nxt
        cycles.append(cycle)
    return sorted(cycles)


def test_no_import_cycle_inside_a_layer():
    """Modules of one layer import each other one way too: a cycle means no module of it can be read (or imported)
    without the others, and at import time one of them sees the other half-initialised."""
    cycles = import_cycles(layer_graph())
    assert not cycles, "import cycles inside a layer:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_planted_cycle(tmp_path):
    root = tmp_path / PACKAGE
    (root / "models").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "checkpoint.py": "",
        "models/__init__.py": "from .a import A\n",
        # a -> b at module level, b -> c inside a function, c -> a absolutely, under TYPE_CHECKING
        "models/a.py": "from ..checkpoint import load\nfrom .b import B\nA = 1\n",
        "models/b.py": "def f():\n    from . import c\n",
        "models/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from diffusets_core.models.a import A\n",
        # d -> e -> d, and e -> a: two cycles, and an import into the first from outside it
        "models/d.py": "import diffusets_core.models.e\n",
        "models/e.py": "from . import d\nfrom .a import A\n",
        "models/f.py": "from .a import A\n",  # imports the cycle, is not part of it
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    cycles = import_cycles(layer_graph(root))
    m = f"{PACKAGE}.models"
    assert cycles == [[f"{m}.a", f"{m}.b", f"{m}.c", f"{m}.a"], [f"{m}.d", f"{m}.e", f"{m}.d"]]
    (root / "models" / "c.py").write_text("X = 1\n", encoding="utf-8")
    assert import_cycles(layer_graph(root)) == [[f"{m}.d", f"{m}.e", f"{m}.d"]]


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


# ------------------------------------------------------------------------------ no issue tracker outside the repository
#: Words that name an entry of an issue tracker; built from parts so that this file does not match itself.
_TRACKER_WORDS = ("iss" + "ue", "tick" + "et")
#: A reference to an issue tracker the repository does not contain: one of those words followed by a number (with or
#: without a "#"), "PR"/"GH"/"pull request" with "#" and a number, a "#" and a number alone in parentheses, or one of
#: the words followed by a colon in parentheses (a tracker entry named by its title).
TRACKER_REFERENCE = re.compile(
    rf"\b(?:{'|'.join(_TRACKER_WORDS)})s?\s*(?:#\s*)?\d+\b"
    r"|\b(?:pr|gh|pull request)\s*#\s*\d+\b"
    r"|\(\s*#\d+\s*\)"
    rf"|\(\s*(?:{'|'.join(_TRACKER_WORDS)})s?\s*:",
    re.IGNORECASE,
)


def tracker_references(files: list[Path], root: Path) -> list[str]:
    """``path:line: text`` for every line of the text files among ``files`` that cites an issue-tracker entry."""
    hits = []
    for path in files:
        data = path.read_bytes()
        if b"\0" in data:  # binary
            continue
        text = data.decode("utf-8", "replace")
        if not TRACKER_REFERENCE.search(text):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if TRACKER_REFERENCE.search(line):
                hits.append(f"{path.relative_to(root)}:{i}: {line.strip()[:160]}")
    return hits


def test_no_file_cites_an_issue_tracker():
    """Comments and docstrings describe behaviour; they never point at tracker entries a reader cannot open."""
    hits = tracker_references(tracked_files(REPO), REPO)
    assert not hits, "references to an issue tracker that is not in the repository:\n" + "\n".join(hits)


def test_the_tracker_check_finds_each_form(tmp_path):
    word, other = _TRACKER_WORDS
    planted = [
        f"# see {word} #12",
        f'"""{word.capitalize()} 13: real data."""',
        f"x = 1  # ({word}: load released checkpoints)",
        f"# {other} 7 asked for it",
        "# fixed in PR " + "#31",
        "# (" + "#5)",
    ]
    (tmp_path / "tests").mkdir()
    for i, line in enumerate(planted):
        (tmp_path / "tests" / f"m{i}.py").write_text(f"x = 1\n{line}\n", encoding="utf-8")
    fine = [
        f"use_{word}s_button: false",
        f"privacy {word}s in medicine",
        "color: #222;",
        f"an {word} with 12 leads is not a number reference",
    ]
    (tmp_path / "README.md").write_text("\n".join(fine) + "\n", encoding="utf-8")
    (tmp_path / "tests" / "blob.npy").write_bytes(b"\0\0" + f"{word} 12".encode())
    hits = tracker_references(tracked_files(tmp_path), tmp_path)
    assert sorted(h.split(":")[0] for h in hits) == sorted(f"tests/m{i}.py" for i in range(len(planted)))
    assert all(":2: " in h for h in hits)


# ------------------------------------------------------------------------------ citations of the reference page
#: The book page that describes the authors' code; the package cites its sections as ``PAGE#anchor``.
PAGE = "book/reference_implementation.md"
SECTION_CITATION = re.compile(r"reference_implementation\.md#([A-Za-z0-9_-]+)")
#: "the authors' ``path``": a file of the authors' code (or of their released files) named in a citation.
AUTHORS_FILE = re.compile(r"authors['’]\s+`{1,2}([A-Za-z0-9_./-]+\.[A-Za-z0-9]+)`{1,2}")
_HEADING = re.compile(r"^(#{2,6})\s+(.+?)\s*$")
_LABEL = re.compile(r"^\(([A-Za-z0-9_-]+)\)=\s*$")


def page_sections(text: str) -> dict[str, str]:
    """Anchor -> heading of every section of a MyST page below its title: the explicit label ``(anchor)=`` on the
    line before the heading, and the id that docutils (hence the built HTML) gives the heading's title."""
    from docutils.nodes import make_id

    sections: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if not m:
            continue
        title = re.sub(r"[`*_]", "", m.group(2))
        sections[make_id(title)] = title
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        label = _LABEL.match(lines[j]) if j >= 0 else None
        if label:
            sections[label.group(1)] = title
    return sections


def section_citations(files: list[Path], root: Path) -> list[tuple[str, str]]:
    """``(path:line, anchor)`` for every citation of a section of the reference page in ``files``."""
    found = []
    for path in files:
        data = path.read_bytes()
        if b"\0" in data or b"reference_implementation.md#" not in data:
            continue
        for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            for m in SECTION_CITATION.finditer(line):
                found.append((f"{path.relative_to(root)}:{i}", m.group(1)))
    return found


def missing_sections(files: list[Path], root: Path, page: Path) -> list[str]:
    sections = page_sections(page.read_text(encoding="utf-8"))
    return [f"{where}: #{anchor}" for where, anchor in section_citations(files, root) if anchor not in sections]


def test_every_cited_section_of_the_reference_page_exists():
    files = tracked_files(REPO)
    page = REPO / PAGE
    assert page in files
    cited = section_citations(files, REPO)
    assert len({where.split(":")[0] for where, _ in cited}) >= 10  # the package, tests and docs cite the page
    missing = missing_sections(files, REPO, page)
    assert not missing, f"citations of sections that {PAGE} does not have:\n" + "\n".join(missing)


def test_the_reference_page_labels_every_section_as_its_heading_id():
    """Each section's explicit label equals the id of its heading, so ``[](#anchor)`` links inside the page, the
    citations in the package and the anchors of the built HTML are one name; every in-page link resolves."""
    from docutils.nodes import make_id

    text = (REPO / PAGE).read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if m:
            label = _LABEL.match(lines[i - 2]) if i >= 2 and not lines[i - 1].strip() else _LABEL.match(lines[i - 1])
            assert label, f"{PAGE}:{i + 1}: heading {m.group(2)!r} has no (label)= line before it"
            assert label.group(1) == make_id(re.sub(r"[`*_]", "", m.group(2))), f"{PAGE}:{i + 1}: label != heading id"
    labels = [_LABEL.match(line).group(1) for line in lines if _LABEL.match(line)]
    assert len(labels) == len(set(labels))
    links = re.findall(r"\]\(#([A-Za-z0-9_-]+)\)", text)
    assert links and not set(links) - set(labels)


def test_every_authors_file_the_package_cites_is_on_the_reference_page():
    """A docstring citing "the authors' ``path``" relies on the page to say what that file does."""
    page = (REPO / PAGE).read_text(encoding="utf-8")
    cited: dict[str, str] = {}
    for path in tracked_files(REPO):
        data = path.read_bytes()
        if b"\0" in data or b"authors" not in data:
            continue
        for m in AUTHORS_FILE.finditer(data.decode("utf-8", "replace")):
            cited.setdefault(m.group(1), str(path.relative_to(REPO)))
    assert "unet/unet_conditional.py" in cited
    absent = [f"{name} (cited in {where})" for name, where in sorted(cited.items()) if name not in page]
    assert not absent, f"authors' files cited but not described in {PAGE}:\n" + "\n".join(absent)


def test_the_section_check_finds_a_missing_section(tmp_path):
    (tmp_path / "book").mkdir()
    page = tmp_path / "book" / "reference_implementation.md"
    page.write_text("# Title\n\n(the-vae)=\n## The VAE\n\n### Blocks and `attention`\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    cite = "reference_implementation" + ".md#"
    (tmp_path / "tests" / "a.py").write_text(f'"""x ({cite}the-vae)."""\n# {cite}blocks-and-attention\n')
    (tmp_path / "tests" / "b.py").write_text(f"x = 1\n# see book/{cite}the-unet and {cite}the-vae\n")
    assert set(page_sections(page.read_text())) == {"the-vae", "blocks-and-attention"}
    assert missing_sections(tracked_files(tmp_path), tmp_path, page) == ["tests/b.py:2: #the-unet"]
