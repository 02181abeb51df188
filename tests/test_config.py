"""Profiles load strictly: every shipped profile is valid, typos and bad values are clear errors."""

from pathlib import Path

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
