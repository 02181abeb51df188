"""export_batch: PNGs need a plot function from the caller (viz sits above diffusion), refused before any write."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from diffusets_core.generate.writer import export_batch


def _output(n=2):
    cond = pd.DataFrame(
        {"report": ["Sinus rhythm"] * n, "sex": ["F"] * n, "age": [50] * n, "hr": [70] * n, "seed": list(range(n))}
    )
    return SimpleNamespace(conditions=cond, signals=np.zeros((n, 12, 1024), np.float32), fs=102.4, model={})


def test_png_without_plot_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="plot="):
        export_batch(_output(), tmp_path / "out", formats=("npy", "png"))
    assert not (tmp_path / "out").exists()


def test_png_drawn_with_the_given_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = []

    def plot(sig, fs, title=None):
        calls.append((sig.shape, fs, title))
        return plt.figure()

    names = export_batch(_output(), tmp_path, formats=("npy", "png"), plot=plot, png_limit=1)
    assert names == ["ecg_000000", "ecg_000001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecg_000000.npy", "ecg_000000.png", "ecg_000001.npy"]
    assert calls == [((12, 1024), 102.4, "Sinus rhythm | F, 50 y, HR 70 | seed 0")]
