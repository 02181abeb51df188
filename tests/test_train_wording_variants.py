"""Training on many wordings of each report: the variants are the record's findings worded again by the wording
bank's training part, deterministic for a seed, drawn per sample at each step, and stored in the U-Net's meta."""

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusets_core.checkpoint import load_checkpoint
from diffusets_core.data.cohort import build_cohort
from diffusets_core.data.cohort import wordings as W
from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
from diffusets_core.data.store import SignalStore
from diffusets_core.text.embed import EmbedConfig, embed_run, load_run_embeddings
from diffusets_core.train.conditioning import variant_seed, wording_variant_arrays
from diffusets_core.train.unet import DiffusionLoss

TRAIN = {"max_steps": 2, "batch_size": 8, "val_every": 2, "checkpoint_every": 2, "progress": False, "device": "cpu"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("variants")
    build_cohort(root / "cohort", n=24, seed=5, workers=1, progress=False)
    prepare_dataset(
        "cohort", root / "cohort", root / "run", PrepareConfig(fractions=(0.7, 0.15, 0.15)), workers=1, progress=False
    )
    embed_run(root / "run", EmbedConfig(backend="hash"), progress=False, dim=32)
    return root / "run"


def _train_text(run):
    ids, vectors, _ = load_run_embeddings(run)
    pos = {r: i for i, r in enumerate(ids)}
    train_ids = SignalStore(run).records("train")["record_id"].astype(str).tolist()
    return train_ids, vectors[[pos[r] for r in train_ids]]


def test_variants_are_bank_rewordings_of_the_same_findings(run):
    ids, text = _train_text(run)
    v, stats = wording_variant_arrays(run, ids, text, 3, seed=0)
    assert v.shape == (len(ids), 4, 32) and v.dtype == np.float32
    np.testing.assert_array_equal(v[:, 0], text)
    assert stats["records_worded"] == len(ids) and stats["variant_reports"] == 3 * len(ids)
    # some variant differs from the record's own wording (6+ wordings per statement)
    assert (np.abs(v[:, 1:] - v[:, :1]).max(axis=-1) > 0).mean() > 0.5
    again, _ = wording_variant_arrays(run, ids, text, 3, seed=0)
    np.testing.assert_array_equal(v, again)
    other, _ = wording_variant_arrays(run, ids, text, 3, seed=1)
    assert not np.array_equal(v, other)
    # the variant reports (re-derived with the documented seed) say the record's findings in train wordings only
    recs = SignalStore(run).records().set_index("record_id")
    held = {W.normalise(t) for st in W.statements() for t in W.wordings(st, "held_out")}
    for rid in ids[:5]:
        fids = recs.loc[rid, "findings"].split("|")
        rng = np.random.default_rng(variant_seed(0, rid))
        for _ in range(3):
            report = W.word_report(fids, rng, "train").split("|")
            assert [W.finding_of(s) for s in report] == fids
            assert not {W.normalise(s) for s in report} & held


def test_records_without_findings_keep_their_own_text(run):
    ids, text = _train_text(run)
    import pandas as pd

    manifest = Path(run) / "data" / "manifest.csv"
    saved = manifest.read_text()
    try:
        frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        frame["findings"] = ""
        frame.to_csv(manifest, index=False)
        v, stats = wording_variant_arrays(run, ids, text, 2, seed=0)
        assert stats["records_worded"] == 0
        np.testing.assert_array_equal(v, np.repeat(text[:, None], 3, axis=1))
    finally:
        manifest.write_text(saved)
    with pytest.raises(ValueError, match="k must be >= 1"):
        wording_variant_arrays(run, ids, text, 0, seed=0)


def test_each_step_draws_one_wording_per_sample():
    v = torch.arange(4 * 3 * 2, dtype=torch.float32).reshape(4, 3, 2)
    a = DiffusionLoss.text_of({"text_variants": v}, torch.Generator().manual_seed(0))
    b = DiffusionLoss.text_of({"text_variants": v}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert a.shape == (4, 2)
    picks = [int(a[i, 0] - v[i, 0, 0]) // 2 for i in range(4)]  # which variant each sample got
    assert all(0 <= p < 3 for p in picks)
    seen = set()
    for s in range(20):
        x = DiffusionLoss.text_of({"text_variants": v}, torch.Generator().manual_seed(s))
        seen |= {int(x[0, 0] - v[0, 0, 0]) // 2}
    assert seen == {0, 1, 2}
    plain = torch.ones(4, 2)
    assert DiffusionLoss.text_of({"text": plain}, torch.Generator()) is plain


def test_train_unet_with_wording_variants(run):
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import train_vae
    from tests.data_trees import TINY_UNET, TINY_VAE

    train_vae(run, TINY_VAE, TRAIN, seed=0)
    encode_latents(run, device="cpu")
    train_unet(run, TINY_UNET, TRAIN, seed=0, wording_variants=2, out_name="unet_wv")
    meta = load_checkpoint(Path(run) / "unet_wv" / "model.pt")["meta"]
    assert meta["wording_variants"]["k"] == 2 and meta["wording_variants"]["records_worded"] > 0
    with pytest.raises(ValueError, match="text_tokens"):
        train_unet(
            run, {"arch": "film", "base_channels": 8, "text_tokens": 4}, TRAIN, seed=0, wording_variants=2, out_name="x"
        )
