"""The embedded default cohort: labelled synthetic 12-lead ECGs with measured machine-style reports."""

from .build import CohortBuild, agreement_table, build_cohort, ensure_cohort, make_record, source_data_dir

__all__ = ["build_cohort", "agreement_table", "make_record", "CohortBuild", "ensure_cohort", "source_data_dir"]
