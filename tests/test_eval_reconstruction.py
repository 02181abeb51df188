"""eval.reconstruction: what an autoencoder keeps."""

import warnings

import numpy as np

from diffusets_core.eval.reconstruction import reconstruction_metrics


def test_unmeasurable_qrs_is_nan_without_a_numpy_warning():
    """Flat reconstructions have no QRS to measure: the ratio is NaN and numpy's all-NaN warning (which printed a
    source path into the built book) stays quiet."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 12, 1024)) * 0.05).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        row = reconstruction_metrics(x, np.zeros_like(x), 102.4, physiology=True, workers=0)
    assert np.isnan(row["qrs_ratio"]) and np.isnan(row["qrs_real_ms"])
    assert row["rmse_uv"] > 0
