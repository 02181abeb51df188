"""Progress files written by long stages and the follower the book runner shows them with."""

import io
import time

from diffusets_core.progress import PROGRESS_FILE, ProgressFollower, read_progress, write_progress
from tests.helpers.toy_train import make_trainer


def test_trainer_writes_progress(tmp_path):
    tr = make_trainer(tmp_path / "toy", 6)
    tr.fit()
    rec = read_progress(tmp_path / "toy" / PROGRESS_FILE)
    assert rec["stage"] == "toy" and rec["step"] == 6 and rec["total"] == 6
    assert rec["loss"] > 0 and rec["elapsed_s"] >= 0 and rec["eta_s"] == 0


def test_follower_draws_the_newest_stage(tmp_path, monkeypatch):
    import tqdm

    out = io.StringIO()
    real = tqdm.tqdm
    monkeypatch.setattr(tqdm, "tqdm", lambda *a, **kw: real(*a, **{**kw, "file": out, "mininterval": 0}))
    write_progress(tmp_path / "old", stage="old", step=1, total=2)  # written before the follower: ignored
    time.sleep(0.01)
    with ProgressFollower(tmp_path, "04_diffusion", interval=0.05):
        write_progress(tmp_path / "unet", stage="unet", step=30, total=120, loss=0.0512, eta_s=90.0, started=1)
        time.sleep(0.3)
    text = out.getvalue()
    assert "04_diffusion · unet" in text and "30/120" in text and "loss=0.0512" in text and "1.5 min" in text
    assert "old" not in text.replace("04_diffusion", "")
    assert read_progress(tmp_path / "missing.json") is None
