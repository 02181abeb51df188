"""Profiles load strictly: every shipped profile is valid, typos and bad values are clear errors."""

from pathlib import Path
from typing import Any

import pytest

from diffusets_core.config import PROFILES_DIR, ProfileError, load_profile


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
def test_shipped_profiles_load(name):
    prof = load_profile(name)
    assert prof.name == name
    assert prof.notebooks and all(
        (PROFILES_DIR.parent / "notebooks" / f"{nb}.ipynb").is_file() for nb in prof.notebooks
    )
    assert prof.resolved_run_dir().name == name


def test_unknown_key_is_named(tmp_path: Path):
    p = tmp_path / "typo.yaml"
    p.write_text("data:\n  sorce: cohort\n")
    with pytest.raises(ProfileError, match=r"unknown key\(s\) \['sorce'\]"):
        load_profile(p)


def test_bad_source_and_missing_data_dir(tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  source: hdf5\n")
    with pytest.raises(ProfileError, match="data.source must be one of"):
        load_profile(p)
    p.write_text("data:\n  source: mimic\n")
    with pytest.raises(ProfileError, match="data_dir is required"):
        load_profile(p)


def test_missing_profile_lists_available():
    with pytest.raises(ProfileError, match="available: .*smoke"):
        load_profile("no-such-profile")


def test_run_dir_override(tmp_path: Path):
    prof = load_profile("smoke")
    assert prof.resolved_run_dir(tmp_path / "x") == (tmp_path / "x").resolve()


def test_unknown_stage_extra_key_is_named(tmp_path: Path):
    p = tmp_path / "extra.yaml"
    p.write_text("unet:\n  extra: {loss_weigting: min_snr}\n")
    with pytest.raises(ProfileError, match=r"unet.extra: unknown key\(s\) \['loss_weigting'\].*loss_weighting"):
        load_profile(p)
    p.write_text("unet:\n  extra: {loss_weighting: min_snr, snr_gamma: 5}\nvae:\n  extra: {kl_weight: 0.001}\n")
    assert load_profile(p).unet.extra["loss_weighting"] == "min_snr"


# ---- typed values: every value is checked against the type that receives it, at load --------------------------------
def _profile(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(text)
    return p


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path: Path):
    """YAML 1.1 reads 2e-3 and 1e-4 as strings; they used to load and fail deep in training."""
    p = _profile(
        tmp_path,
        "vae:\n  train: {lr: 2e-3, max_steps: 1e3}\n  extra: {kl_weight: 1e-4}\n"
        "unet:\n  train: {lr: 1E-4, weight_decay: .5e-2, betas: [9e-1, 0.999]}\n  model: {cond_dropout: 1.5e-1}\n"
        "notebook_params:\n  04_diffusion: {sweep_scales: [1e0, 2.5]}\n",
    )
    prof = load_profile(p)
    assert prof.vae.train["lr"] == 2e-3 and isinstance(prof.vae.train["lr"], float)
    assert prof.vae.train["max_steps"] == 1000 and type(prof.vae.train["max_steps"]) is int
    assert prof.vae.extra["kl_weight"] == 1e-4 and isinstance(prof.vae.extra["kl_weight"], float)
    assert prof.unet.train["lr"] == 1e-4 and prof.unet.train["weight_decay"] == 0.005
    assert prof.unet.train["betas"] == [0.9, 0.999]
    assert prof.unet.model["cond_dropout"] == 0.15
    assert prof.notebook_params["04_diffusion"]["sweep_scales"] == [1.0, 2.5]


def test_quoted_count_is_refused_with_key_path_and_type(tmp_path: Path):
    """n: "200" used to reach DataConfig.validate and raise a TypeError traceback from `diffusets book`."""
    p = _profile(tmp_path, 'data:\n  n: "200"\n')
    with pytest.raises(ProfileError) as exc:
        load_profile(p)
    assert str(exc.value) == f"{p}: data.n: expected int, got str '200'"


@pytest.mark.parametrize(
    "text, message",
    [
        ("unet:\n  train: {n_steps: 3}\n", r"unet\.train: unknown key\(s\) \['n_steps'\]"),
        ("vae:\n  model: {chanels: [8]}\n", r"vae\.model: unknown key\(s\) \['chanels'\]; allowed: .*'channels'"),
        ('unet:\n  train: {lr: "2e-3"}\n', r"unet\.train\.lr: expected float, got str '2e-3'$"),
        ('vae:\n  extra: {kl_weight: "fast"}\n', r"vae\.extra\.kl_weight: expected float, got str 'fast'$"),
        ("unet:\n  train: {batch_size: 32.5}\n", r"unet\.train\.batch_size: expected int, got float 32\.5$"),
        ("unet:\n  train: {max_steps: true}\n", r"unet\.train\.max_steps: expected int, got bool True$"),
        ("seed: false\n", r": seed: expected int, got bool False$"),
        ("data:\n  baseline_removal: 1\n", r"data\.baseline_removal: expected bool, got int 1$"),
        ("vae:\n  model: {channels: 32}\n", r"vae\.model\.channels: expected a list of int, got int 32$"),
        ('unet:\n  model: {attn_levels: [1, "2"]}\n', r"unet\.model\.attn_levels\[1\]: expected int, got str '2'$"),
        ("unet:\n  train: {betas: [0.9]}\n", r"unet\.train\.betas: expected a list of 2 \(float, float\), got 1 item"),
        ("unet:\n  train: {grad_clip: [1]}\n", r"unet\.train\.grad_clip: expected float, got list \[1\]$"),
        ("text:\n  batch_size: '64'\n", r"text\.batch_size: expected int, got str '64'$"),
        ("notebooks: 01_data\n", r": notebooks: expected a list of str, got str '01_data'$"),
        ("notebook_params:\n  04_diffusion: 3\n", r"notebook_params\.04_diffusion: expected a mapping, got int 3$"),
        ("data: [cohort]\n", r": data: expected a mapping, got list \['cohort'\]$"),
        ("budget_minutes: soon\n", r": budget_minutes: expected float, got str 'soon'$"),
        ("unet:\n  extra: {loss_weighting: 2}\n", r"unet\.extra\.loss_weighting: expected str, got int 2$"),
    ],
)
def test_wrong_types_name_the_key_path_and_the_expected_type(tmp_path: Path, text: str, message: str):
    p = _profile(tmp_path, text)
    with pytest.raises(ProfileError, match=message) as exc:
        load_profile(p)
    assert str(exc.value).startswith(f"{p}: ")


def test_ints_are_accepted_for_floats_and_nulls_for_optionals(tmp_path: Path):
    p = _profile(
        tmp_path,
        "budget_minutes: 5\ndata:\n  source: mimic\n  data_dir: m\n  n: null\n"
        "unet:\n  train: {lr: 1, grad_clip: null}\n  extra: {snr_gamma: 5}\n",
    )
    prof = load_profile(p)
    assert prof.budget_minutes == 5.0 and prof.data.n is None
    assert prof.unet.train["lr"] == 1.0 and isinstance(prof.unet.train["lr"], float)
    assert prof.unet.train["grad_clip"] is None and prof.unet.extra["snr_gamma"] == 5.0


def test_typed_loader_checks_literals_tuples_and_nested_dataclasses():
    """The rules beyond what today's profile fields use (a Literal, a fixed tuple, nested dataclasses)."""
    from dataclasses import dataclass, field
    from typing import Literal

    from diffusets_core.config import TypedLoader

    @dataclass
    class Inner:
        mode: Literal["a", "b"] = "a"
        pair: tuple[int, float] = (1, 2.0)

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)
        table: dict[str, list[int]] = field(default_factory=dict)

    loader = TypedLoader("t.yaml")
    got = loader.build(Outer, {"inner": {"mode": "b", "pair": [3, 4]}, "table": {"k": [1, 2.0]}}, "")
    assert got.inner.mode == "b" and got.inner.pair == [3, 4.0] and got.table == {"k": [1, 2]}
    with pytest.raises(ProfileError, match=r"^t\.yaml: inner\.mode: expected one of 'a', 'b', got str 'c'$"):
        loader.build(Outer, {"inner": {"mode": "c"}}, "")
    with pytest.raises(ProfileError, match=r"^t\.yaml: inner\.pair\[0\]: expected int, got float 1\.5$"):
        loader.build(Outer, {"inner": {"pair": [1.5, 2]}}, "")
    with pytest.raises(ProfileError, match=r"^t\.yaml: table\.k\[0\]: expected int, got str 'x'$"):
        loader.build(Outer, {"table": {"k": ["x"]}}, "")
    with pytest.raises(ProfileError, match=r"^t\.yaml: inner: unknown key\(s\) \['mod'\]"):
        loader.build(Outer, {"inner": {"mod": "a"}}, "")


def test_book_refuses_a_mistyped_profile_before_anything_runs(tmp_path: Path, capsys):
    """`diffusets book` with n: "200" used to print a TypeError traceback; now exit 2, the key path, no run dir."""
    from diffusets_core import cli

    p = _profile(tmp_path, 'data:\n  n: "200"\n')
    run = tmp_path / "run"
    assert cli.main(["book", "--profile", str(p), "--run-dir", str(run), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert "data.n: expected int, got str '200'" in err and "Traceback" not in err
    assert not run.exists()


def test_cohort_source_needs_a_count(tmp_path: Path):
    """The cohort is built with n records: null ("all") used to fail inside chapter 01, after the run was written."""
    p = _profile(tmp_path, "data:\n  source: cohort\n  n: null\n")
    with pytest.raises(ProfileError, match=r"data\.n: the cohort source builds n records; give a positive number"):
        load_profile(p)


def _chapter(nbdir: Path, name: str, parameters: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[cell, new_code_cell("pass")]), nbdir / f"{name}.ipynb")


def test_notebook_params_are_checked_against_the_notebook_defaults(tmp_path: Path, monkeypatch, capsys):
    """A notebook parameter's value has the type of its default in the notebook's parameters cell: "2" for an int
    used to be injected as a string (a TypeError inside the chapter), 2e1 as the float 20.0."""
    from diffusets_core import book, cli

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    monkeypatch.setattr(book, "NOTEBOOKS_DIR", nbdir)
    _chapter(
        nbdir,
        "05_generation",
        'run_dir = None\nprofile = None\nseed = 0\nn_per_condition = 2\nsteps = 20\nscale = 1.0\nsampler = "ddim"\n'
        'flag = False\nhr_sweep = [50]\nn_eval = None\nguidance: float | str = "auto"\n',
    )

    def check(params: str) -> Any:
        p = _profile(tmp_path, f"notebooks: [05_generation]\nnotebook_params:\n  05_generation: {params}\n")
        prof = load_profile(p)
        book.check_profile_parameters(prof, prof.notebooks, where=str(p))
        return prof.notebook_params["05_generation"], p

    where = str(tmp_path / "x.yaml")
    shown = str(nbdir / "05_generation.ipynb")
    for params, message in [
        (
            '{n_per_condition: "2"}',
            f"notebook_params.05_generation.n_per_condition: expected int (the default in {shown}), got str '2'",
        ),
        ("{steps: 2.5}", "notebook_params.05_generation.steps: expected int (the default in"),
        ("{steps: true}", "notebook_params.05_generation.steps: expected int (the default in"),
        ("{scale: '1.5'}", "notebook_params.05_generation.scale: expected float (the default in"),
        ("{sampler: 3}", "notebook_params.05_generation.sampler: expected str (the default in"),
        ("{flag: 1}", "notebook_params.05_generation.flag: expected bool (the default in"),
        ("{guidance: [1]}", f"notebook_params.05_generation.guidance: expected float or str (declared in {shown})"),
        ("{stepz: 3}", "notebook_params.05_generation: ['stepz'] not declared"),
    ]:
        with pytest.raises(ProfileError) as exc:
            check(params)
        assert str(exc.value).startswith(f"{where}: ") and message in str(exc.value), (params, str(exc.value))
    values, p = check("{steps: 2e1, scale: 2, flag: true, hr_sweep: [60, 70], n_eval: 5, guidance: 2.5}")
    assert values == {"steps": 20, "scale": 2.0, "flag": True, "hr_sweep": [60, 70], "n_eval": 5, "guidance": 2.5}
    assert type(values["steps"]) is int and type(values["scale"]) is float
    prof = load_profile(p)
    book.check_profile_parameters(prof, prof.notebooks)  # converts in place: what papermill injects
    assert type(book.notebook_parameters(prof, "05_generation", tmp_path)["steps"]) is int

    # the book command reports it before anything is written
    p = _profile(tmp_path, 'notebooks: [05_generation]\nnotebook_params:\n  05_generation: {n_per_condition: "2"}\n')
    run = tmp_path / "run"
    assert cli.main(["book", "--profile", str(p), "--run-dir", str(run), "--no-build"]) == 2
    err = capsys.readouterr().err
    assert f"{p}: notebook_params.05_generation.n_per_condition: expected int" in err and "Traceback" not in err
    assert not run.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 010\n", r"(?s)010: an int with a leading zero is ambiguous.*write 10 .*line 1"),  # YAML 1.1: octal 8
        ("seed: 1:30\n", r"seed: expected int, got str '1:30'$"),  # YAML 1.1: sexagesimal 90
        ("budget_minutes: 1:30.5\n", r"budget_minutes: expected float, got str '1:30.5'$"),
        ("seed: 1_000\n", r"seed: expected int, got str '1_000'$"),
        ("seed: 1\ndescription: a\nseed: 2\n", r"duplicate key 'seed' on line 3 \(first on line 1\)"),
        ("data:\n  n: 8\n  workers: 1\n  n: 9\n", r"duplicate key 'n' on line 4 \(first on line 2\)"),
    ],
)
def test_yaml_1_1_number_forms_and_duplicate_keys_are_refused(tmp_path: Path, text: str, message: str):
    """YAML 1.1 read 010 as 8 and 1:30 as 90, and kept the last of two equal keys, all silently."""
    with pytest.raises(ProfileError, match=message):
        load_profile(_profile(tmp_path, text))


def test_yaml_1_2_numbers_load(tmp_path: Path):
    prof = load_profile(_profile(tmp_path, "seed: 0x1f\nbudget_minutes: 1.5e1\ndata:\n  n: 0o17\n  workers: +3\n"))
    assert (prof.seed, prof.budget_minutes, prof.data.n, prof.data.workers) == (31, 15.0, 15, 3)
