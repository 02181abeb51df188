"""benchmarks/gpu_check.py skips cleanly (exit 0, says why) where there is no CUDA device, as in CI."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_without_cuda_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "no CUDA device" in r.stdout and "skipped" in r.stdout


def test_gpu_check_smoke_mode_runs_every_row_on_the_cpu(tmp_path):
    """``--smoke``: every row (training, the authors' U-Net from a --reference-dir, the three samplers, a one-process
    torchrun DDP over gloo) on the CPU at toy sizes, written with the documented columns and marked ``smoke``; the book
    refuses such a file, and gpu_check refuses to write one under book/measured/."""
    import csv

    import pytest

    from diffusets_core.measured import GPU_CHECK_COLUMNS, MeasuredFileError, read_measured

    ref = tmp_path / "authors" / "unet"
    ref.mkdir(parents=True)
    (ref / "unet_conditional.py").write_text(FAKE_REFERENCE_UNET)
    out = tmp_path / "smoke.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--csv", str(out)]
    r = subprocess.run(
        cmd + ["--reference-dir", str(tmp_path / "authors")], env=env, capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == GPU_CHECK_COLUMNS
        rows = list(reader)
    assert [row["check"] for row in rows] == ["train"] * 4 + ["reference"] * 2 + ["sample"] * 3 + ["ddp"]
    assert {row["mode"] for row in rows} == {"smoke"} and all(row["device"].startswith("cpu") for row in rows)
    assert all(float(row["value"]) > 0 and not row["detail"].startswith("FAILED") for row in rows)
    assert {(row["model"], row["precision"]) for row in rows if row["check"] != "sample"} >= {
        ("unet_paper", "fp32"),
        ("unet_paper", "bf16"),
        ("vae_paper", "bf16"),
        ("unet_reference", "fp32"),
        ("unet_reference", "bf16"),
    }
    with pytest.raises(MeasuredFileError, match="smoke"):
        read_measured(out, GPU_CHECK_COLUMNS)
    refused = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--smoke",
            "--csv",
            str(ROOT / "book" / "measured" / "x.csv"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "not GPU measurements" in refused.stderr
    assert not (ROOT / "book" / "measured" / "x.csv").exists()


def test_cuda_test_files_are_found_without_importing_them():
    """The ``tests`` row collects only the files that define a CUDA test, so a machine without wfdb, neurokit2 or
    papermill can run it."""
    gpu_check = load_gpu_check()
    names = [p.name for p in gpu_check.cuda_test_files()]
    assert "test_diffusion_samplers.py" in names
    assert "test_data_wfdb_io.py" not in names and "test_book_smoke.py" not in names


# A stand-in for the authors' unet/unet_conditional.py with its constructor and call signature (no code of theirs).
FAKE_REFERENCE_UNET = """
import torch
from torch import nn


class ECGconditional(nn.Module):
    def __init__(self, number_of_diffusions, kernel_size=3, num_levels=5, n_channels=4, text_embed_dim=1536):
        super().__init__()
        self.conv = nn.Conv1d(n_channels, n_channels, kernel_size, padding="same")
        self.cond = nn.Linear(text_embed_dim + 3, n_channels)
        self.time = nn.Embedding(number_of_diffusions, n_channels)

    def forward(self, x, t, text_embed, condition):
        c = torch.cat([text_embed, *condition.values()], dim=-1)
        return self.conv(x) + self.cond(c).transpose(1, 2) + self.time(t)[..., None]
"""


def load_gpu_check():
    """benchmarks/gpu_check.py as a module (it is a script, not part of the package)."""
    import importlib.util

    if "gpu_check" in sys.modules:
        return sys.modules["gpu_check"]
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
