"""The gpu profile (sized for one H100/H200) loads, validates against the notebooks and, with its steps and data
scaled down by overrides, trains on the CPU through the real trainers at its own model sizes; the paper profile
carries the paper's U-Net recipe; ``--set`` overrides are checked like a profile file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusets_core import cli
from diffusets_core.book import check_profile_parameters
from diffusets_core.config import (
    ProfileError,
    load_profile,
    parse_override,
    profile_changes,
    run_profile,
    with_overrides,
)
from diffusets_core.train.loop import TrainConfig

#: What makes the gpu profile a 2-step build on 2 CPU cores: every training 2 steps at batch 2, a small cohort, the
#: chapters' sample counts and judge steps cut down; the model sizes stay the profile's.
TWO_STEPS = {
    "data.n": 160,
    "data.workers": 2,
    "text.batch_size": 64,
    "vae.train.max_steps": 2,
    "vae.train.batch_size": 2,
    "vae.train.val_every": 2,
    "vae.train.checkpoint_every": 2,
    "vae.train.log_every": 1,
    "unet.train.max_steps": 2,
    "unet.train.batch_size": 2,
    "unet.train.val_every": 2,
    "unet.train.checkpoint_every": 2,
    "unet.train.log_every": 1,
    "unet.extra.wording_variants": 1,
    "notebook_params.04_diffusion.n_compare": 2,
    "notebook_params.04_diffusion.ddpm_steps": 3,
    "notebook_params.04_diffusion.sweep_scales": [1.0, 2.0],
    "notebook_params.04_diffusion.n_sweep": 4,
    "notebook_params.04_diffusion.sweep_steps": 2,
    "notebook_params.04_diffusion.clip_steps": 2,
    "notebook_params.04_diffusion.clf_steps": 2,
    "notebook_params.04_diffusion.workers": 0,
}


def test_gpu_profile_loads_and_validates_against_the_notebooks():
    prof = load_profile("gpu")
    check_profile_parameters(prof, prof.notebooks, where="profiles/gpu.yaml")
    assert prof.data.source == "cohort" and 20_000 <= prof.data.n <= 40_000 and prof.data.workers == 16
    assert prof.budget_minutes is not None and prof.budget_minutes <= 20
    bench = prof.notebook_params["06_benchmark"]
    assert bench["n_eval"] is None and bench["min_per_class"] >= 100 and bench["per_combination"] >= 100
    assert bench["workers"] == 16 and prof.notebook_params["04_diffusion"]["workers"] == 16
    # sized beyond the cpu profile's networks
    cpu = load_profile("cpu")
    assert prof.unet.model["base_channels"] > cpu.unet.model["base_channels"]
    assert min(prof.vae.model["channels"]) > min(cpu.vae.model["channels"])
    text = (Path(__file__).resolve().parents[1] / "profiles" / "gpu.yaml").read_text()
    assert "ESTIMATE" in text and "NOT A MEASUREMENT" in text


def test_gpu_profile_trains_in_bf16_on_cuda_and_fp32_on_the_cpu():
    prof = load_profile("gpu")
    for stage in (prof.vae, prof.unet):
        assert "amp" not in stage.train  # the default: bf16 autocast on CUDA
        cfg = TrainConfig.from_overrides(stage.train, prof.seed)
        assert cfg.amp_enabled(torch.device("cuda")) and not cfg.amp_enabled(torch.device("cpu"))


def test_paper_profile_uses_the_papers_unet_recipe():
    """Batch 512 and learning rate 5e-4 (the paper's Methods, the authors' README), not the release config's 2048 /
    1e-4; 200 epochs of the training split."""
    train = load_profile("paper").unet.train
    assert train["batch_size"] == 512 and train["lr"] == pytest.approx(5e-4)
    assert 200 * 600_000 / 512 <= train["max_steps"] <= 200 * 800_000 / 512


# ---- overrides --------------------------------------------------------------------------------------------------
def test_overrides_change_only_what_they_name():
    base = load_profile("gpu")
    small = load_profile("gpu", TWO_STEPS)
    changed = {c.split(":")[0] for c in profile_changes(base, small)}
    assert changed == set(TWO_STEPS)
    assert small.vae.model == base.vae.model and small.unet.model == base.unet.model  # the sizes stay
    assert small.unet.train["lr"] == base.unet.train["lr"] and small.unet.train["max_steps"] == 2
    check_profile_parameters(small, small.notebooks)
    assert with_overrides(base, {"seed": 3}).seed == 3 and base.seed == 0  # a new profile; the old one unchanged


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "unet.train.max_stepz",
            2,
            r"override unet\.train\.max_stepz: unknown key 'max_stepz' in unet\.train; allowed: .*'max_steps'",
        ),
        ("dat.n", 2, r"override dat\.n: unknown key 'dat'; allowed: .*'data'"),
        ("data.n.x", 2, r"override data\.n\.x: data\.n is a value, not a section"),
        ("unet.train", 2, r"override unet\.train: unet\.train is a section"),
        ("name", "x", r"override name: unknown key 'name'"),
        (
            "notebook_params.04_difusion.n_compare",
            2,
            r"override notebook_params\.04_difusion\.n_compare: no notebook '04_difusion'",
        ),
        ("notebook_params.04_diffusion", 2, r"expected notebook_params\.<notebook>\.<parameter>"),
        ("data.n", "many", r"with override\(s\) data\.n: data\.n: expected int, got str 'many'"),
        ("unet.train.max_steps", 0, r"train\.max_steps must be >= 1, got 0"),
        ("unet.model.base_channels", 1.5, r"unet\.model\.base_channels: expected int, got float 1\.5"),
    ],
)
def test_a_bad_override_names_the_key(key, value, message):
    with pytest.raises(ProfileError, match=message):
        load_profile("gpu", {key: value})


def test_an_override_of_an_undeclared_notebook_parameter_is_refused():
    prof = load_profile("gpu", {"notebook_params.04_diffusion.n_comparre": 2})
    with pytest.raises(ProfileError, match=r"notebook_params\.04_diffusion: \['n_comparre'\] not declared"):
        check_profile_parameters(prof, prof.notebooks)


def test_set_values_are_read_as_profile_values():
    assert parse_override("unet.train.lr=2e-3") == ("unet.train.lr", 0.002)
    assert parse_override("vae.model.channels=[64, 128, 256]") == ("vae.model.channels", [64, 128, 256])
    assert parse_override("notebook_params.06_benchmark.n_eval=null") == ("notebook_params.06_benchmark.n_eval", None)
    assert parse_override("data.data_dir=") == ("data.data_dir", None)
    assert parse_override('data.n="200"') == ("data.n", "200")  # quoted: a string, refused where an int is expected
    assert parse_override(" data.n = 12") == ("data.n", 12)
    for bad in ("data.n", "=3", "data.n=[1,"):
        with pytest.raises(ValueError):
            parse_override(bad)


def test_run_profile_applies_overrides_to_the_recorded_profile_too(tmp_path):
    from diffusets_core.config import write_profile_record

    run = tmp_path / "run"
    write_profile_record(run, load_profile("gpu"))
    choice = run_profile(run, None, overrides={"unet.train.max_steps": 7})
    assert choice.profile.name == "gpu" and choice.profile.unet.train["max_steps"] == 7
    assert choice.changes() == ["unet.train.max_steps: 2500 -> 7"]


def test_book_command_reports_a_bad_set_before_anything_runs(tmp_path, capsys):
    run = tmp_path / "run"
    rc = cli.main(["book", "--profile", "gpu", "--run-dir", str(run), "--no-build", "--set", "unet.train.max_stepz=2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "override unet.train.max_stepz: unknown key 'max_stepz'" in err
    assert not run.exists()
    with pytest.raises(SystemExit):  # argparse: no '='
        cli.main(["book", "--profile", "gpu", "--set", "data.n"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


# ---- a genuinely executed 2-step training at the gpu profile's model sizes ---------------------------------------
@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory) -> Path:
    """A 24-record embedded cohort, prepared and embedded (32-d hash embedder: the text model is not under test)."""
    from diffusets_core.data.cohort import build_cohort
    from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
    from diffusets_core.text.embed import EmbedConfig, embed_run

    root = tmp_path_factory.mktemp("gpu2")
    build_cohort(root / "cohort", n=24, seed=3, workers=1, progress=False)
    config = PrepareConfig(fractions=(0.7, 0.15, 0.15))
    prepare_dataset("cohort", root / "cohort", root / "run", config, workers=1, progress=False)
    embed_run(root / "run", EmbedConfig(backend="hash"), progress=False, dim=32)
    return root / "run"


def test_two_steps_of_the_gpu_profiles_vae_and_unet_through_the_real_trainers(cohort_run):
    """The gpu profile's VAE (64-256 channels) and FiLM U-Net (base 128) at their full sizes, 2 steps at batch 2 with
    the profile's recipe (Min-SNR, wording variants, separate condition dropout), on the CPU."""
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import train_vae

    prof = load_profile("gpu", TWO_STEPS)
    on_cpu = {"progress": False, "device": "cpu"}
    vae = train_vae(cohort_run, prof.vae.model, {**prof.vae.train, **on_cpu}, seed=prof.seed, **prof.vae.extra)
    assert vae["steps"] == 2 and 7.0e6 < vae["params"] < 8.0e6
    encode_latents(cohort_run, device="cpu")
    unet = train_unet(cohort_run, prof.unet.model, {**prof.unet.train, **on_cpu}, seed=prof.seed, **prof.unet.extra)
    assert unet["steps"] == 2 and 3.0e7 < unet["params"] < 4.5e7
    meta = json.loads((cohort_run / "unet" / "config.json").read_text())["meta"]
    assert meta["unet_config"]["base_channels"] == 128 and meta["loss_weighting"] == "min_snr"
    assert meta["wording_variants"]["records_worded"] > 0
    for stage in ("vae", "unet"):
        losses = [h["train_loss"] for h in _history(cohort_run / stage) if "train_loss" in h]
        assert losses and all(torch.isfinite(torch.tensor(losses)))


def _history(out: Path) -> list[dict]:
    lines = (out / "history.csv").read_text().splitlines()
    keys = lines[0].split(",")
    return [{k: float(v) for k, v in zip(keys, line.split(",")) if v != ""} for line in lines[1:]]


# ---- the profile's chapters 01-04, end to end, 2 steps -----------------------------------------------------------
@pytest.mark.slow
def test_two_step_build_of_the_gpu_profiles_chapters_01_to_04(tmp_path):
    """`diffusets book --profile gpu --only 00_methods ... 04_diffusion --no-build` with TWO_STEPS as --set options:
    the chapters execute on the CPU with the profile's model sizes and the run records the changed profile."""
    from diffusets_core.config import recorded_profile

    run = tmp_path / "run"
    args = ["book", "--profile", "gpu", "--run-dir", str(run), "--no-build"]
    args += ["--only", "00_methods", "01_data", "02_text", "03_vae", "04_diffusion"]
    for key, value in TWO_STEPS.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert cli.main(args) == 0
    for nb in ("00_methods", "01_data", "02_text", "03_vae", "04_diffusion"):
        assert (run / "executed" / f"{nb}.ipynb").is_file(), nb
    assert (run / "unet" / "model.pt").is_file()
    rec = recorded_profile(run)
    assert rec.name == "gpu" and rec.unet.train["max_steps"] == 2 and rec.unet.model == load_profile("gpu").unet.model
