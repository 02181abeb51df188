"""Lead order at the boundaries of the authors' released models (book/reference_implementation.md#lead-order).

The released VAE was trained on MIMIC-IV-ECG's WFDB files as stored, whose limb leads are I, II, III, aVR, aVF, aVL
(aVF before aVL), so its network reads and writes that order. Everything the package returns or writes is in
canonical order (I, II, III, aVR, aVL, aVF, V1..V6). These tests check the conversion on fixture weights (the
released files cannot be downloaded here) with channels made distinguishable: a stand-in decoder that emits a
native-order ECG whose limb leads obey Einthoven's and Goldberger's identities in native order, and a spy on the
encoder's input.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from test_reference_weights import make_reference_state_dicts
from torch import nn

from diffusets_core.data.leads import CANONICAL_LEADS, reorder_leads
from diffusets_core.data.limb_leads import limb_identity_error
from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
from diffusets_core.generate.writer import export_batch
from diffusets_core.models import VAE, VAEConfig, load_reference_vae
from diffusets_core.models.reference import CheckpointError
from diffusets_core.text.embedders import HashEmbedder

# Written out here rather than imported: the test states the file order of MIMIC-IV-ECG independently of the package.
NATIVE = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
L = 1024


def native_ecg(length: int = L) -> np.ndarray:
    """(12, L) float32 in NATIVE order: I and II distinct waves, the other limb leads from them by the identities
    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2, six distinct chest leads."""
    t = np.arange(length) / 102.4
    lead_i = 0.6 * np.sin(2 * np.pi * 1.1 * t) + 0.1 * np.sin(2 * np.pi * 7.0 * t)
    lead_ii = 1.0 * np.cos(2 * np.pi * 1.3 * t) - 0.2
    limb = {
        "I": lead_i,
        "II": lead_ii,
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    chest = {f"V{k}": 0.1 * k * np.sin(2 * np.pi * (0.5 + 0.3 * k) * t) for k in range(1, 7)}
    both = {**limb, **chest}
    return np.stack([both[name] for name in NATIVE]).astype(np.float32)


class NativeDecoder(nn.Module):
    """Stands in for the released decoder: whatever the latent, it emits :func:`native_ecg` (B, 12, L)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("signal", torch.from_numpy(native_ecg()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.signal.expand(z.shape[0], -1, -1).clone()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("released")
    unet_sd, vae_sd = make_reference_state_dicts()
    torch.save(unet_sd, d / "unet_all.pth")
    torch.save(vae_sd, d / "vae_model.pth")
    return d / "unet_all.pth", d / "vae_model.pth"


def test_native_fixture_obeys_the_identities_only_in_native_order():
    native = native_ecg()[None]
    assert limb_identity_error(native[:, [NATIVE.index(n) for n in CANONICAL_LEADS]])[0] < 1e-3  # µV
    assert limb_identity_error(native)[0] > 100  # read as if canonical, aVL and aVF break them


def test_reference_output_is_returned_and_exported_in_canonical_order(ckpts, tmp_path):
    pipe = DiffuSETSPipeline.from_reference(
        *ckpts, embedder=HashEmbedder(dim=1536), device="cpu", cache_dir=tmp_path / "cache"
    )
    pipe.vae.decoder = NativeDecoder()
    out = pipe("Sinus rhythm|Normal ECG.", age=50, sex="M", hr=80, sampler="ddpm", num_inference_steps=2, seed=0)
    native = native_ecg()
    sig = out.signals[0]
    assert tuple(out.leads) == CANONICAL_LEADS
    # the channel the reference emitted 5th (native index 4, aVF) is returned under the name aVF (canonical index 5)
    np.testing.assert_array_equal(sig[5], native[4])
    np.testing.assert_array_equal(sig[4], native[5])
    for name in CANONICAL_LEADS:
        np.testing.assert_array_equal(sig[CANONICAL_LEADS.index(name)], native[NATIVE.index(name)])
    # and the canonical output satisfies the limb identities: aVL = I - II/2, aVF = II - I/2
    np.testing.assert_allclose(sig[CANONICAL_LEADS.index("aVF")], sig[1] - sig[0] / 2, atol=1e-6)
    np.testing.assert_allclose(sig[CANONICAL_LEADS.index("aVL")], sig[0] - sig[1] / 2, atol=1e-6)
    assert limb_identity_error(out.signals)[0] < 1e-3

    names = export_batch(out, tmp_path / "out", formats=("wfdb",))
    rec = wfdb.rdrecord(str(tmp_path / "out" / names[0]))
    assert rec.sig_name == list(CANONICAL_LEADS)
    written = rec.p_signal.T
    np.testing.assert_allclose(written[rec.sig_name.index("aVF")], native[NATIVE.index("aVF")], atol=1e-3)
    np.testing.assert_allclose(written[rec.sig_name.index("aVL")], native[NATIVE.index("aVL")], atol=1e-3)
    assert limb_identity_error(written[None])[0] < 1.0  # µV, the 1 µV ADC step of the file


def _spy_encoder(vae):
    """Record what the encoder network's first layer receives (every encode path goes through it)."""
    seen = []
    handle = vae.encoder[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen, handle


def test_encoding_a_canonical_ecg_feeds_the_reference_encoder_its_native_order(ckpts):
    vae = load_reference_vae(ckpts[1])
    # canonical input with channel k filled with k + 1: what the encoder sees tells which lead sits where
    x = torch.arange(1, 13, dtype=torch.float32)[None, :, None].expand(2, 12, L).contiguous()
    seen, handle = _spy_encoder(vae)
    try:
        with torch.no_grad():
            vae.encode(x)
            vae.encode(x.transpose(1, 2).contiguous(), layout="BLC")
            vae.moments(x)
            vae.loss(x)
    finally:
        handle.remove()
    expected = [CANONICAL_LEADS.index(name) + 1 for name in NATIVE]  # ..., aVR=4, aVF=6, aVL=5, ...
    assert len(seen) == 4
    for fed in seen:
        assert fed.shape == (2, 12, L)
        assert fed[0, :, 0].tolist() == expected
    assert x[0, :, 0].tolist() == list(range(1, 13))  # the caller's tensor is untouched


def test_reference_round_trip_is_canonical_and_our_vae_is_unchanged(ckpts):
    """A ReferenceVAE and our plain VAE with the same weights differ only by the lead permutation: our own models
    (trained on canonical data) are not reordered."""
    ref = load_reference_vae(ckpts[1])
    plain = VAE(VAEConfig.paper())
    plain.load_state_dict(ref.state_dict())
    plain.eval()
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 4, L // 8)).astype(np.float32)) * 0.18
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 12, L)).astype(np.float32))
    to_native = [CANONICAL_LEADS.index(name) for name in NATIVE]
    noise = torch.zeros(2, 4, L // 8)
    with torch.no_grad():
        assert torch.equal(ref.decode(z)[:, to_native], plain.decode(z))
        assert torch.equal(ref.encode(x, noise)[0], plain.encode(x[:, to_native], noise)[0])
        assert torch.equal(ref.decode(z, layout="BLC")[..., to_native], plain.decode(z, layout="BLC"))


def test_a_non_12_lead_encoder_is_not_taken_for_the_released_vae():
    sd = VAE(VAEConfig.paper(in_channels=8, channels=(32, 32, 64))).reference_state_dict()
    with pytest.raises(CheckpointError, match=r"reads and writes the 12 leads .*in_channels=8"):
        load_reference_vae(sd)


def test_export_writes_canonical_names_in_canonical_order_whatever_order_is_declared(tmp_path):
    cond = pd.DataFrame({"report": ["Sinus rhythm"], "sex": ["F"], "age": [50], "hr": [70], "seed": [0]})
    native = native_ecg()[None]
    out = SimpleNamespace(conditions=cond, signals=native, fs=102.4, model={}, leads=NATIVE)
    export_batch(out, tmp_path / "a", formats=("wfdb", "npy"))
    rec = wfdb.rdrecord(str(tmp_path / "a" / "ecg_000000"))
    assert rec.sig_name == list(CANONICAL_LEADS)
    np.testing.assert_allclose(rec.p_signal[:, 5], native[0, NATIVE.index("aVF")], atol=1e-3)
    npy = np.load(tmp_path / "a" / "ecg_000000.npy")
    np.testing.assert_array_equal(npy[5], native[0, 4])
    bad = SimpleNamespace(conditions=cond, signals=native, fs=102.4, model={}, leads=NATIVE[:11] + ("MLII",))
    with pytest.raises(ValueError, match="not a reordering"):
        export_batch(bad, tmp_path / "b", formats=("wfdb",))
    assert not (tmp_path / "b").exists()


def test_reorder_leads_numpy_and_torch_any_axis():
    x = np.arange(12 * 3, dtype=np.float32).reshape(12, 3)  # (12, L): lead k holds 3k, 3k+1, 3k+2
    y = reorder_leads(x, NATIVE, CANONICAL_LEADS)
    assert y.shape == x.shape and y is not x
    np.testing.assert_array_equal(y[CANONICAL_LEADS.index("aVF")], x[NATIVE.index("aVF")])
    np.testing.assert_array_equal(reorder_leads(y, CANONICAL_LEADS, NATIVE), x)
    t = torch.from_numpy(x.T.copy())[None]  # (1, L, 12): leads on the last axis
    u = reorder_leads(t, NATIVE, CANONICAL_LEADS, axis=-1)
    np.testing.assert_array_equal(u[0].numpy().T, y)
    assert reorder_leads(x, CANONICAL_LEADS, CANONICAL_LEADS) is x
    with pytest.raises(ValueError, match="not a reordering"):
        reorder_leads(x, NATIVE, NATIVE[:-1] + ("V5",))
    with pytest.raises(ValueError, match="holds 3 channels"):
        reorder_leads(x, NATIVE, CANONICAL_LEADS, axis=-1)


# ---- the golden fixtures through every output path, by lead name ---------------------------------------------------
def test_golden_latent_is_written_under_canonical_names_in_canonical_order(ckpts, tmp_path):
    """The golden decoder input through the released-model pipeline's VAE, then exported to WFDB, npy and PNG: every
    output names its leads canonically, in canonical order, and the channel named X holds what the reference decoder
    emitted for X (the golden output is in the network's native order, aVF before aVL)."""
    import matplotlib

    matplotlib.use("Agg")
    from test_reference_weights import golden

    from diffusets_core.viz.ecgplot import plot_12lead

    g = golden()
    expected_native = g["vae_dec_out"].transpose(0, 2, 1)  # (B, 12, L) in NATIVE order
    tol = 1e-4 * max(1.0, float(np.abs(expected_native).max()))
    pipe = DiffuSETSPipeline.from_reference(
        *ckpts, embedder=HashEmbedder(dim=1536), device="cpu", cache_dir=tmp_path / "cache"
    )
    assert pipe.vae.native_leads == NATIVE  # the package's REFERENCE_LEAD_ORDER is MIMIC-IV-ECG's file order
    with torch.no_grad():
        decoded = pipe.vae.decode(torch.from_numpy(g["vae_dec_z"].copy())).numpy()
    generated = pipe("Sinus rhythm|Normal ECG.", age=50, sex="M", hr=80, sampler="ddim", num_inference_steps=2, seed=0)
    assert tuple(generated.leads) == CANONICAL_LEADS
    for name in CANONICAL_LEADS:
        np.testing.assert_allclose(
            decoded[:, CANONICAL_LEADS.index(name)], expected_native[:, NATIVE.index(name)], atol=tol
        )

    n = len(decoded)
    cond = pd.DataFrame(
        {"report": ["Sinus rhythm"] * n, "sex": ["M"] * n, "age": [50] * n, "hr": [80] * n, "seed": range(n)}
    )
    out = SimpleNamespace(
        conditions=cond, signals=decoded, fs=generated.fs, model=generated.model, leads=generated.leads
    )
    drawn = []

    def spy_plot(sig, fs, **kw):
        drawn.append(np.array(sig))
        return plot_12lead(sig, fs, **kw)

    names = export_batch(out, tmp_path / "out", formats=("wfdb", "npy", "png"), plot=spy_plot, png_limit=1)
    for i, name in enumerate(names):
        rec = wfdb.rdrecord(str(tmp_path / "out" / name))
        assert rec.sig_name == list(CANONICAL_LEADS)
        npy = np.load(tmp_path / "out" / f"{name}.npy")
        for lead in ("I", "III", "aVR", "aVL", "aVF", "V1", "V6"):
            want = expected_native[i, NATIVE.index(lead)]
            np.testing.assert_allclose(rec.p_signal[:, rec.sig_name.index(lead)], want, atol=1e-3 + tol)  # 1 µV ADC
            np.testing.assert_allclose(npy[CANONICAL_LEADS.index(lead)], want, atol=tol)
    assert (tmp_path / "out" / f"{names[0]}.png").is_file() and len(drawn) == 1
    np.testing.assert_array_equal(drawn[0], decoded[0])  # drawn with plot_12lead's canonical labels, in that order


def test_released_pipeline_output_is_its_native_decoder_output_reordered_by_name(ckpts, tmp_path):
    """Generation with the golden-rule weights: ``out.signals`` equals the plain (native-order) network's decoding of
    the same latents, channel by lead name."""
    pipe = DiffuSETSPipeline.from_reference(
        *ckpts, embedder=HashEmbedder(dim=1536), device="cpu", cache_dir=tmp_path / "cache"
    )
    out = pipe(
        ["Sinus rhythm|Normal ECG.", "Atrial fibrillation"],
        age=[50, 71],
        sex=["M", "F"],
        hr=[80, 110],
        sampler="ddim",
        num_inference_steps=2,
        seed=0,
        return_latents=True,
    )
    plain = VAE(VAEConfig.paper())
    plain.load_state_dict(pipe.vae.state_dict())
    plain.eval()
    with torch.no_grad():
        native = plain.decode(torch.from_numpy(out.latents)).numpy()
    assert tuple(out.leads) == CANONICAL_LEADS
    for name in CANONICAL_LEADS:
        np.testing.assert_allclose(
            out.signals[:, CANONICAL_LEADS.index(name)], native[:, NATIVE.index(name)], atol=1e-5
        )


class _NativeOrderPipe:
    """A stand-in model for dataset generation that returns :func:`native_ecg` and declares the native order."""

    def __init__(self):
        self.embedder, self.cache_dir = HashEmbedder(dim=32), None
        self.sampling = {"sampler": "ddim", "num_inference_steps": 2, "guidance_scale": 1.0, "guidance_on": "all"}
        self.identity = {"weights": "native-order test stand-in"}

    def __call__(self, reports, *, age, sex, hr, seed, **kw):
        from diffusets_core.diffusion.pipeline import GenerationOutput

        sig = np.repeat(native_ecg()[None], len(reports), axis=0)
        cond = pd.DataFrame({"report": reports, "sex": sex, "age": age, "hr": hr, "seed": seed})
        return GenerationOutput(sig, 102.4, NATIVE, cond, None, dict(self.identity))


def test_dataset_generation_writes_a_native_order_model_in_canonical_order(tmp_path):
    from diffusets_core.generate.dataset import generate_dataset

    path = tmp_path / "cond.csv"
    pd.DataFrame([{"report": "Sinus rhythm", "age": 50, "sex": "M", "hr": 70, "n": 2}]).to_csv(path, index=False)
    generate_dataset(_NativeOrderPipe(), path, tmp_path / "ds", progress=False)
    heads = sorted((tmp_path / "ds").rglob("*.hea"))
    assert len(heads) == 2
    native = native_ecg()
    for head in heads:
        rec = wfdb.rdrecord(str(head.with_suffix("")))
        assert rec.sig_name == list(CANONICAL_LEADS)
        for lead in ("aVL", "aVF", "III"):
            np.testing.assert_allclose(rec.p_signal[:, rec.sig_name.index(lead)], native[NATIVE.index(lead)], atol=1e-3)
