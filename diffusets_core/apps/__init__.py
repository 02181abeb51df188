"""Applications of a trained DiffuSETS model (the paper's section on applications) and the chapters' steps.

Submodules are imported by the caller (``from diffusets_core.apps import rare_disease``); what each one holds:

Applications
    ``descriptions`` (stage 1 of rare-disease generation: condition name -> clinical description, from a cited
    table or an LLM), ``rare_disease`` (stage 2: generate and test the expected signature against matched
    controls), ``knowledge`` (one-factor-changed experiments, the embedding-space view, gallery and quiz helpers),
    ``stats`` (effect sizes, bootstrap CIs, verdicts).

The ECG explorer (chapter 10)
    ``explorer`` (generate, measure, read and compare one ECG), ``explorer_widget`` (the ipywidgets front end),
    ``explorer_grid`` (the pre-rendered page the book ships).

Chapter steps
    ``sampling`` (chapter 4: sampler comparison, guidance sweep), ``generation`` (chapter 5: report and heart-rate
    grids), ``summaries`` (the chapters' findings as sentences computed from their tables).
"""

__all__ = [
    "descriptions",
    "explorer",
    "explorer_grid",
    "explorer_widget",
    "generation",
    "knowledge",
    "rare_disease",
    "sampling",
    "stats",
    "summaries",
]
