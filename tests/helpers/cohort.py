"""Shared test inputs for the cohort's edit and interpreter tests."""

from __future__ import annotations


def gan_templates(seeds, at_least: int) -> list:
    """Median-beat templates of the deepfake-ecg records of ``seeds`` (records with too few clean beats left
    out); asserts that at least ``at_least`` remain."""
    from diffusets_core.data.cohort.morphology import gan_records, make_template

    out = []
    for raw in gan_records(list(seeds)):
        try:
            out.append(make_template(raw))
        except ValueError:
            continue
    assert len(out) >= at_least, f"only {len(out)} usable templates from {len(list(seeds))} GAN records"
    return out
