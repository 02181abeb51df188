"""Datasets from a conditions file (issue 15): refusal of bad rows, the WFDB round trip through `prepare`,
resumption after a killed run, and torchrun sharding giving the same dataset as one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from diffusets_core.diffusion.dataset import ConditionsError, generate_dataset, validate_conditions
from diffusets_core.diffusion.pipeline import GenerationOutput
from diffusets_core.text.embedders import EmbeddingError, HashEmbedder
from tests.data_trees import make_tiny_run, simple_mimic_records

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {
    "max_steps": 4,
    "batch_size": 8,
    "val_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "progress": False,
    "device": "cpu",
}
# one thread: signals are compared bitwise across processes, and the machine is shared
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("ds"), simple_mimic_records(40, subjects=20), train=TRAIN)


class PickyEmbedder(HashEmbedder):
    """Refuses any text with 'UNEMBEDDABLE' in it, as a server refuses an input."""

    def _embed(self, texts):
        if any("UNEMBEDDABLE" in t for t in texts):
            raise EmbeddingError("input rejected")
        return super()._embed(texts)


class IdealPipe:
    """A stand-in model that draws a clean synthetic ECG at the requested HR (102.4 Hz, 10 s), so that the
    round trip can check the heart rate `prepare` measures; everything else is the real writer and reader."""

    def __init__(self):
        self.embedder, self.cache_dir = HashEmbedder(dim=32), None
        self.sampling = {"sampler": "ddim", "num_inference_steps": 2, "guidance_scale": 1.0, "guidance_on": "all"}
        self.identity = {"weights": "ideal test stand-in"}

    def __call__(self, reports, *, age, sex, hr, seed, **kw):
        from scipy.signal import resample_poly

        from tests.data_trees import synthetic_ecg

        sig = np.stack([resample_poly(synthetic_ecg(h, fs=500, seed=s), 128, 625, axis=0).T for h, s in zip(hr, seed)])
        cond = pd.DataFrame({"report": reports, "sex": sex, "age": age, "hr": hr, "seed": seed})
        return GenerationOutput(sig.astype(np.float32), 102.4, (), cond, None, dict(self.identity))


def _csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


GOOD = [
    {"report": "Sinus rhythm|Normal ECG", "age": 63, "sex": "M", "hr": 62, "n": 2, "seed": 100},
    {
        "report": "Sinus tachycardia|ST elevation, consider anterior injury",
        "age": 40,
        "sex": "female",
        "hr": 118,
        "n": 1,
        "seed": "",
    },
    {"report": "Sinus bradycardia", "age": 81, "sex": "F", "hr": 48, "n": 2, "seed": ""},
]


def test_bad_rows_are_all_refused_before_anything_is_written(tmp_path):
    rows = GOOD[:1] + [
        {"report": "Sinus rhythm", "age": 50, "sex": "X", "hr": 70},  # row 2: sex
        {"report": "Sinus rhythm", "age": 150, "sex": "M", "hr": 70},  # row 3: age out of range
        {"report": "Sinus rhythm", "age": 50, "sex": "M", "hr": "fast"},  # row 4: hr not a number
        {"report": "  ", "age": 50, "sex": "M", "hr": 70},  # row 5: empty report
        {"report": "Sinus rhythm||Normal ECG", "age": 50, "sex": "M", "hr": 70},  # row 6: empty statement
        {"report": "Sinus rhythm", "age": 50, "sex": "M", "hr": 10, "n": 0},  # row 7: hr and n
    ]
    path = _csv(tmp_path / "cond.csv", rows)
    with pytest.raises(ConditionsError) as err:
        generate_dataset(IdealPipe(), path, tmp_path / "out", progress=False)
    got = {(r, f) for r, _, f, _ in err.value.problems}
    assert got == {(2, "sex"), (3, "age"), (4, "hr"), (5, "report"), (6, "report"), (7, "hr"), (7, "n")}
    assert "row 3 (line 4), field 'age'" in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_statement_the_embedder_refuses_is_named_by_row(tmp_path):
    pipe = IdealPipe()
    pipe.embedder = PickyEmbedder(dim=32)
    path = _csv(
        tmp_path / "cond.csv", GOOD + [{"report": "Sinus rhythm|UNEMBEDDABLE thing", "age": 50, "sex": "M", "hr": 70}]
    )
    with pytest.raises(ConditionsError, match=r"row 4 \(line 5\), field 'report': the hash embedder refused"):
        validate_conditions(path, pipe)
    with pytest.raises(ValueError, match="missing column"):
        validate_conditions(_csv(tmp_path / "bad.csv", [{"report": "x", "age": 1, "sex": "M"}]))


@pytest.mark.parametrize("fs, length", [(500.0, 5000), (100.0, 1000)])
def test_round_trip_through_prepare_wfdb(tmp_path, fs, length):
    from diffusets_core.data.prepare import prepare_dataset
    from diffusets_core.data.store import read_manifest

    out = tmp_path / "out"
    res = generate_dataset(IdealPipe(), _csv(tmp_path / "cond.csv", GOOD), out, fs=fs, batch_size=2, progress=False)
    assert res["ecgs"] == 5 and res["generated"] == 5
    man = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert man["row"].tolist() == [1, 1, 2, 3, 3] and man["seed"].tolist()[:2] == [100, 101]
    assert man["seed"].tolist()[2:] == [2, 3, 4]  # no seed in the row: --seed (0) + the ECG's index
    hea = wfdb.rdheader(str(out / man["record_id"][2]))
    assert hea.fs == fs and hea.sig_len == length
    text = "\n".join(hea.comments)
    assert "seed: 2" in text and f"sampling_rate: {fs:g} Hz" in text and "resample_poly" in text and "model:" in text
    # the .npy shards hold the same signals (WFDB quantises to 1 µV)
    idx = pd.read_csv(out / "npy" / "index.csv")
    shard = np.load(out / "npy" / f"shard_{idx['shard'][2]:05d}.npy", mmap_mode="r")
    assert shard.shape[1:] == (12, length) and shard.dtype == np.float32
    rec = wfdb.rdrecord(str(out / man["record_id"][2]))
    np.testing.assert_allclose(rec.p_signal.T, shard[idx["row"][2]], atol=1e-3)

    prepare_dataset("wfdb", out, tmp_path / "run", workers=1, progress=False, subject_id=f"csv:{out / 'manifest.csv'}")
    back = read_manifest(tmp_path / "run" / "data" / "manifest.csv").set_index("record_id").loc[man["record_id"]]
    assert (back["status"] == "ok").all(), back["reason"].tolist()
    assert back["report"].tolist() == man["report"].tolist()
    assert back["sex"].tolist() == ["M", "M", "F", "F", "F"]
    np.testing.assert_allclose(back["age"].to_numpy(float), man["age"].to_numpy(float))
    np.testing.assert_allclose(back["hr"].to_numpy(float), man["hr"].to_numpy(float), atol=3.0)


def _cli(run: Path, cond: Path, out: Path, *extra: str) -> list[str]:
    return [
        "generate",
        "--run-dir",
        str(run),
        "--conditions",
        str(cond),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--quiet",
        *extra,
    ]


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".dat", ".npy", ".csv") and ".parts" not in p.parts
    }


def test_cli_generates_with_the_real_pipeline_and_resumes_after_kill(run, tmp_path):
    rows = [
        {"report": f"Sinus rhythm|Statement {i % 3}", "age": 30 + i, "sex": "MF"[i % 2], "hr": 60 + i, "n": 2}
        for i in range(6)
    ]
    cond = _csv(tmp_path / "cond.csv", rows)
    slow = ["--sampler", "ddpm", "--steps", "150"]
    ref = tmp_path / "ref"
    subprocess.run(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, ref, *slow)],
        env=ENV,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, out, *slow)],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / ".parts").is_dir() and len(list((out / ".parts").glob("*.csv"))) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    parts = len(list((out / ".parts").glob("*.csv")))
    assert 0 < parts < 6 and not (out / "manifest.csv").exists(), "the run was not interrupted mid-way"
    rc = subprocess.run(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, out, *slow)],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert rc.returncode == 0, rc.stderr
    assert '"resumed": ' in rc.stdout and '"resumed": 0' not in rc.stdout
    a, b = _files(ref), _files(out)
    assert sorted(a) == sorted(b) and len([k for k in a if k.endswith(".dat")]) == 12
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    assert not (out / ".tmp").exists()
    # another setting on the same folder is refused rather than mixed in
    rc = subprocess.run(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, out, "--fs", "500")],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert rc.returncode == 2 and "other settings (fs" in rc.stderr


def test_torchrun_two_processes_give_the_same_dataset_as_one(run, tmp_path):
    rows = [
        {
            "report": f"Sinus rhythm|Statement {i % 4}",
            "age": 30 + i,
            "sex": "MF"[i % 2],
            "hr": 55 + 5 * i,
            "n": 1 + i % 2,
            "seed": 7 * i,
        }
        for i in range(5)
    ]
    cond = _csv(tmp_path / "cond.csv", rows)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, one, "--steps", "3")],
        env=ENV,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29561",
            "-m",
            "diffusets_core.cli",
            *_cli(run, cond, two, "--steps", "3"),
        ],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _files(one), _files(two)
    assert sorted(a) == sorted(b) and len([k for k in a if k.endswith(".dat")]) == 7
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    # each rank wrote its own batches (k % 2): the parts of batch 0 and 1 came from different processes
    assert len(list((two / ".parts").glob("*.csv"))) == 4
