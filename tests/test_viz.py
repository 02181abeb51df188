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
    others = sorted(float(l.get_ydata()[0]) for l in traces if l.get_xdata()[0] == pytest.approx(8 + 2 * 2.5 * MM_PER_S))
    assert bases[-1] - others[-1] == pytest.approx(MM_PER_MV)  # V4 (1 mV) sits 10 mm above V1's row base
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_shape_error_names_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(12, L\)"):
        plot_12lead(np.zeros((8, 100)), 100.0)
