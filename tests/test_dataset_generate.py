"""Datasets from a conditions file: refusal of bad rows, the WFDB round trip through `prepare`,
resumption after a killed run, and torchrun sharding giving the same dataset as one process."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from diffusets_core.diffusion.pipeline import GenerationOutput
from diffusets_core.generate.conditions import ConditionsError, validate_conditions
from diffusets_core.generate.dataset import DatasetConfig, generate_dataset
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
    from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
    from diffusets_core.data.store import read_manifest

    out = tmp_path / "out"
    res = generate_dataset(
        IdealPipe(), _csv(tmp_path / "cond.csv", GOOD), out, DatasetConfig(fs=fs, batch_size=2), progress=False
    )
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

    prepare_dataset(
        "wfdb",
        out,
        tmp_path / "run",
        PrepareConfig(subject_id=f"csv:{out / 'manifest.csv'}"),
        workers=1,
        progress=False,
    )
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


# ---- one request per output folder, positive counts, file-system errors, a lock, file lines -----------------------
def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr); argparse's refusals exit with code 2."""
    from diffusets_core.cli import main

    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _report_cli(run: Path, out: Path, *extra: str, report: str = "Sinus bradycardia") -> list[str]:
    return [
        "generate",
        "--run",
        str(run),
        "--report",
        report,
        "--age",
        "60",
        "--sex",
        "M",
        "--hr",
        "50",
        "--out",
        str(out),
        "--steps",
        "2",
        "--formats",
        "wfdb,npy",
        "--quiet",
        *extra,
    ]


def _all_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_out_reused_for_another_request_is_refused_naming_what_differs(run, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = _main(_report_cli(run, out), capsys)
    assert rc == 0, err
    kept = {k: v for k, v in _all_files(out).items() if k.startswith("ecg_")}
    assert sorted(kept) == ["ecg_000000.dat", "ecg_000000.hea", "ecg_000000.npy"]
    # a user asking for atrial fibrillation in the same folder must not receive the sinus bradycardia ECG
    rc, stdout, err = _main(_report_cli(run, out, report="Atrial fibrillation"), capsys)
    assert rc == 2 and "Traceback" not in err
    assert "condition.report: 'Sinus bradycardia' recorded, 'Atrial fibrillation' now" in err
    assert "Resuming is only for the same request" in err and str(out) in err
    for extra, field in (
        (["--steps", "3"], "sampling.num_inference_steps: 2 recorded, 3 now"),
        (["--seed", "5"], "seed: 0 recorded, 5 now"),
        (["-n", "2"], "ecgs: 1 recorded, 2 now"),
        (["--sampler", "ddpm"], "sampling.sampler: 'ddim' recorded, 'ddpm' now"),
    ):
        rc, _, err = _main(_report_cli(run, out, *extra), capsys)
        assert rc == 2 and field in err, (extra, err)
    assert {k: v for k, v in _all_files(out).items() if k.startswith("ecg_")} == kept
    # the same request resumes (nothing to do) and keeps the ECG
    rc, stdout, err = _main(_report_cli(run, out), capsys)
    assert rc == 0, err
    assert '"generated": 0' in stdout and '"skipped_existing": 1' in stdout
    assert {k: v for k, v in _all_files(out).items() if k.startswith("ecg_")} == kept
    # a folder of generated ECGs with no record of their request is not resumed either
    (out / "request.json").unlink()
    rc, _, err = _main(_report_cli(run, out), capsys)
    assert rc == 2 and "no request.json" in err


def test_conditions_out_reused_for_another_request_is_refused_naming_what_differs(tmp_path):
    out = tmp_path / "out"
    generate_dataset(IdealPipe(), _csv(tmp_path / "a.csv", GOOD), out, DatasetConfig(batch_size=2), progress=False)
    kept = _all_files(out)
    other = _csv(tmp_path / "b.csv", [{**GOOD[0], "report": "Atrial fibrillation"}, *GOOD[1:]])
    with pytest.raises(ValueError, match="conditions_sha256: '[0-9a-f]{64}' recorded, '[0-9a-f]{64}' now"):
        generate_dataset(IdealPipe(), other, out, DatasetConfig(batch_size=2), progress=False)
    with pytest.raises(ValueError, match="sampling.num_inference_steps: 2 recorded, 3 now") as err:
        generate_dataset(
            IdealPipe(), tmp_path / "a.csv", out, DatasetConfig(batch_size=2, num_inference_steps=3), progress=False
        )
    assert err.value.differences == ["sampling.num_inference_steps: 2 recorded, 3 now"]
    with pytest.raises(ValueError) as err:
        generate_dataset(IdealPipe(), tmp_path / "a.csv", out, DatasetConfig(batch_size=3, seed=4), progress=False)
    assert {"batch_size: 2 recorded, 3 now", "base_seed: 0 recorded, 4 now"} <= set(err.value.differences)
    assert _all_files(out) == kept
    # the same request, from a copy of the file elsewhere, resumes
    same = _csv(tmp_path / "copy.csv", GOOD)
    res = generate_dataset(IdealPipe(), same, out, DatasetConfig(batch_size=2), progress=False)
    assert res["generated"] == 0 and res["resumed"] == 5


@pytest.mark.parametrize(
    "extra", [["-n", "0"], ["-n", "-2"], ["--batch-size", "0"], ["--steps", "0"], ["--steps", "-1"], ["--seed", "-1"]]
)
def test_counts_must_be_positive_before_anything_is_written(run, tmp_path, capsys, extra):
    out = tmp_path / "out"
    rc, stdout, err = _main(_report_cli(run, out, *extra), capsys)
    assert rc == 2 and "expected a whole number >=" in err and extra[0] in err, err
    assert not out.exists()
    if extra[0] != "-n":  # the same flags of a dataset
        cond = _csv(tmp_path / "cond.csv", GOOD)
        rc, _, err = _main(_cli(run, cond, out, *extra), capsys)
        assert rc == 2 and "expected a whole number >=" in err and not out.exists()


def test_counts_are_checked_by_the_library_too(run, tmp_path):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.generate.to_disk import generate_to_disk

    pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu")
    for n in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="whole number >= 1"):
            pipe.conditions("Sinus rhythm", 50, "M", 70, n=n)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got 0"):
        pipe("Sinus rhythm", num_inference_steps=2, batch_size=0)
    cond = pipe.conditions("Sinus rhythm", 50, "M", 70, n=2)
    out = tmp_path / "out"
    for kw, match in (
        ({"batch_size": 0}, "batch_size"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 5000}, "cannot exceed"),
        ({"seed": -1}, "seed"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"sampler": "euler"}, "unknown sampler"),
    ):
        with pytest.raises(ValueError, match=match):
            generate_to_disk(pipe, cond, out, progress=False, **kw)
        with pytest.raises(ValueError, match=match):
            generate_dataset(pipe, _csv(tmp_path / "c.csv", GOOD), out, DatasetConfig(**kw), progress=False)
    with pytest.raises(ValueError, match="no rows"):
        generate_to_disk(pipe, cond.iloc[:0], out, progress=False)
    assert not out.exists()


def test_conditions_cannot_be_mixed_with_report_flags(run, tmp_path, capsys):
    cond = _csv(tmp_path / "cond.csv", GOOD)
    rc, _, err = _main(_cli(run, cond, tmp_path / "out", "-n", "3"), capsys)
    assert rc == 2 and "-n cannot be combined with --conditions" in err
    rc, _, err = _main(_report_cli(run, tmp_path / "out", "--fs", "500"), capsys)
    assert rc == 2 and "--fs applies to --conditions" in err
    assert not (tmp_path / "out").exists()


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_generating_from_a_read_only_run_writes_nothing_into_it(run, tmp_path, capsys, monkeypatch, caplog):
    from diffusets_core import fileio

    ro = tmp_path / "shared_run"
    shutil.copytree(run, ro)
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    paths = [ro, *ro.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")  # root writes through chmod: say what a read-only mount would say
            probe.unlink()
            real = fileio.writable_dir
            monkeypatch.setattr(
                fileio,
                "writable_dir",
                lambda p: not Path(p).absolute().is_relative_to(ro.absolute()) and real(p),
                raising=False,
            )
        except PermissionError:
            pass
        before = _tree(ro)
        with caplog.at_level(logging.WARNING):
            rc, stdout, err = _main(
                _report_cli(ro, tmp_path / "one", report="A report never embedded|Read-only"), capsys
            )
        assert rc == 0, err
        assert _tree(ro) == before  # nothing written, created or touched in the run
        user_cache = tmp_path / "xdg" / "diffusets" / "embeddings"
        assert f'"embedding_cache": "{user_cache}"' in stdout
        assert f"is not writable: embeddings of new prompts are cached in {user_cache}" in caplog.text
        cond = _csv(
            tmp_path / "cond.csv", [{"report": "Another new report|Read-only", "age": 50, "sex": "F", "hr": 70}]
        )
        rc, stdout, err = _main(_cli(ro, cond, tmp_path / "two", "--steps", "2"), capsys)
        assert rc == 0, err
        assert _tree(ro) == before  # nothing written, created or touched in the run
        assert any(user_cache.rglob("seg-*.npy"))
        # nowhere writable at all: vectors are computed and kept in memory, generation still works
        from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

        monkeypatch.setattr(fileio, "writable_dir", lambda p: False)
        users = _tree(user_cache)
        pipe = DiffuSETSPipeline.from_pretrained(ro, device="cpu")
        assert pipe.cache_dir is None
        assert pipe("Sinus rhythm|Nowhere to cache", num_inference_steps=2).signals.shape[0] == 1
        assert _tree(ro) == before and _tree(user_cache) == users
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.parametrize("mode", ["report", "conditions"])
def test_an_out_that_cannot_hold_the_files_is_one_clear_line(run, tmp_path, capsys, monkeypatch, mode):
    from diffusets_core import fileio

    def argv(out: Path) -> list[str]:
        return _report_cli(run, out) if mode == "report" else _cli(run, _csv(tmp_path / "c.csv", GOOD), out)

    taken = tmp_path / "taken.txt"
    taken.write_text("a file the user already has")
    for out, says in (
        (taken, "is a file, not a folder"),
        (taken / "sub", "is a file, so no folder can be made below it"),
    ):
        rc, _, err = _main(argv(out), capsys)
        assert rc == 2 and says in err and str(out) in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(fileio, "writable_dir", lambda p: not Path(p).absolute().is_relative_to(locked))
    rc, _, err = _main(argv(locked / "out"), capsys)
    assert rc == 2 and f"cannot write into {locked}" in err and "give a folder you may write into" in err
    assert taken.read_text() == "a file the user already has" and not (locked / "out").exists()


def test_a_second_command_into_a_folder_being_written_fails_at_once(run, tmp_path, capsys):
    rows = [
        {"report": f"Sinus rhythm|Statement {i % 3}", "age": 30 + i, "sex": "MF"[i % 2], "hr": 60 + i}
        for i in range(40)
    ]
    cond = _csv(tmp_path / "cond.csv", rows)
    out = tmp_path / "out"
    slow = ["--sampler", "ddpm", "--steps", "400"]  # about a minute of work: killed long before it ends
    first = subprocess.Popen(
        [sys.executable, "-m", "diffusets_core.cli", *_cli(run, cond, out, *slow)],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None and not (out / "dataset.json").is_file():
            time.sleep(0.05)
        assert first.poll() is None and (out / "dataset.json").is_file(), "the first command did not start writing"
        t0 = time.perf_counter()
        rc, _, err = _main(_cli(run, cond, out, *slow), capsys)
        took = time.perf_counter() - t0
        assert rc == 2 and "another diffusets process is writing into this folder" in err, err
        assert first.poll() is None, "the first command ended before the second was refused: make it slower"
        assert f"pid {first.pid}, started " in err and f"--conditions {cond}" in err
        assert took < 20
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    from diffusets_core.generate.outputs import output_lock

    with output_lock(out, "test"):  # the lock died with its holder: the folder is free again
        assert not (out / "manifest.csv").exists()


def test_a_bad_row_is_named_by_the_file_line_it_starts_on(tmp_path):
    path = tmp_path / "cond.csv"
    path.write_text(
        "report,age,sex,hr\n"
        '"Sinus rhythm|Normal\nECG",50,M,70\n'  # row 1: lines 2-3 (a quoted line break)
        "\n"  # line 4: blank
        "Sinus rhythm,50,X,70\n"  # row 2: line 5, bad sex
        '"Sinus\r\nrhythm",500,M,70\n'  # row 3: lines 6-7, bad age
    )
    with pytest.raises(ConditionsError) as err:
        validate_conditions(path)
    assert {(r, ln, f) for r, ln, f, _ in err.value.problems} == {(2, 5, "sex"), (3, 6, "age")}
    assert "row 2 (line 5), field 'sex'" in str(err.value) and "row 3 (line 6), field 'age'" in str(err.value)
    with pytest.raises(ConditionsError):
        generate_dataset(IdealPipe(), path, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    # a row with more fields than the header is one more bad row, named by its line, not a parser error
    with open(path, "a") as fh:
        fh.write("Sinus rhythm, Normal ECG,50,M,70\n")  # row 4: line 8, a comma in an unquoted report
    with pytest.raises(ConditionsError) as err:
        validate_conditions(path)
    assert (4, 8, "columns") in {(r, ln, f) for r, ln, f, _ in err.value.problems}
    assert "row 4 (line 8), field 'columns': 5 fields but the header has 4" in str(err.value)


def test_report_and_conditions_never_take_each_others_folder(run, tmp_path, capsys):
    # both kinds of folder mark finished batches as .parts/batch_NNNNNN.csv: neither may resume the other's
    ds = tmp_path / "dataset"
    cond = _csv(tmp_path / "c.csv", [{"report": "Sinus rhythm", "age": 50, "sex": "F", "hr": 70, "n": 2}])
    rc, _, err = _main(_cli(run, cond, ds, "--steps", "2"), capsys)
    assert rc == 0, err
    before = _all_files(ds)
    rc, stdout, err = _main(_report_cli(run, ds), capsys)
    assert rc == 2 and "a dataset of `generate --conditions` (dataset.json)" in err and "Traceback" not in err
    assert _all_files(ds) == before  # nothing overwritten, no request.json added
    rep = tmp_path / "report"
    rc, _, err = _main(_report_cli(run, rep), capsys)
    assert rc == 0, err
    before = _all_files(rep)
    rc, _, err = _main(_cli(run, cond, rep, "--steps", "2"), capsys)
    assert rc == 2 and "ECGs of a `generate --report` request (request.json)" in err
    assert _all_files(rep) == before


def test_a_refused_report_leaves_no_record_that_blocks_the_corrected_one(run, tmp_path):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.generate.to_disk import generate_to_disk
    from diffusets_core.text.embedders import PromptTooLongError

    pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu", dim=32)
    pipe.embedder = HashEmbedder(dim=32, max_tokens=40)  # a window the long statement below exceeds
    out = tmp_path / "out"
    row = {"age": 60, "sex": "M", "hr": 70}
    with pytest.raises(PromptTooLongError, match="at most 40 tokens"):
        generate_to_disk(pipe, [{"report": "Sinus rhythm|" + "word " * 50, **row}], out, progress=False)
    assert not (out / "request.json").exists()
    res = generate_to_disk(pipe, [{"report": "Sinus rhythm", **row}], out, progress=False, num_inference_steps=2)
    assert res["generated"] == 1


def test_a_folder_given_as_conditions_is_named_as_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder; --conditions takes a CSV file"):
        validate_conditions(tmp_path)
