"""What a chapter needs from the chapters before it, and running those chapters when a notebook is opened alone.

A chapter opened on its own (JupyterLab "Run all" on a fresh clone, a Colab runtime started from the book's launch
button) finds an empty run directory: chapter 05 needs the model of chapters 01-04. :func:`ensure_prerequisites`
checks the files that prove each earlier chapter ran (:data:`CHAPTER_OUTPUTS`) and, when asked to (or in Colab,
where every notebook gets a fresh machine), runs the missing ones with ``diffusets book --only ... --no-build``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..layout import MANIFEST_FILE, data_dir, embeddings_dir, unet_model, vae_model

__all__ = ["CHAPTER_NEEDS", "CHAPTER_OUTPUTS", "ensure_prerequisites", "in_colab", "missing_chapters"]

#: The file whose presence proves that a chapter ran for a run directory.
CHAPTER_OUTPUTS: dict[str, Callable[[Path], Path]] = {
    "01_data": lambda run: data_dir(run) / MANIFEST_FILE,
    "02_text": lambda run: embeddings_dir(run) / "identity.json",
    "03_vae": vae_model,
    "04_diffusion": unet_model,
    # the benchmark's judge, which the digital-twin chapter reads
    "06_benchmark": lambda run: Path(run) / "eval" / "classifier" / "best.pt",
}
_TRAINED = ("01_data", "02_text", "03_vae", "04_diffusion")
#: The earlier chapters each chapter reads the outputs of (00_methods and 01_data need none).
CHAPTER_NEEDS: dict[str, tuple[str, ...]] = {
    "02_text": ("01_data",),
    "03_vae": ("01_data",),
    "04_diffusion": ("01_data", "02_text", "03_vae"),
    **{
        ch: _TRAINED
        for ch in (
            "05_generation",
            "06_benchmark",
            "07_rare_disease",
            "08_knowledge_discovery",
            "09_gallery",
            "10_explorer",
        )
    },
    "11_digital_twin": (*_TRAINED, "06_benchmark"),
}


def in_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is loaded by the kernel)."""
    return "google.colab" in sys.modules


def missing_chapters(run_dir: str | os.PathLike, chapter: str) -> list[str]:
    """The chapters ``chapter`` needs whose outputs (:data:`CHAPTER_OUTPUTS`) are not in ``run_dir``, in order.

    Raises:
        KeyError: ``chapter`` is not a chapter of the book (the message lists them).
    """
    known = set(CHAPTER_NEEDS) | {"00_methods", "01_data"}
    if chapter not in known:
        raise KeyError(f"unknown chapter {chapter!r}; expected one of {sorted(known)}")
    run_dir = Path(run_dir)
    return [ch for ch in CHAPTER_NEEDS.get(chapter, ()) if not CHAPTER_OUTPUTS[ch](run_dir).is_file()]


def ensure_prerequisites(
    run_dir: str | os.PathLike, profile: str, chapter: str, run_missing: bool = False
) -> list[str]:
    """Make sure ``run_dir`` holds what ``chapter`` reads. Returns the chapters run here (``[]`` when nothing was
    missing). When something is missing and ``run_missing`` is set, or the kernel runs in Colab, runs the missing
    chapters of ``profile`` into ``run_dir`` (papermill, through this environment's ``diffusets book``; the
    README's "Colab" section gives the expected times).

    Raises:
        FileNotFoundError: something is missing and running it was not asked for; the message gives the command.
        subprocess.CalledProcessError: a chapter run here failed (its executed notebook names the cell).
    """
    missing = missing_chapters(run_dir, chapter)
    if not missing:
        return []
    if not (run_missing or in_colab()):
        raise FileNotFoundError(
            f"{chapter} reads the outputs of {', '.join(missing)}, which {run_dir} does not hold; run them first "
            f"(`diffusets book --profile {profile} --run-dir {run_dir} --only {' '.join(missing)} --no-build`) "
            "or set run_missing_chapters = True in the parameters cell"
        )
    # the CLI of this interpreter's environment: a kernel started from .venv may not have it on PATH
    cli = Path(sys.executable).with_name("diffusets")
    command = [str(cli) if cli.exists() else "diffusets", "book", "--profile", profile, "--run-dir", str(run_dir)]
    subprocess.run([*command, "--only", *missing, "--no-build"], check=True)
    return missing
