"""Where the book is published from, and the chapters' first cell that installs the package outside the repository.

The repository's address is set in one place, ``_config.yml``'s ``repository.url`` (Jupyter Book reads it for the
repository, issues and launch buttons). A notebook opened in Colab from a launch button cannot read that file, so
each chapter starts with a copy of :func:`setup_cell_source` holding the address; :func:`sync_setup_cells`
(``make sync-notebooks``) rewrites those cells after the address changes, and the tests fail while a copy disagrees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from .config import REPO_ROOT

__all__ = [
    "SETUP_CELL_TAG",
    "RepositorySettings",
    "colab_url",
    "notebook_setup_problems",
    "repository_settings",
    "setup_cell_source",
    "sync_setup_cells",
]

#: Tag of each chapter's first cell. Jupyter Book's ``remove-cell`` keeps it out of the rendered page (it prints
#: nothing where the package is installed) but in the notebook a reader downloads or opens in Colab.
SETUP_CELL_TAG = "setup"
SETUP_CELL_TAGS = [SETUP_CELL_TAG, "remove-cell"]
#: The folder the setup cell clones into (relative to the runtime's working directory, ``/content`` in Colab).
CLONE_NAME = "diffusets-book"


@dataclass(frozen=True)
class RepositorySettings:
    """``_config.yml``'s ``repository`` block: ``url`` (``https://github.com/OWNER/NAME``), ``branch`` and
    ``path_to_book`` (the book's folder inside the repository, ``""`` for its root)."""

    url: str
    branch: str = "main"
    path_to_book: str = ""

    @property
    def github_path(self) -> str:
        """``OWNER/NAME`` of a GitHub URL. Raises ValueError for an address not on github.com (Colab's launch
        button and the Pages workflow both need GitHub)."""
        prefix = "https://github.com/"
        if not self.url.startswith(prefix) or self.url.rstrip("/").count("/") != 4:
            raise ValueError(f"_config.yml repository.url: expected https://github.com/OWNER/NAME, got {self.url!r}")
        return self.url[len(prefix) :].rstrip("/").removesuffix(".git")


def repository_settings(config_path: str | os.PathLike = REPO_ROOT / "_config.yml") -> RepositorySettings:
    """Read ``repository.url`` / ``branch`` / ``path_to_book`` from the book's ``_config.yml``.

    Raises:
        ValueError: the file has no ``repository.url`` (the message names the file and the key).
    """
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{config_path}: no repository.url (the address the book is published from)")
    return RepositorySettings(
        url=str(repo["url"]), branch=str(repo.get("branch") or "main"), path_to_book=str(repo.get("path_to_book") or "")
    )


def colab_url(notebook: str, settings: RepositorySettings | None = None) -> str:
    """The address Colab opens ``notebook`` (``"notebooks/05_generation.ipynb"``) at, as the launch button does:
    ``https://colab.research.google.com/github/OWNER/NAME/blob/BRANCH/<path_to_book>/<notebook>``."""
    s = settings or repository_settings()
    path = "/".join(p for p in (s.path_to_book.strip("/"), notebook) if p)
    return f"https://colab.research.google.com/github/{s.github_path}/blob/{s.branch}/{path}"


def setup_cell_source(url: str) -> str:
    """The code of every chapter's first cell. Where ``diffusets_core`` is importable (the repository, a built book)
    it does nothing; elsewhere (Colab, a fresh runtime) it clones ``url`` (``DIFFUSETS_REPO`` overrides it: a fork,
    a local clone), installs the package with ``tools/runtime_install.py`` (keeping the runtime's own PyTorch) and
    moves into the clone's ``notebooks/``, so that ``run_dir = "../runs/<profile>"`` lands in the clone. The device
    is the parameters cell's ``device = "auto"``: a CUDA GPU when the runtime has one, else the CPU."""
    return f'''# Outside the repository (Colab, a fresh runtime): clone the book's repository and install diffusets_core from it.
# Inside the repository, where the package is installed, this cell does nothing.
import importlib.util
import os
import subprocess
import sys

REPOSITORY_URL = os.environ.get("DIFFUSETS_REPO", "{url}")  # _config.yml: repository.url
if importlib.util.find_spec("diffusets_core") is None:
    clone = os.path.abspath("{CLONE_NAME}")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY_URL, clone], check=True)
    subprocess.run([sys.executable, os.path.join(clone, "tools", "runtime_install.py"), clone], check=True)
    sys.path.insert(0, clone)  # an editable install is seen by new interpreters only
    os.chdir(os.path.join(clone, "notebooks"))'''


def sync_setup_cells(notebooks_dir: str | os.PathLike = REPO_ROOT / "notebooks", url: str | None = None) -> list[Path]:
    """Make the first cell of every ``*.ipynb`` in ``notebooks_dir`` the setup cell for ``url`` (default:
    ``_config.yml``'s), inserting it where a notebook has none. Returns the notebooks rewritten (atomically)."""
    from .fileio import atomic_write_text

    code = setup_cell_source(url or repository_settings().url)
    changed = []
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is not None and SETUP_CELL_TAG in first.metadata.get("tags", []):
            if first.source == code and first.metadata.get("tags") == SETUP_CELL_TAGS:
                continue
            first.source, first.metadata["tags"] = code, list(SETUP_CELL_TAGS)
        else:
            cell = nbformat.v4.new_code_cell(code, metadata={"tags": list(SETUP_CELL_TAGS)})
            cell.id = "setup"
            at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
            nb.cells.insert(at, cell)
        text = nbformat.writes(nb)
        atomic_write_text(path, text if text.endswith("\n") else text + "\n")
        changed.append(path)
    return changed


def notebook_setup_problems(notebooks_dir: str | os.PathLike, url: str) -> list[str]:
    """``<notebook>: <what is wrong>`` for each notebook whose first code cell is not the setup cell for ``url``."""
    code = setup_cell_source(url)
    problems = []
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is None or SETUP_CELL_TAG not in first.metadata.get("tags", []):
            problems.append(f"{path.name}: the first code cell is not tagged {SETUP_CELL_TAG!r}")
        elif first.source != code:
            problems.append(f"{path.name}: the setup cell differs from setup_cell_source({url!r})")
    return problems
