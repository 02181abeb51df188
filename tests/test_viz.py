"""The 12-lead paper plot keeps true scale and finds leads by name."""

import numpy as np
import pytest

from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.viz.ecgplot import MM_PER_MV, MM_PER_S, plot_12lead


def test_true_scale_and_lead_lookup():
    fs = 102.4
    sig = np.zeros((12, 1024), dtype=np.float32)
    sig[CANONICAL_LEADS.index("V4"), :] = 1.0  # 1 mV offset on V4 only
    fig = plot_12lead(sig, fs, layout="3x4+R")
    ax = fig.axes[0]
    # width: 8 mm margin + 10 s at 25 mm/s
    assert ax.get_xlim() == pytest.approx((0, 8 + 10 * MM_PER_S))
    traces = [l for l in ax.lines if len(l.get_xdata()) > 10]
    assert len(traces) == 13  # 12 leads x 2.5 s + one rhythm strip
    offsets = sorted({round(float(np.ptp(l.get_ydata())), 3) for l in traces})
    assert offsets == [0.0]  # every trace is flat; V4 is shifted as a whole
    v4 = [l for l in traces if l.get_xdata()[0] == pytest.approx(8 + 3 * 2.5 * MM_PER_S)]
    bases = sorted(float(l.get_ydata()[0]) for l in v4)
    others = sorted(
        float(l.get_ydata()[0]) for l in traces if l.get_xdata()[0] == pytest.approx(8 + 2 * 2.5 * MM_PER_S)
    )
    assert bases[-1] - others[-1] == pytest.approx(MM_PER_MV)  # V4 (1 mV) sits 10 mm above V1's row base
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_shape_error_names_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(12, L\)"):
        plot_12lead(np.zeros((8, 100)), 100.0)


def test_chapter_figures_draw_from_their_tables():
    from types import SimpleNamespace

    import matplotlib.pyplot as plt
    import pandas as pd

    from diffusets_core.viz import chapters as C

    vae_cfg = SimpleNamespace(downsample_factor=8, derived_leads=True)
    unet_cfg = SimpleNamespace(
        arch="film", channel_mults=[1, 2], base_channels=32, time_steps=1000, in_channels=4, levels=2, kernel_size=3
    )
    fig = C.plot_pipeline(vae_cfg, unet_cfg, 384)
    assert "FiLM U-Net, 2 levels\n32–64 channels\nε-prediction, 1000 steps" in [t.get_text() for t in fig.axes[0].texts]
    hist = pd.DataFrame({"step": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4], "val_loss": [None, 0.6, None]})
    ax = C.plot_training_history(hist, ylabel="loss", title="t").axes[0]
    assert [l.get_label() for l in ax.lines] == ["train", "validation (EMA)"]
    ab = np.linspace(0.999, 0.01, 10)
    assert len(C.plot_noise_schedule(ab, "s").axes[0].lines) == 2
    out = SimpleNamespace(signals=np.zeros((2, 12, 1024)))
    fig = C.plot_sampler_traces({"ddpm": out, "ddim": out}, 102.4, "A|B")
    assert len(fig.axes) == 2 and fig.axes[0].get_title().endswith("A / B")
    grid = pd.DataFrame(
        {
            "report": ["a", "a", "b", "b"],
            "sex": ["M", "F"] * 2,
            "age": [63, 35] * 2,
            "hr": [70] * 4,
            "measured HR": [70.1] * 4,
        }
    )
    assert len(C.plot_lead_ii_grid(np.zeros((4, 12, 1024)), 102.4, grid, n_cols=2).axes) == 4
    table = pd.DataFrame(
        {
            "experiment": ["e1", "e1"],
            "feature": ["f1", "f2"],
            "effect": [1.0, -0.5],
            "verdict": ["shift up", "no shift"],
        }
    )
    fig = C.plot_shift_heatmap(table, ["e1"], ["f1", "f2"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.0 *", "-0.5"]
    assert C.patient_label({"sex": "F", "age": 63.4, "hr": 71.6}) == "F, 63 y, HR 72"
    plt.close("all")
