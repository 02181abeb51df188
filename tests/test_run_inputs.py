"""A failing command leaves the run as it was: every command checks all its inputs (profile, chapter names, paths,
counts, devices) before it writes into a run, names the argument a bad value came from, and a run's recorded profile
(profile.json) changes only when the user asks for it (--profile with the recorded name, or --reprofile)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from diffusets_core import book, cli
from diffusets_core.config import ProfileError, load_profile, recorded_profile, run_profile, write_profile_record
from diffusets_core.layout import PROFILE_FILE


def _cpu_run(tmp_path: Path) -> Path:
    """A run directory made with the cpu profile (only its record: enough for what is checked here)."""
    run = tmp_path / "cpu-run"
    write_profile_record(run, load_profile("cpu"))
    return run


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _chapter(nbdir: Path, name: str, code: str = "x = 1") -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell("run_dir = None\nprofile = None\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(code)]
    nbformat.write(nb, nbdir / f"{name}.ipynb")


def _yaml(path: Path, seed: int = 0, notebooks: str = "[ch1]", data: str = "") -> Path:
    path.write_text(f"seed: {seed}\nnotebooks: {notebooks}\n{data}")
    return path


@pytest.fixture
def nbdir(tmp_path, monkeypatch):
    """Chapters ch1/ch2 that execute in a second, in place of the book's notebooks."""
    d = tmp_path / "notebooks"
    d.mkdir()
    _chapter(d, "ch1")
    _chapter(d, "ch2")
    monkeypatch.setattr(book, "NOTEBOOKS_DIR", d)
    return d


# ---- a mistyped chapter name on a run made with another profile -------------------------------------------------
def test_book_with_a_mistyped_chapter_leaves_the_run_and_names_only(tmp_path, capsys):
    """`book --profile smoke --run-dir <cpu run> --only 00_method` used to rewrite profile.json to smoke before
    failing (the next `train-unet RUN` then trained with smoke's 80 steps) and blamed the profile for the name."""
    run = _cpu_run(tmp_path)
    before = _tree(run)
    rc = cli.main(["book", "--profile", "smoke", "--run-dir", str(run), "--only", "00_method", "--no-build"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: --only: unknown chapter '00_method'; known: 00_methods, 01_data," in err
    assert "listed in profile" not in err
    assert "--profile smoke: the run" in err and "made with profile 'cpu'" in err  # reported too, not written
    assert _tree(run) == before  # profile.json unchanged, nothing executed
    assert run_profile(run, None).profile.name == "cpu"  # what train-vae/train-unet RUN now use


def test_only_names_a_chapter_of_the_profile(tmp_path, capsys):
    """A notebook the profile leaves out is not a typo, and the message says so."""
    run = tmp_path / "run"
    rc = cli.main(["book", "--profile", "paper", "--run-dir", str(run), "--only", "10_explorer", "--no-build"])
    assert rc == 2
    assert "--only: '10_explorer' not among the chapters of profile 'paper'" in capsys.readouterr().err
    assert not run.exists()


def test_run_book_checks_only_before_writing(nbdir, tmp_path):
    from diffusets_core.config import Profile

    prof = Profile(name="t", notebooks=["ch1", "ch2"])
    with pytest.raises(ValueError, match=r"^only: unknown chapter 'ch3'; known: ch1, ch2$"):
        book.run_book(prof, run_dir=tmp_path / "run", only=["ch1", "ch3"], build=False)
    assert not (tmp_path / "run").exists()
    (nbdir / "ch2.ipynb").unlink()
    with pytest.raises(ValueError, match=r"profile 't' lists chapter\(s\) \['ch2'\] with no notebook"):
        book.run_book(prof, run_dir=tmp_path / "run", build=False)
    assert not (tmp_path / "run").exists()


# ---- the recorded profile --------------------------------------------------------------------------------------
def test_recorded_profile_changes_only_with_reprofile(nbdir, tmp_path, capsys):
    a, b = _yaml(tmp_path / "a.yaml"), _yaml(tmp_path / "b.yaml", seed=7)
    run = tmp_path / "run"
    assert cli.main(["book", "--profile", str(a), "--run-dir", str(run), "--no-build"]) == 0
    assert recorded_profile(run).name == "a"
    executed = (run / "executed" / "ch1.ipynb").read_bytes()
    capsys.readouterr()

    # another profile: refused, nothing run or written
    before = _tree(run)
    assert cli.main(["book", "--profile", str(b), "--run-dir", str(run), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert f"--profile {b}: the run {run.resolve()} was made with profile 'a'" in err
    assert "run without --profile to continue it with 'a', or add --reprofile to switch the run to 'b'" in err
    assert _tree(run) == before

    # without --profile: the recorded one, even though profiles/a.yaml does not exist
    chosen = run_profile(run, None)
    assert chosen.profile.name == "a" and chosen.mismatch(reprofile=False) is None and not chosen.needs_record()

    # --reprofile: switched, and recorded
    assert cli.main(["book", "--profile", str(b), "--reprofile", "--run-dir", str(run), "--no-build"]) == 0
    assert "replaces 'a'" in capsys.readouterr().out
    assert recorded_profile(run).name == "b" and recorded_profile(run).seed == 7
    assert (run / "executed" / "ch1.ipynb").read_bytes() != executed  # ran again, with seed 7


def test_same_profile_with_edited_settings_updates_the_record(tmp_path):
    a = _yaml(tmp_path / "a.yaml")
    run = tmp_path / "run"
    write_profile_record(run, load_profile(a))
    _yaml(a, seed=3)
    chosen = run_profile(run, str(a))
    assert chosen.mismatch(reprofile=False) is None  # the user named the run's own profile
    assert chosen.needs_record() and "seed: 0 -> 3" in chosen.note()
    assert run_profile(run, None).profile.seed == 0  # without --profile: the record, as recorded


def test_broken_record_is_named_and_replaced_only_with_reprofile(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / PROFILE_FILE).write_text(json.dumps({"name": "x", "seed": "0"}))
    with pytest.raises(ProfileError, match=r"profile\.json: seed: expected int, got str '0'"):
        run_profile(run, None)
    chosen = run_profile(run, "smoke")
    assert "seed: expected int, got str '0'" in chosen.mismatch(reprofile=False)
    assert chosen.mismatch(reprofile=True) is None


def test_reprofile_needs_profile(tmp_path, capsys):
    assert cli.main(["book", "--reprofile", "--run-dir", str(tmp_path / "r"), "--no-build"]) == 2
    assert "--reprofile: name the profile" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_train_refuses_another_profile_and_writes_nothing(tmp_path, capsys):
    run = _cpu_run(tmp_path)
    before = _tree(run)
    for argv in (["train-vae", str(run), "--profile", "smoke"], ["train-unet", str(run), "--profile", "smoke"]):
        assert cli.main(argv) == 2
        assert "--profile smoke: the run" in capsys.readouterr().err
    assert _tree(run) == before


def test_train_uses_and_then_records_the_run_profile(tmp_path, monkeypatch, capsys):
    """Without --profile a stage trains with the recorded settings (a profile loaded from a path too: it used to be
    looked up by name in profiles/); with --profile on a run without a record, the profile is recorded once the model
    is trained, and not when training fails."""
    import diffusets_core.train.vae as train_vae_module

    calls = []

    def fake_train(run_dir, model, train, *, seed, resume, **extra):
        calls.append((model, train, seed, extra))
        if train.get("max_steps") == 13:
            raise ValueError("training failed")
        return {"steps": train["max_steps"]}

    monkeypatch.setattr(train_vae_module, "train_vae", fake_train)
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 4\nvae:\n  train: {max_steps: 5, lr: 2e-3}\n  extra: {kl_weight: 1e-4}\n")
    run = tmp_path / "run"
    write_profile_record(run, load_profile(mine))
    assert cli.main(["train-vae", str(run)]) == 0
    model, train, seed, extra = calls[-1]
    assert (train["max_steps"], train["lr"], seed, extra) == (5, 0.002, 4, {"kl_weight": 0.0001})
    assert "profile 'mine' (the run's), as recorded in" in capsys.readouterr().err

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert cli.main(["train-vae", str(fresh), "--profile", "smoke", "--max-steps", "13"]) == 2
    assert not (fresh / PROFILE_FILE).exists()  # training failed: not recorded
    assert cli.main(["train-vae", str(fresh), "--profile", "smoke", "--max-steps", "2"]) == 0
    assert recorded_profile(fresh).name == "smoke"


# ---- paths and counts --------------------------------------------------------------------------------------------
def test_book_checks_data_paths_before_running(nbdir, tmp_path, capsys):
    cohort = _yaml(tmp_path / "c.yaml", notebooks="[01_data]")
    _chapter(nbdir, "01_data")
    run = tmp_path / "run"
    assert (
        cli.main(["book", "--profile", str(cohort), "--run-dir", str(run), "--data-dir", str(tmp_path), "--no-build"])
        == 2
    )
    assert "--data-dir: profile 'c' builds its own cohort (data.source: cohort) and would ignore" in (
        capsys.readouterr().err
    )
    wfdb = _yaml(
        tmp_path / "w.yaml", notebooks="[01_data]", data=f"data: {{source: wfdb, data_dir: {tmp_path / 'nope'}}}\n"
    )
    assert cli.main(["book", "--profile", str(wfdb), "--run-dir", str(run), "--data-dir", str(tmp_path / "no")]) == 2
    assert f"--data-dir: no such folder {tmp_path / 'no'}" in capsys.readouterr().err
    assert cli.main(["book", "--profile", str(wfdb), "--run-dir", str(run), "--no-build"]) == 2
    assert f"data.data_dir: no such folder {tmp_path / 'nope'}" in capsys.readouterr().err
    assert not run.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cohort", "--n", "0", "--out", "{run}/c"], "argument --n: expected a whole number >= 1, got '0'"),
        (["prepare", "{run}", "--source", "mimic", "--data-dir", "{run}", "--n", "0"], "argument --n: expected"),
        (["prepare", "{run}", "--source", "mimic", "--data-dir", "{run}", "--workers", "-1"], "argument --workers"),
        (["embed", "{run}", "--batch-size", "0"], "argument --batch-size: expected a whole number >= 1"),
        (["train-vae", "{run}", "--max-steps", "0"], "argument --max-steps: expected a whole number >= 1, got '0'"),
        (["train-unet", "{run}", "--max-steps", "-2"], "argument --max-steps: expected a whole number >= 1, got '-2'"),
        (["train-vae", "{run}", "--device", "bogus"], "argument --device: not a device: 'bogus'"),
        (["encode", "{run}", "--device", "gpu0"], "argument --device: not a device: 'gpu0'"),
        (["encode", "{run}", "--device", "cpu:0"], "argument --device: 'cpu:0': the CPU has no device index (use cpu)"),
        (["evaluate", "{run}", "--steps", "0"], "argument --steps: expected a whole number >= 1, got '0'"),
        (["evaluate", "{run}", "--n-eval", "-3"], "argument --n-eval: expected a whole number >= 1"),
        (["evaluate", "{run}", "--clip-steps", "0"], "argument --clip-steps: expected a whole number >= 1"),
        (["evaluate", "{run}", "--guidance-scale", "-1"], "argument --guidance-scale: expected a finite number >= 0"),
        (["guidance-sweep", "{run}", "--n", "0"], "argument --n: expected a whole number >= 1, got '0'"),
        (["guidance-sweep", "{run}", "--steps", "0"], "argument --steps: expected a whole number >= 1"),
    ],
)
def test_counts_and_devices_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    """`train-vae --max-steps 0` used to replace the run's VAE with an untrained one; `guidance-sweep --steps 0` and
    `evaluate --steps 0` trained judges into the run before failing."""
    run = _cpu_run(tmp_path)
    before = _tree(run)
    with pytest.raises(SystemExit) as exc:
        cli.main([a.format(run=run) for a in argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert _tree(run) == before and not (run / "c").exists()


def test_training_settings_out_of_range_are_refused_at_load(tmp_path):
    from diffusets_core.train.loop import TrainConfig

    p = tmp_path / "x.yaml"
    p.write_text("vae:\n  train: {max_steps: 0, lr: -1e-3}\n")
    with pytest.raises(ProfileError, match=r"x\.yaml: vae: train\.max_steps must be >= 1, got 0; train\.lr must be"):
        load_profile(p)
    with pytest.raises(ValueError, match=r"train\.batch_size must be >= 1, got 0"):
        TrainConfig(batch_size=0)
    TrainConfig(grad_clip=0.0, warmup_steps=0, ema_decay=0.0)  # 0 is meaningful for these
