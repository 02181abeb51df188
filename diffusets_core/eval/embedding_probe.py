"""Does a report embedding carry the patient's heart rate? A k-nearest-neighbour probe (text chapter).

:func:`hr_probe` predicts each record's heart rate from its report vector alone with a k-NN regressor (cosine
metric, 5-fold cross-validation) and compares it with the same regressor on shuffled heart rates and with the
constant that predicts the mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["hr_probe"]


def hr_probe(X: np.ndarray, hr: np.ndarray, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """k-NN heart-rate probe on report vectors ``X`` (``(N, D)``) against heart rates ``hr`` (``(N,)``, bpm).

    ``k = min(10, max(1, N // 10))``; folds and the label shuffle are seeded with ``seed``. Returns the table of
    MAE (bpm, 2 decimals) for the probe, the shuffled-label probe and the mean predictor, and the numbers
    ``{"k", "mae", "mae_shuffled", "mae_mean", "r"}`` (``r``: correlation of predicted with measured HR).
    Needs ``N >= 5`` (5 folds).
    """
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor

    y = np.asarray(hr)
    k = min(10, max(1, len(y) // 10))
    cv = KFold(5, shuffle=True, random_state=seed)
    pred = cross_val_predict(KNeighborsRegressor(k, metric="cosine"), X, y, cv=cv)
    rng = np.random.default_rng(seed)
    y_shuf = rng.permutation(y)
    pred_shuf = cross_val_predict(KNeighborsRegressor(k, metric="cosine"), X, y_shuf, cv=cv)
    numbers = {
        "k": k,
        "mae": np.abs(pred - y).mean(),
        "mae_shuffled": np.abs(pred_shuf - y_shuf).mean(),
        "mae_mean": np.abs(y - y.mean()).mean(),
        "r": np.corrcoef(pred, y)[0, 1],
    }
    table = pd.DataFrame(
        {"MAE (bpm)": [numbers["mae"], numbers["mae_shuffled"], numbers["mae_mean"]]},
        index=[f"{k}-NN on report vectors", f"{k}-NN, heart rates shuffled", "predict the mean"],
    ).round(2)
    return table, numbers
