"""Checkpoint loading: text width from the state dict, embedder checks, and clear errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from test_reference_weights import make_reference_state_dicts

from diffusets_core.models import (
    VAE,
    CheckpointError,
    ConditionalUNet1D,
    EmbedderMismatchError,
    PaperUNetConfig,
    VAEConfig,
    check_embedder_compat,
    load_reference_unet,
    load_reference_vae,
)


@pytest.fixture(scope="module")
def unet_sd():
    return make_reference_state_dicts()[0]


@pytest.fixture(scope="module")
def vae_sd():
    return make_reference_state_dicts()[1]


@pytest.fixture(scope="module")
def unet_file(unet_sd, tmp_path_factory):
    path = tmp_path_factory.mktemp("u") / "unet_all.pth"
    torch.save(unet_sd, path)
    return path


# --- text width ----------------------------------------------------------------------------------------
def test_text_width_8192_is_read_from_state_dict():
    sd = ConditionalUNet1D(PaperUNetConfig.paper(text_dim=8192)).state_dict()
    assert sd["bottelneck.cross_attention.value_combiner.weight"].shape == (256, 8195)
    model = load_reference_unet(sd)
    assert model.cfg.text_dim == 8192
    # the authors' 8192-d web-demo U-Net (book/reference_implementation.md#text-embedders)
    assert model.num_parameters()["total"] == pytest.approx(21.74e6, rel=1e-3)
    assert check_embedder_compat(model, 8192) is True
    for wrong in (384, 1536):
        with pytest.raises(EmbedderMismatchError, match=rf"{wrong}-d vectors .* 8192-d"):
            check_embedder_compat(model, wrong)
    x = torch.randn(2, 4, 128)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 999]), torch.randn(2, 1, 8192), torch.tensor([[1.0, 50, 80], [0, 60, 70]]))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="expects \\(B, 8192\\)"):
        model(x, torch.tensor([0, 999]), torch.randn(2, 1, 1536), torch.zeros(2, 3))


def test_released_1536_model_and_embedder_objects(unet_file):
    model = load_reference_unet(unet_file)
    assert model.cfg.text_dim == 1536 and model.cfg.keep_dead_params and not model.training

    class FakeEmbedder:
        dim = 384

    with pytest.raises(EmbedderMismatchError, match="384-d vectors .* 1536-d"):
        check_embedder_compat(model, FakeEmbedder())
    assert check_embedder_compat(model.cfg, {"dim": 1536})
    with pytest.warns(UserWarning, match="unknown"):
        assert check_embedder_compat(model, {"dim": None}) is False


def test_wrapped_and_prefixed_state_dicts_load(unet_sd):
    m1 = load_reference_unet({"state_dict": unet_sd})
    m2 = load_reference_unet({"module." + k: v for k, v in unet_sd.items()})
    k = "output_conv.0.weight"
    assert torch.equal(m1.state_dict()[k], unet_sd[k]) and torch.equal(m2.state_dict()[k], unet_sd[k])


# --- errors ----------------------------------------------------------------------------------------------
def test_missing_key_is_named(unet_sd):
    sd = dict(unet_sd)
    del sd["upsampling_blocks.3.block.cross_attention.to_v.bias"]
    with pytest.raises(
        CheckpointError, match=r"1 missing key\(s\): upsampling_blocks\.3\.block\.cross_attention\.to_v\.bias"
    ):
        load_reference_unet(sd)


def test_extra_key_is_named(unet_sd):
    sd = dict(unet_sd)
    sd["bottelneck.extra_layer.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): bottelneck\.extra_layer\.weight"):
        load_reference_unet(sd)


def test_shape_mismatch_is_named(unet_sd):
    sd = dict(unet_sd)
    sd["output_conv.2.weight"] = torch.zeros(4, 4, 3)
    with pytest.raises(
        CheckpointError, match=r"shape mismatch.*output_conv\.2\.weight: checkpoint \(4, 4, 3\) vs model \(4, 4, 1\)"
    ):
        load_reference_unet(sd)


def test_not_a_unet_state_dict(vae_sd):
    with pytest.raises(CheckpointError, match="does not look like a DiffuSETS U-Net"):
        load_reference_unet(vae_sd["encoder"])


def test_truncated_and_corrupted_files(unet_file, tmp_path):
    data = unet_file.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (truncated, garbage, empty):
        with pytest.raises(CheckpointError, match="corrupted, truncated or not a PyTorch checkpoint") as info:
            load_reference_unet(path)
        assert str(path) in str(info.value)
        assert not isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a pickled module, not a state dict
    with pytest.raises(CheckpointError, match="weights_only"):
        load_reference_unet(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_reference_unet("/nonexistent/unet_all.pth")


# --- VAE ---------------------------------------------------------------------------------------------------
def test_vae_loader_errors(vae_sd, tmp_path):
    bad = {"encoder": vae_sd["encoder"], "decoder": dict(vae_sd["decoder"])}
    del bad["decoder"]["3.groupnorm.weight"]  # the dead attention GroupNorm must be present too
    with pytest.raises(CheckpointError, match=r"\['decoder'\].*missing key\(s\): 3\.groupnorm\.weight"):
        load_reference_vae(bad)
    with pytest.raises(CheckpointError, match="expected the released VAE layout"):
        load_reference_vae(vae_sd["encoder"])
    path = tmp_path / "vae_model.pth"
    torch.save(vae_sd, path)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(CheckpointError, match="corrupted, truncated"):
        load_reference_vae(path)


def test_vae_loader_accepts_flat_state_dict_of_our_vae():
    vae = VAE(VAEConfig.paper(channels=(32, 32, 64)))
    loaded = load_reference_vae(vae.state_dict())
    assert loaded.cfg.channels == (32, 32, 64)
    loaded2 = load_reference_vae(vae.reference_state_dict())
    assert torch.equal(loaded2.decoder.state_dict()["25.weight"], vae.decoder.state_dict()["25.weight"])


def test_text_only_variant_loads_with_cond_dim_0():
    sd = ConditionalUNet1D(PaperUNetConfig.paper(cond_dim=0, levels=3, text_dim=32)).state_dict()
    model = load_reference_unet(sd, cond_dim=0)
    assert model.cfg.text_dim == 32 and model.cfg.cond_dim == 0 and model.cfg.levels == 3
    # read with the default cond_dim=3 the width would be misread; the docstring says so
    assert load_reference_unet(sd).cfg.text_dim == 29
