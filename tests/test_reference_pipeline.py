"""The authors' released model (book/reference_implementation.md#released-files) through our pipeline, on fixture
weights: files laid out like the released checkpoints generate in paper mode, and an embedder that does not fit
is refused before anything is generated."""

import numpy as np
import pytest
import torch
from test_reference_weights import make_reference_state_dicts

from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
from diffusets_core.models.reference import EmbedderMismatchError
from diffusets_core.text.embedders import HashEmbedder


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("released")
    unet_sd, vae_sd = make_reference_state_dicts()
    torch.save(unet_sd, d / "unet_all.pth")
    torch.save(vae_sd, d / "vae_model.pth")
    return d / "unet_all.pth", d / "vae_model.pth"


def test_released_layout_generates_in_paper_mode(ckpts, tmp_path):
    pipe = DiffuSETSPipeline.from_reference(
        *ckpts, embedder=HashEmbedder(dim=1536), device="cpu", cache_dir=tmp_path / "cache"
    )
    assert pipe.unet.cfg.text_dim == 1536 and pipe.patient_mode == "paper" and pipe.clip_sample == 1.0
    assert pipe.vae.scale_factor == pytest.approx(0.18215)
    out = pipe("Sinus rhythm|Normal ECG.", age=50, sex="M", hr=80, sampler="ddpm", num_inference_steps=2, seed=0)
    assert out.signals.shape == (1, 12, 1024) and np.isfinite(out.signals).all()
    assert "released" in out.model["weights"] and out.model["text_dim"] == 1536


def test_wrong_embedder_width_fails_before_generation(ckpts, tmp_path):
    with pytest.raises(EmbedderMismatchError, match="384-d vectors but the U-Net was built/trained for 1536-d"):
        DiffuSETSPipeline.from_reference(*ckpts, embedder=HashEmbedder(dim=384), device="cpu", cache_dir=tmp_path)


def test_clean_prompt_embedder_is_refused(ckpts, tmp_path):
    with pytest.raises(ValueError, match="paper-mode ordered prompts"):
        DiffuSETSPipeline.from_reference(
            *ckpts, embedder=HashEmbedder(dim=1536, prompt_mode="clean"), device="cpu", cache_dir=tmp_path
        )
