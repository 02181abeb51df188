"""Applications of a trained DiffuSETS model (the paper's §"applications"): rare-disease generation from a
textual description, knowledge discovery by controlled generation, and an education gallery.

Modules: :mod:`.stats` (effect sizes, bootstrap CIs, verdicts), :mod:`.descriptions` (stage 1: condition
name -> clinical description, from a cited table or an LLM), :mod:`.rare_disease` (stage 2: generate and test
the expected signature against matched controls), :mod:`.knowledge` (one-factor-changed experiments, the
embedding-space view, gallery and quiz helpers).
"""
