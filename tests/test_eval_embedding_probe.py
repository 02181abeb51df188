"""The k-NN heart-rate probe on report vectors: vectors that encode heart rate beat shuffled labels."""

import numpy as np

from diffusets_core.eval.embedding_probe import hr_probe


def test_probe_finds_heart_rate_in_vectors_that_carry_it():
    rng = np.random.default_rng(0)
    hr = rng.uniform(50, 150, 60)
    X = np.stack([np.cos(hr / 60), np.sin(hr / 60), rng.normal(0, 0.01, 60)], axis=1)
    table, numbers = hr_probe(X, hr, seed=0)
    assert numbers["k"] == 6
    assert table.index.tolist() == ["6-NN on report vectors", "6-NN, heart rates shuffled", "predict the mean"]
    assert numbers["mae"] < 0.5 * numbers["mae_shuffled"] and numbers["r"] > 0.9
    assert table["MAE (bpm)"].iloc[2] == round(float(np.abs(hr - hr.mean()).mean()), 2)
    again = hr_probe(X, hr, seed=0)[1]
    assert again == numbers
