"""The twin U-Net: a FiLM U-Net plus a reference-ECG encoder (models/twin.py), its training (train/twin.py) and the
pipeline's ``reference`` argument."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from diffusets_core.diffusion.schedules import NoiseSchedule
from diffusets_core.models.factory import unet_from_artifact
from diffusets_core.models.film_unet import FiLMUNet1D, FiLMUNetConfig
from diffusets_core.models.twin import ReferenceConditioned, ReferenceEncoderConfig, TwinUNet1D
from diffusets_core.models.unet import ConditionalUNet1D, PaperUNetConfig
from diffusets_core.train.twin import TwinDiffusionLoss, subject_partners

CFG = FiLMUNetConfig(
    in_channels=4,
    text_dim=16,
    base_channels=16,
    channel_mults=(1, 2),
    attn_levels=(1,),
    emb_dim=32,
    attn_heads=2,
    kernel_size=3,
    norm_groups=8,
    cond_dropout=0.2,
    cond_dropout_mode="separate",
)
REF = ReferenceEncoderConfig(in_channels=4, emb_dim=32, channels=(16, 16), reference_dropout=0.3)


def _twin(seed: int = 0, *, perturb: bool = True) -> TwinUNet1D:
    torch.manual_seed(seed)
    twin = TwinUNet1D(FiLMUNet1D(CFG), REF).eval()
    if perturb:  # a trained twin: the zero-initialised layers moved (else the reference would change nothing)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in twin.parameters():
                if not p.abs().sum():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
    return twin


def _inputs(b: int = 3, length: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, length, generator=g)
    t = torch.tensor([10, 500, 990][:b] + [3] * max(0, b - 3))
    text = torch.randn(b, 16, generator=g)
    patient = torch.randn(b, 3, generator=g)
    ref = torch.randn(b, 4, 48, generator=g)  # a reference of another length than x: only pooled statistics are read
    return x, t, text, patient, ref


def test_a_new_twin_is_exactly_its_base_network():
    base = FiLMUNet1D(CFG).eval()
    twin = TwinUNet1D(base, REF).eval()
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        want = base(x, t, text, patient)
        assert torch.equal(twin(x, t, text, patient), want)
        # the encoder's last layer starts at zero: a fresh twin's reference adds exactly nothing
        assert torch.equal(twin(x, t, text, patient, reference=ref), want)


def test_no_reference_and_dropped_rows_run_the_base_network_bit_for_bit():
    twin = _twin()
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        base = twin.base(x, t, text, patient)
        assert torch.equal(twin(x, t, text, patient), base)
        with_ref = twin(x, t, text, patient, reference=ref)
        assert (with_ref - base).abs().max() > 1e-3  # a trained encoder changes the prediction
        drop = torch.tensor([True, False, True])
        mixed = twin(x, t, text, patient, reference=ref, reference_drop=drop)
        assert torch.allclose(mixed[drop], base[drop], atol=1e-6)
        assert torch.allclose(mixed[~drop], with_ref[~drop], atol=1e-6)
        all_dropped = twin(x, t, text, patient, reference=ref, reference_drop=torch.ones(3, dtype=torch.bool))
        assert torch.allclose(all_dropped, base, atol=1e-6)


#: twin(x, t, text, patient, reference=ref)[0, 0, :5] of _twin(0) on _inputs(): seeded tiny weights, computed on main
#: (x86-64, torch 2.13.0 CPU); the tolerance leaves room for other CPUs' kernels (~1e-6), not for a changed network
EXPECTED_TWIN_SLICE = np.array(
    [0.119758740067482, -0.043574053794145584, -0.06317077577114105, 0.12370015680789948, 0.1225975900888443]
)


def test_stored_slice_of_a_seeded_twin():
    twin = _twin(0)
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        out = twin(x, t, text, patient, reference=ref)[0, 0, :5].numpy()
    np.testing.assert_allclose(out, EXPECTED_TWIN_SLICE, atol=1e-5)


def test_one_reference_is_shared_by_the_batch():
    twin = _twin()
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        shared = twin(x, t, text, patient, reference=ref[:1])
        tiled = twin(x, t, text, patient, reference=ref[:1].expand(3, -1, -1))
    assert torch.allclose(shared, tiled, atol=1e-6)


def test_bad_references_and_networks_are_refused():
    twin = _twin()
    x, t, text, patient, ref = _inputs()
    with pytest.raises(ValueError, match=r"reference latents must be \(B, 4, L\)"):
        twin(x, t, text, patient, reference=ref[:, :3])
    with pytest.raises(ValueError, match="expected 1 or 3 latents"):
        twin(x, t, text, patient, reference=ref[:2])
    with pytest.raises(ValueError, match=r"reference_drop must be \(3,\)"):
        twin(x, t, text, patient, reference=ref, reference_drop=torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="FiLM network only"):
        TwinUNet1D(ConditionalUNet1D(PaperUNetConfig(in_channels=4, text_dim=16)), REF)
    with pytest.raises(ValueError, match="does not fit the U-Net"):
        TwinUNet1D(FiLMUNet1D(CFG), ReferenceEncoderConfig(in_channels=4, emb_dim=64))
    with pytest.raises(ValueError, match="reference_dropout must be in"):
        ReferenceEncoderConfig(reference_dropout=1.0)
    with pytest.raises(ValueError, match="unknown reference encoder fields"):
        ReferenceEncoderConfig.from_dict({"chanels": [8]})


def test_reference_guidance_composes_with_the_plain_and_guided_calls():
    twin = _twin()
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        without = twin(x, t, text, patient)
        with_ref = twin(x, t, text, patient, reference=ref)
        assert torch.equal(ReferenceConditioned(twin, ref, 0.0)(x, t, text, patient), without)
        assert torch.equal(ReferenceConditioned(twin, ref, 1.0)(x, t, text, patient), with_ref)
        two = ReferenceConditioned(twin, ref, 2.0)(x, t, text, patient)
        assert torch.allclose(two, without + 2.0 * (with_ref - without), atol=1e-5)
        # the report's guidance stacks [conditional; unconditional]: each half reads its own request's reference
        mask = torch.cat([torch.zeros(3, 2, dtype=torch.bool), torch.ones(3, 2, dtype=torch.bool)])
        both = ReferenceConditioned(twin, ref, 1.0)(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([text, text]), torch.cat([patient, patient]), mask
        )
        assert torch.allclose(both[:3], with_ref, atol=1e-5)
    with pytest.raises(ValueError, match="reference_guidance must be a finite number >= 0"):
        ReferenceConditioned(twin, ref, -1.0)
    with pytest.raises(ValueError, match="cannot read 3 references"):
        ReferenceConditioned(twin, ref)(x[:2], t[:2], text[:2], patient[:2])


def test_reference_dropout_rate():
    twin = _twin()
    drop = twin.sample_reference_drop(20000, generator=torch.Generator().manual_seed(0))
    assert abs(float(drop.float().mean()) - 0.3) < 0.02


def test_subject_partners_pair_records_of_one_subject_only():
    ids = ["a", "b", "c", "d", "e", "f"]
    subjects = pd.Series(["s1", "s1", "s2", "s1", "s3", "s2"], index=ids)
    p = subject_partners(ids, subjects)
    assert p.shape == (6, 2)
    assert sorted(p[0][p[0] >= 0]) == [1, 3] and sorted(p[2][p[2] >= 0]) == [5]
    assert (p[4] == -1).all()  # a subject with one record has no reference
    with pytest.raises(KeyError, match="record 'z' has no subject id"):
        subject_partners(["z"], subjects)


def test_the_training_loss_draws_references_from_the_candidates_and_drops_the_lonely():
    twin = _twin().train()
    seen = []

    def spy(module, args, kwargs):
        seen.append((kwargs["reference"].clone(), kwargs["reference_drop"].clone()))

    handle = twin.register_forward_pre_hook(spy, with_kwargs=True)
    loss = TwinDiffusionLoss(NoiseSchedule.paper(), weighting="min_snr")
    b, length = 4, 32
    cand = torch.zeros(b, 2, 4, length)
    for i in range(b):
        for k in range(2):
            cand[i, k] = 10 * i + k
    batch = {
        "z": torch.randn(b, 4, length),
        "text": torch.randn(b, 16),
        "patient": torch.randn(b, 3),
        "ref_z": cand,  # (B, K=2, C, L): sample i's candidates hold 10 i and 10 i + 1
        "ref_n": torch.tensor([2, 1, 0, 2]),
    }
    for step in range(20):
        value = loss(twin, batch, torch.Generator().manual_seed(step))
        assert torch.isfinite(value)
    handle.remove()
    for ref, drop in seen:
        vals = ref[:, 0, 0]
        assert vals[0] in (0.0, 1.0) and vals[1] == 10.0 and vals[3] in (30.0, 31.0)
        assert bool(drop[2])  # no candidate: always dropped
    picks = {float(ref[0, 0, 0]) for ref, _ in seen}
    assert picks == {0.0, 1.0}  # both candidates get drawn
    drops = torch.stack([d for _, d in seen])[:, [0, 1, 3]].float().mean()
    assert 0.05 < float(drops) < 0.7  # reference dropout at work in training


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory) -> Path:
    from diffusets_core.train.twin import train_twin_unet
    from tests.data_trees import make_tiny_run, simple_mimic_records

    unet = {
        "arch": "film",
        "base_channels": 16,
        "channel_mults": [1, 2],
        "attn_levels": [1],
        "emb_dim": 32,
        "attn_heads": 2,
        "kernel_size": 3,
        "norm_groups": 8,
        "cond_dropout": 0.2,
        "cond_dropout_mode": "separate",
    }
    train = {
        "max_steps": 4,
        "batch_size": 8,
        "val_every": 2,
        "checkpoint_every": 2,
        "log_every": 1,
        "progress": False,
        "device": "cpu",
    }
    # 40 records of 10 subjects: a real-data layout whose subjects already have several records, so the twin trains
    # in the run itself (unet_twin) instead of a twin cohort
    run = make_tiny_run(tmp_path_factory.mktemp("twin"), simple_mimic_records(40, subjects=10), train=train, unet=unet)
    train_twin_unet(run, run / "unet" / "model.pt", {"channels": [16, 16]}, train, out_name="unet_twin")
    return run


def test_the_trained_twin_loads_as_a_twin_and_generates_with_and_without_a_reference(twin_run):
    from diffusets_core.data.reference_ecg import reference_from_run
    from diffusets_core.data.store import SignalStore
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

    unet, meta = unet_from_artifact(twin_run / "unet_twin" / "model.pt")
    assert isinstance(unet, TwinUNet1D) and meta["twin"]["n_train_with_reference"] > 0
    pipe = DiffuSETSPipeline.from_pretrained(twin_run, device="cpu", unet_dir="unet_twin", dim=32)
    rid = SignalStore(twin_run).records("test")["record_id"].iloc[0]
    ref = reference_from_run(twin_run, rid)
    kw = dict(age=60, sex="F", hr=70, num_ecgs=2, num_inference_steps=3)
    with_ref = pipe("Sinus rhythm", reference=ref, **kw)
    assert with_ref.signals.shape == (2, 12, 1024)
    assert with_ref.conditions["reference"].tolist() == ["array[0]", "array[0]"]
    without = pipe("Sinus rhythm", **kw)
    off = pipe("Sinus rhythm", reference=ref, reference_guidance=0.0, **kw)
    assert np.array_equal(off.signals, without.signals)
    assert "reference" not in without.conditions
    # a WFDB record path is read and prepared as the run's records were: the same latent as the stored row
    src = SignalStore(twin_run).records("test").set_index("record_id").loc[rid, "source_path"]
    data_dir = SignalStore(twin_run).info["data_dir"]
    by_path = pipe("Sinus rhythm", reference=str(Path(data_dir) / src), **kw)
    np.testing.assert_allclose(by_path.signals, with_ref.signals, atol=1e-5)
    with pytest.raises(ValueError, match="expected 1 ECG or one per generated ECG"):
        pipe("Sinus rhythm", reference=np.stack([ref, ref, ref]), **kw)
    with pytest.raises(ValueError, match="12 leads"):
        pipe("Sinus rhythm", reference=ref[:8], **kw)


def test_a_reference_for_a_model_without_an_encoder_is_refused(twin_run):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

    pipe = DiffuSETSPipeline.from_pretrained(twin_run, device="cpu", dim=32)
    with pytest.raises(ValueError, match="this model has no reference encoder"):
        pipe("Sinus rhythm", reference=np.zeros((12, 1024), np.float32), num_inference_steps=2)


def test_a_twin_needs_the_film_base_and_matching_runs(twin_run, tmp_path):
    from diffusets_core.train.twin import train_twin_unet

    with pytest.raises(FileNotFoundError, match="no trained U-Net"):
        train_twin_unet(twin_run, tmp_path / "missing.pt", out_name="x")
    with pytest.raises(FileNotFoundError, match="prepare and encode the twin run first"):
        train_twin_unet(tmp_path, twin_run / "unet" / "model.pt")


def test_contrastive_pretraining_teaches_the_encoder_to_recognise_a_subject():
    from diffusets_core.models.twin import ReferenceEncoder
    from diffusets_core.train.twin_identity import identification_accuracy, nt_xent, pretrain_reference_encoder

    rng = np.random.default_rng(0)
    # 24 subjects x 3 records: a subject's fixed channel pattern plus a per-record "finding" pattern shared across
    # subjects and noise; telling subjects apart means ignoring the findings
    pattern = rng.standard_normal((24, 4, 32))
    finding = rng.standard_normal((3, 4, 32))
    z = np.concatenate([pattern + finding[k] + 0.3 * rng.standard_normal((24, 4, 32)) for k in range(3)]).astype(
        np.float32
    )
    subjects = np.tile(np.arange(24), 3).astype(str)
    torch.manual_seed(0)
    enc = ReferenceEncoder(ReferenceEncoderConfig(in_channels=4, emb_dim=32, channels=(16, 16)))
    before = identification_accuracy(enc, z, subjects)
    losses = pretrain_reference_encoder(enc, z, subjects, steps=100, batch=16, lr=3e-3, seed=0)
    after = identification_accuracy(enc, z, subjects)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
    assert after > max(0.8, before + 0.3), (before, after)
    assert not enc.mlp[-1].weight.abs().sum()  # the last layer stays zero: the twin still starts as its base
    u = torch.randn(8, 5)
    assert float(nt_xent(u, u)) < float(nt_xent(u, torch.randn(8, 5)))
    with pytest.raises(ValueError, match="at least two subjects with two records"):
        pretrain_reference_encoder(enc, z[:3], np.array(["a", "b", "c"]), steps=1)


def test_reference_tokens_start_as_the_base_and_drop_per_row():
    base = _twin(0).base  # trained-like base weights (its zero-initialised layers moved)
    twin = TwinUNet1D(
        base, ReferenceEncoderConfig(in_channels=4, emb_dim=32, channels=(16, 16), tokens=True, attn_heads=2)
    ).eval()
    x, t, text, patient, ref = _inputs()
    with torch.no_grad():
        want = base(x, t, text, patient)
        assert torch.equal(twin(x, t, text, patient, reference=ref), want)  # zero-initialised cross-attention
        for m in twin.reference_attn:
            m.proj.weight.normal_(0, 0.2)
        with_ref = twin(x, t, text, patient, reference=ref)
        assert (with_ref - want).abs().max() > 1e-3
        drop = torch.tensor([True, False, False])
        mixed = twin(x, t, text, patient, reference=ref, reference_drop=drop)
        assert torch.allclose(mixed[0], want[0], atol=1e-6) and torch.allclose(mixed[1:], with_ref[1:], atol=1e-6)
    assert len(twin.reference_attn) == len(base.attention_sites()) == 2 + 1 + 3


def test_a_twin_exports_as_a_model_folder_and_loads_back_as_a_twin(twin_run, tmp_path):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline

    pipe = DiffuSETSPipeline.from_pretrained(twin_run, device="cpu", unet_dir="unet_twin", dim=32)
    folder = pipe.save_pretrained(tmp_path / "twin_model")
    again = DiffuSETSPipeline.from_pretrained(folder, device="cpu", dim=32)
    assert isinstance(again.unet, TwinUNet1D)
    ref = np.asarray(again.unet.reference_encoder.mlp[-1].weight.detach())
    np.testing.assert_array_equal(ref, np.asarray(pipe.unet.reference_encoder.mlp[-1].weight.detach()))
    x = np.zeros((12, 1024), np.float32)
    x[:, ::100] = 1.0
    kw = dict(age=60, sex="F", hr=70, num_inference_steps=2, reference=x)
    np.testing.assert_array_equal(pipe("Sinus rhythm", **kw).signals, again("Sinus rhythm", **kw).signals)
