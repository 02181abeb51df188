"""``diffusets train-twin`` (the twin run prepared and the twin trained with chapter 11's settings) and ``diffusets
generate --reference`` with the twin it makes, end to end on a tiny run; the errors a user meets on the way."""

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from diffusets_core import book
from diffusets_core.apps import twin_training
from diffusets_core.apps.twin_training import TWIN_CHAPTER, TWIN_DEFAULTS, train_twin_run, twin_settings
from diffusets_core.cli import main
from tests.data_trees import make_tiny_cohort_run, make_tiny_run, simple_mimic_records, synthetic_ecg, write_wfdb

FILM = {
    "arch": "film",
    "base_channels": 16,
    "channel_mults": [1, 2],
    "attn_levels": [1],
    "emb_dim": 32,
    "attn_heads": 2,
    "kernel_size": 3,
    "norm_groups": 8,
    "cond_dropout": 0.2,
    "cond_dropout_mode": "separate",
}
TRAIN = {
    "max_steps": 3,
    "batch_size": 8,
    "val_every": 3,
    "checkpoint_every": 3,
    "log_every": 1,
    "progress": False,
    "device": "cpu",
}
#: the twin's chapter-11 settings for the test: a 40-record twin cohort (about ten subjects), a small encoder
TWIN_SET = {
    "twin_n": "40",
    "workers": "1",
    "reference_channels": "[16,16]",
    "identity_steps": "5",
    "twin_train": "{max_steps: 9, batch_size: 8, lr: 0.005, val_every: 2, checkpoint_every: 2, log_every: 1}",
}
GEN = ["--report", "Sinus rhythm|Normal ECG", "--age", "60", "--sex", "F", "--hr", "70", "--steps", "2"]


def _set_args() -> list[str]:
    return [a for k, v in TWIN_SET.items() for a in ("--set", f"notebook_params.{TWIN_CHAPTER}.{k}={v}")]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A tiny run of the embedded cohort (the twin run is a cohort too) with a trained VAE and FiLM U-Net (hash
    embedder, 32-d)."""
    return make_tiny_cohort_run(tmp_path_factory.mktemp("base"), 24, train=TRAIN, unet=FILM)


def test_a_twin_run_of_another_source_than_its_base_is_refused(tmp_path):
    from diffusets_core.apps.twin import TwinRunConfig, prepare_twin_run

    run = make_tiny_run(tmp_path, simple_mimic_records(8, subjects=4))  # a MIMIC-layout run, prepared and embedded
    with pytest.raises(ValueError, match="trained on source 'mimic'; a twin run of source 'cohort'"):
        prepare_twin_run(run, TwinRunConfig(n=12))
    assert not (run / "twin" / "cohort").exists()


@pytest.fixture(scope="module")
def trained(base_run, tmp_path_factory):
    """``diffusets train-twin`` on the base run: (the JSON it printed, its stderr)."""
    capture = pytest.MonkeyPatch()
    out, err = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", out)
    capture.setattr(sys, "stderr", err)
    try:
        argv = ["train-twin", str(base_run), "--profile", "smoke", *_set_args()]
        rc = main([*argv, "--max-steps", "4", "--device", "cpu", "--quiet"])
    finally:
        capture.undo()
    assert rc == 0, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


def test_train_twin_prepares_the_twin_run_and_trains_the_twin(base_run, trained):
    from diffusets_core.models.factory import unet_from_artifact
    from diffusets_core.models.twin import TwinUNet1D

    summary, err = trained
    twin_dir = base_run / "twin"
    assert Path(summary["twin_dir"]).resolve() == twin_dir.resolve() and Path(summary["model"]).is_file()
    assert "profile 'smoke'" in err
    # the --set values, the chapter's defaults for the rest (records_per_subject, reference_dropout, ...)
    s = summary["settings"]
    assert s["twin_n"] == 40 and s["reference_channels"] == [16, 16] and s["identity_steps"] == 5
    assert s["records_per_subject"] == TWIN_DEFAULTS["records_per_subject"] == "3-5"
    assert s["reference_dropout"] == TWIN_DEFAULTS["reference_dropout"]
    assert summary["trained"]["steps"] == 4  # --max-steps over twin_train's 9
    labels = pd.read_csv(twin_dir / "cohort" / "cohort_labels.csv")
    assert len(labels) == 40 and labels.groupby("subject_id").size().min() >= 3  # the twin layout
    unet, meta = unet_from_artifact(twin_dir / "unet" / "model.pt")
    assert isinstance(unet, TwinUNet1D) and list(unet.reference_cfg.channels) == [16, 16]
    assert meta["twin"]["base_unet"] == str((base_run / "unet" / "model.pt").resolve())
    assert meta["twin"]["identity"]["steps"] == 5 and meta["twin"]["n_train_with_reference"] > 0
    assert json.loads((base_run / "profile.json").read_text())["name"] == "smoke"  # recorded, as train-unet does


def test_generate_with_the_twin_reads_a_reference_record_by_id_or_path(base_run, trained, tmp_path, capsys):
    from diffusets_core.data.reference_ecg import reference_from_run
    from diffusets_core.data.store import SignalStore
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

    twin_dir = base_run / "twin"
    store = SignalStore(twin_dir)
    rid = str(store.records("test")["record_id"].iloc[0])
    by_id = ["generate", "--run", str(twin_dir), "--reference", rid, *GEN, "--formats", "npy", "--quiet"]
    assert main([*by_id, "--out", str(tmp_path / "id")]) == 0, capsys.readouterr().err
    capsys.readouterr()
    path = Path(store.info["data_dir"]) / store.records("test").set_index("record_id").loc[rid, "source_path"]
    by_path = ["generate", "--run", str(twin_dir), "--reference", f"{path}.hea", *GEN, "--formats", "npy"]
    assert main([*by_path, "--quiet", "--out", str(tmp_path / "path")]) == 0
    got = np.load(tmp_path / "id" / "ecg_000000.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "path" / "ecg_000000.npy"), got)
    # what the pipeline makes with the stored row of that record as its reference
    pipe = DiffuSETSPipeline.from_pretrained(twin_dir, device="cpu")
    want = pipe(
        "Sinus rhythm|Normal ECG",
        age=60,
        sex="F",
        hr=70,
        num_inference_steps=2,
        reference=reference_from_run(twin_dir, rid),
    )
    np.testing.assert_allclose(got, want.signals[0], atol=1e-4)
    without = pipe("Sinus rhythm|Normal ECG", age=60, sex="F", hr=70, num_inference_steps=2)
    assert np.abs(got - without.signals[0]).max() > 1e-3  # the reference changed the ECG
    written = pd.read_csv(tmp_path / "id" / "conditions.csv")
    assert written["reference"].iloc[0] == str(path)


def _fails(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "\nerror: " in "\n" + err and "Traceback" not in err  # train-twin says its profile first
    return err[err.index("error: ") :]


def test_generate_reference_errors_are_said_before_anything_is_written(base_run, trained, tmp_path, capsys):
    twin_dir = base_run / "twin"
    good = str(twin_dir / "cohort" / pd.read_csv(twin_dir / "cohort" / "record_list.csv")["path"].iloc[0])
    out = tmp_path / "out"
    # a reference for the base run's model, which has no reference encoder
    err = _fails(["generate", "--run", str(base_run), "--reference", good, *GEN, "--out", str(out)], capsys)
    assert "no reference encoder" in err and "twin" in err
    # a record with eight of the twelve leads: the file and the missing leads are named
    ecg = synthetic_ecg(70.0, 500, 10.0, 0)
    write_wfdb(
        tmp_path / "rec", "eight", ecg[:, :8], 500, ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2"], gain=200
    )
    err = _fails(
        ["generate", "--run", str(twin_dir), "--reference", str(tmp_path / "rec" / "eight"), *GEN, "--out", str(out)],
        capsys,
    )
    assert "eight.hea" in err and all(lead in err for lead in ("V3", "V4", "V5", "V6"))
    # neither a record nor an id of the run
    err = _fails(["generate", "--run", str(twin_dir), "--reference", "nope", *GEN, "--out", str(out)], capsys)
    assert "nope" in err and "manifest.csv" in err
    # a dataset request cannot take one reference
    cond = tmp_path / "cond.csv"
    pd.DataFrame([{"report": "Sinus rhythm", "age": 60, "sex": "F", "hr": 70}]).to_csv(cond, index=False)
    argv = ["generate", "--run", str(twin_dir), "--reference", good, "--conditions", str(cond), "--out", str(out)]
    assert "--reference applies to --report" in _fails(argv, capsys)
    assert not out.exists() or not any(out.iterdir())


def test_train_twin_needs_the_trained_unet_and_names_the_command(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "vae").mkdir(parents=True)
    shutil.copy(base_run / "vae" / "model.pt", run / "vae" / "model.pt")
    err = _fails(["train-twin", str(run), "--profile", "smoke"], capsys)
    assert f"{run.resolve() / 'unet' / 'model.pt'}" in err and f"diffusets train-unet {run.resolve()}" in err
    assert "vae/model.pt" not in err and not (run / "twin").exists()
    err = _fails(["train-twin", str(tmp_path / "empty"), "--profile", "smoke"], capsys)
    assert "diffusets train-vae" in err and "diffusets train-unet" in err


def test_the_paper_network_is_refused_before_the_twin_run_is_built(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run / "vae", run / "vae")
    (run / "unet").mkdir()
    torch.save({"kind": "diffusets.unet", "config": {"arch": "paper", "in_channels": 4}}, run / "unet" / "model.pt")
    with pytest.raises(ValueError, match="needs the FiLM U-Net"):
        train_twin_run(run)
    assert not (run / "twin").exists()


def test_bad_settings_are_refused_before_the_twin_run_is_built(base_run, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the twin run must not be prepared with bad settings")

    monkeypatch.setattr(twin_training, "prepare_twin_run", never)
    with pytest.raises(ValueError, match="twin_train.*max_stepz"):
        train_twin_run(base_run, {"twin_train": {"max_stepz": 3}})
    with pytest.raises(ValueError, match="lr must be > 0"):
        train_twin_run(base_run, {"twin_train": {"lr": -1.0}})
    with pytest.raises(ValueError, match="reference_dropout must be in"):
        train_twin_run(base_run, {"reference_dropout": 1.5})
    with pytest.raises(ValueError, match="twin run n must be"):
        train_twin_run(base_run, {"twin_n": 0})


def test_settings_take_the_chapters_defaults_for_keys_left_out():
    s = twin_settings({"twin_n": 50, "twin_train": {"max_steps": 2}, "max_requests": 3, "steps": 7})
    assert s["twin_n"] == 50 and s["twin_train"] == {"max_steps": 2}  # twin_train replaced whole, as papermill does
    assert "max_requests" not in s and "steps" not in s  # the chapter's evaluation parameters are not the twin's
    assert {k: v for k, v in s.items() if k not in ("twin_n", "twin_train")} == {
        k: v for k, v in TWIN_DEFAULTS.items() if k not in ("twin_n", "twin_train")
    }
    s["reference_channels"].append(99)
    assert TWIN_DEFAULTS["reference_channels"] == [32, 32]  # a copy: the defaults are never changed


def test_the_defaults_are_the_chapters_parameters_cell():
    namespace: dict = {}
    exec(book._parameters_cell(book.NOTEBOOKS_DIR / f"{TWIN_CHAPTER}.ipynb"), namespace)
    assert {k: namespace.get(k, "<not declared>") for k in TWIN_DEFAULTS} == TWIN_DEFAULTS
