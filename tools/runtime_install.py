"""Install ``diffusets_core`` from a clone into the running Python, keeping a PyTorch that is already there.

The chapters' first cell runs this in Colab (or any fresh runtime) after cloning the book's repository::

    python tools/runtime_install.py CLONE_DIR

Why not plain ``pip install -e CLONE_DIR``: the package pins ``torch==2.13.0`` (the CPU wheel the book is built and
measured with), and a hosted notebook runtime already has a PyTorch built for its GPU; installing the pin would
replace it by a multi-GB download of another build. With PyTorch present, this installs the package without
dependencies and then every dependency of it except ``torch`` (read from the installed package's own metadata, so
the list is never copied here). Without PyTorch it is plain ``pip install -e CLONE_DIR``. Standard library only: it
runs before anything else is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys

PACKAGE = "diffusets_core"
KEPT = "torch"  #: never reinstalled when present


def requirement_name(requirement: str) -> str:
    """The project name of a requirement string (``"torch==2.13.0; python_version>'3'"`` -> ``"torch"``),
    normalised as PEP 503 does (lower case, runs of ``-_.`` -> ``-``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(requires: list[str]) -> list[str]:
    """The package's requirements to install beside an existing PyTorch: no extras-only ones, no ``torch``."""
    return [r for r in requires if "extra ==" not in r and requirement_name(r) != KEPT]


def install_commands(clone: str, torch_version: str | None, requires: list[str] | None = None) -> list[list[str]]:
    """The pip commands, in order. ``torch_version`` None (no PyTorch installed): one plain editable install.
    Otherwise the editable install without dependencies, then :func:`runtime_requirements` of ``requires``
    (``None``: read after the first command, from the installed metadata)."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if torch_version is None:
        return [[*pip, "-e", clone]]
    commands = [[*pip, "--no-deps", "-e", clone]]
    if requires is not None:
        commands.append([*pip, *runtime_requirements(requires)])
    return commands


def main(clone: str) -> int:
    try:
        torch_version: str | None = importlib.metadata.version(KEPT)
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    for command in install_commands(clone, torch_version):
        subprocess.run(command, check=True)
    if torch_version is not None:
        importlib.invalidate_caches()
        requires = importlib.metadata.requires(PACKAGE) or []
        subprocess.run(install_commands(clone, torch_version, requires)[-1], check=True)
        print(f"installed {PACKAGE} beside the runtime's torch {torch_version}")
    else:
        print(f"installed {PACKAGE} with its pinned torch")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/runtime_install.py CLONE_DIR")
    sys.exit(main(sys.argv[1]))
