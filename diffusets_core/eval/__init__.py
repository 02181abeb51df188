"""Evaluation: signal level (FID/rFID, precision-recall, density-coverage, CLIP score), feature level (HR and
intervals measured on the ECG) and diagnostic level (classifier, TSTR/TRTR).

Submodules are imported lazily by the caller: ``from diffusets_core.eval import metrics, features, clip,
classifiers``.
"""

__all__ = ["metrics", "features", "clip", "classifiers"]
