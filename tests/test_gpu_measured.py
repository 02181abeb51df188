"""The book's GPU figures come only from results files under book/measured/: without them the page says "not yet
measured on a GPU" for each (and holds no measured number); with them it renders their tables; files it cannot
stand behind (a --smoke run's, wrong columns, a changed or CPU-trained gpu build) are refused."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from diffusets_core.book import stage_book
from diffusets_core.config import REPO_ROOT, load_profile, write_profile_record
from diffusets_core.measured import (
    GPU_CHECK_COLUMNS,
    GPU_CHECK_FILE,
    GPU_PAGE_FILE,
    GPU_TIMES_COLUMNS,
    GPU_TIMES_FILE,
    MeasuredFileError,
    gpu_measurements_page,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_gpu_check import load_gpu_check  # noqa: E402

MACHINE = {
    "device": "NVIDIA TEST GPU x1",
    "torch": "9.9.9",
    "cuda": "99.9",
    "commit": "abc1234",
    "measured_utc": "2030-01-02 03:04",
    "mode": "full",
}


def _row(**kw) -> dict:
    row = dict.fromkeys(GPU_CHECK_COLUMNS, "")
    row.update(MACHINE)
    row.update(kw)
    return row


def _write(path: Path, rows: list[dict], columns) -> Path:
    load_gpu_check().write_csv(path, rows, columns)
    return path


def test_without_results_every_gpu_figure_is_not_yet_measured(tmp_path):
    page = gpu_measurements_page(tmp_path, budget_minutes=20)
    assert page.count("**Not yet measured on a GPU.**") == 3
    for title in ("Training and sampling speed on one GPU", "chapter times", "against the authors' implementation"):
        assert title in page
    assert "|---|" not in page  # no table
    # the only numbers on the page are names (DDPM-1000, bf16, ...) and the profile's budget setting, quoted
    allowed = r"DDPM-1000|DDIM-50|DPM-Solver\+\+-20|bf16|fp32|H100|H200|budget_minutes: 20|gpu_check\.py|neurokit2|1-D"
    assert not re.findall(r"\d", re.sub(allowed, "", page)), page


def test_gpu_check_results_are_rendered_with_the_reference_comparison(tmp_path):
    rows = [
        _row(check="tests", what="pytest -k cuda (2 file(s))", value="3", unit="passed", detail="3 passed in 9.1s"),
        _row(
            check="train",
            what="unet fp32 batch 256",
            model="unet_paper",
            precision="fp32",
            batch="256",
            steps="10",
            value="1234.5",
            unit="samples/s",
            peak_gib="1.5",
            detail="207.4 ms a step",
        ),
        _row(
            check="train",
            what="unet bf16 batch 256",
            model="unet_paper",
            precision="bf16",
            batch="256",
            steps="10",
            value="2469",
            unit="samples/s",
            peak_gib="1.25",
        ),
        _row(
            check="sample",
            what="ddim-50 batch 256 (bf16 U-Net)",
            model="unet_paper+vae_paper",
            precision="bf16",
            batch="256",
            steps="50",
            value="77.7",
            unit="ECGs/s",
            peak_gib="3",
        ),
        _row(
            check="reference",
            what="authors' U-Net (ECGconditional) fp32 batch 256",
            model="unet_reference",
            precision="fp32",
            batch="256",
            steps="10",
            value="411.5",
            unit="samples/s",
            peak_gib="2.5",
        ),
    ]
    _write(tmp_path / GPU_CHECK_FILE, rows, GPU_CHECK_COLUMNS)
    page = gpu_measurements_page(tmp_path, budget_minutes=20)
    assert page.count("Not yet measured") == 1  # only the chapter times
    assert "| train | unet fp32 batch 256 | 1,234 samples/s (207.4 ms a step) | 1.50 GiB |" in page
    assert "| sample | ddim-50 batch 256 (bf16 U-Net) | 77.7 ECGs/s | 3.00 GiB |" in page
    assert "NVIDIA TEST GPU x1" in page and "commit `abc1234`" in page
    assert "| fp32 | 256 | 1,234 | 412 | 3.00 | 1.50 / 2.50 GiB |" in page  # ours, theirs, ratio
    assert "authors' U-Net" not in page.split("### The gpu profile")[0]  # reference rows only in their own part


def test_chapter_times_are_rendered_with_the_total(tmp_path):
    rows = [
        {
            "chapter": "01_data",
            "seconds": 90,
            **{k: MACHINE[k] for k in ("device", "torch", "cuda", "commit")},
            "measured_utc": MACHINE["measured_utc"],
            "profile": "gpu",
        },
        {
            "chapter": "04_diffusion",
            "seconds": 270,
            **{k: MACHINE[k] for k in ("device", "torch", "cuda", "commit")},
            "measured_utc": MACHINE["measured_utc"],
            "profile": "gpu",
        },
    ]
    _write(tmp_path / GPU_TIMES_FILE, rows, GPU_TIMES_COLUMNS)
    page = gpu_measurements_page(tmp_path, budget_minutes=20)
    assert "| `01_data` | 1.5 |" in page and "| `04_diffusion` | 4.5 |" in page and "| **total** | **6.0** |" in page
    assert "an estimate made by arithmetic from CPU measurements" in page


@pytest.mark.parametrize(
    ("rows", "columns", "message"),
    [
        ([_row(check="train", value="1", mode="smoke")], GPU_CHECK_COLUMNS, "smoke"),
        ([{"check": "train", "value": "1"}], ("check", "value"), "not the documented ones"),
        ([_row(check="train", value="fast")], GPU_CHECK_COLUMNS, "holds 'fast', not a number"),
        ([], GPU_CHECK_COLUMNS, "no rows"),
    ],
)
def test_a_results_file_the_book_cannot_show_is_an_error(tmp_path, rows, columns, message):
    _write(tmp_path / GPU_CHECK_FILE, rows, columns)
    with pytest.raises(MeasuredFileError, match=message):
        gpu_measurements_page(tmp_path)


def test_the_staged_book_includes_the_generated_page(tmp_path):
    """stage_book writes the page beside the results files; the reproducibility page includes it; the repository
    itself holds no copy of the page (it is generated) and no hand-typed GPU figure."""
    stage = stage_book(load_profile("smoke"), tmp_path / "run", [])
    page = stage / "book" / "measured" / GPU_PAGE_FILE
    assert page.is_file() and "Training and sampling speed on one GPU" in page.read_text()
    assert f"budget_minutes: {load_profile('gpu').budget_minutes:g}" in page.read_text()
    assert "```{include} measured/gpu_measurements.md" in (stage / "book" / "reproducibility.md").read_text()
    assert not (REPO_ROOT / "book" / "measured" / GPU_PAGE_FILE).exists()


# ---- a gpu build's chapter times (gpu_check.py --book-times) ----------------------------------------------------
def _gpu_run(root: Path, *, device: str = "cuda:0 (NVIDIA TEST GPU)", profile=None) -> Path:
    run = root / "run"
    prof = profile or load_profile("gpu")
    write_profile_record(run, prof)
    for stage in ("vae", "unet"):
        (run / stage).mkdir(parents=True)
        (run / stage / "summary.json").write_text(json.dumps({"steps": 1, "device": device}))
    (run / "executed").mkdir()
    for i, nb in enumerate(prof.notebooks):
        meta = {"papermill": {"duration": 60.0 + i, "end_time": "2030-01-02T03:04:05.123456"}}
        (run / "executed" / f"{nb}.ipynb").write_text(json.dumps({"cells": [], "metadata": meta}))
    return run


def test_book_times_of_a_gpu_build(tmp_path):
    gpu_check = load_gpu_check()
    rows = gpu_check.book_time_rows(_gpu_run(tmp_path))
    assert [r["chapter"] for r in rows] == load_profile("gpu").notebooks
    assert rows[0]["seconds"] == 60.0 and rows[0]["device"] == "NVIDIA TEST GPU"
    assert rows[0]["measured_utc"] == "2030-01-02 03:04" and set(rows[0]) == set(GPU_TIMES_COLUMNS)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("cpu", "trained on cpu, not on CUDA"),
        ("changed", r"settings differ from profiles/gpu.yaml \(unet.train.max_steps: 2500 -> 2"),
        ("other", "made with profile 'cpu', not 'gpu'"),
        ("partial", "no executed notebook"),
    ],
)
def test_book_times_refuse_a_run_that_does_not_stand_for_the_profile(tmp_path, kind, message):
    gpu_check = load_gpu_check()
    if kind == "cpu":
        run = _gpu_run(tmp_path, device="cpu")
    elif kind == "changed":
        run = _gpu_run(tmp_path, profile=load_profile("gpu", {"unet.train.max_steps": 2}))
    elif kind == "other":
        run = _gpu_run(tmp_path, profile=load_profile("cpu"))
    else:
        run = _gpu_run(tmp_path)
        (run / "executed" / "06_benchmark.ipynb").unlink()
    with pytest.raises(ValueError, match=message):
        gpu_check.book_time_rows(run)
