"""The embedded default cohort: labelled synthetic 12-lead ECGs with measured machine-style reports."""

from .build import agreement_table, build_cohort, make_record

__all__ = ["build_cohort", "agreement_table", "make_record"]
