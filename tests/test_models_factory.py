"""The U-Net factory: a flat dict's ``arch`` chooses the network's config, stored configs in the flat format (every
field of both networks) build the identical network, the other network's fields are refused only when set, and the
factory builds, describes and loads either network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusets_core.checkpoint import atomic_save
from diffusets_core.config import ProfileError, load_profile
from diffusets_core.models.factory import (
    UNET_ARCHS,
    build_unet,
    describe_unet,
    unet_config_from_dict,
    unet_from_artifact,
)
from diffusets_core.models.film_unet import FiLMUNet1D, FiLMUNetConfig
from diffusets_core.models.folder import CONFIG_FILE, load_unet_dir, save_model_dir
from diffusets_core.models.unet import ConditionalUNet1D, PaperUNetConfig

#: ``config`` of artifacts written while one config class held both networks' fields (what ``run/unet/model.pt`` and a
#: model folder's ``unet/config.json`` of those runs hold): a small FiLM network with statement tokens ...
FLAT_FILM = {
    "in_channels": 4, "levels": 7, "kernel_size": 3, "text_dim": 16, "cond_dim": 3, "time_steps": 1000,
    "width_mult": 1, "time_dim": 64, "time_hidden": 128, "time_log_base": 10.0, "attn_heads": 2,
    "attn_hidden_mult": 2, "bottleneck_kernel": 3, "bottleneck_heads": 4, "bottleneck_hidden": 32,
    "cross_attn_impl": "bias", "keep_dead_params": False, "cond_dropout": 0.15, "cond_dropout_mode": "separate",
    "arch": "film", "base_channels": 8, "channel_mults": [1, 2], "res_blocks": 2, "attn_levels": [1], "emb_dim": 16,
    "norm_groups": 4, "dropout": 0.0, "text_standardize": True, "text_tokens": 2, "text_subspace": 0.0,
}  # fmt: skip
#: ... and a small paper network
FLAT_PAPER = {
    "in_channels": 4, "levels": 3, "kernel_size": 7, "text_dim": 16, "cond_dim": 3, "time_steps": 1000,
    "width_mult": 1, "time_dim": 64, "time_hidden": 128, "time_log_base": 10.0, "attn_heads": 2,
    "attn_hidden_mult": 2, "bottleneck_kernel": 3, "bottleneck_heads": 4, "bottleneck_hidden": 32,
    "cross_attn_impl": "bias", "keep_dead_params": False, "cond_dropout": 0.2, "cond_dropout_mode": "joint",
    "arch": "paper", "base_channels": 64, "channel_mults": [1, 2, 2, 4], "res_blocks": 2, "attn_levels": [2, 3],
    "emb_dim": 256, "norm_groups": 32, "dropout": 0.0, "text_standardize": True, "text_tokens": 0,
    "text_subspace": 0.0,
}  # fmt: skip
FILM = FiLMUNetConfig(
    kernel_size=3, text_dim=16, attn_heads=2, cond_dropout=0.15, cond_dropout_mode="separate", base_channels=8,
    channel_mults=(1, 2), attn_levels=(1,), emb_dim=16, norm_groups=4, text_tokens=2,
)  # fmt: skip
PAPER = PaperUNetConfig(levels=3, text_dim=16, attn_heads=2, cond_dropout=0.2)


def _seeded(cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_unet(cfg)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("flat, cfg", [(FLAT_FILM, FILM), (FLAT_PAPER, PAPER)], ids=["film", "paper"])
def test_a_flat_dict_builds_the_identical_network(flat, cfg):
    back = unet_config_from_dict(flat)
    assert back == cfg and type(back) is type(cfg)
    assert _same_weights(_seeded(back), _seeded(cfg))
    # a config writes its own network's fields and arch, and reads them back
    d = cfg.to_dict()
    assert d["arch"] == cfg.arch and set(d) < set(flat) and unet_config_from_dict(d) == cfg == type(cfg).from_dict(d)
    assert json.loads(json.dumps(d)) == d


def test_arch_chooses_the_config_and_film_is_the_default():
    assert UNET_ARCHS == ("paper", "film")
    assert type(unet_config_from_dict({})) is FiLMUNetConfig
    assert type(unet_config_from_dict({"arch": "paper"})) is PaperUNetConfig
    # the other network's fields at their defaults (tuples arrive as lists) are dropped
    cfg = unet_config_from_dict({"arch": "paper", "channel_mults": [1, 2, 2, 4], "text_tokens": 0, "dropout": 0})
    assert cfg == PaperUNetConfig()
    with pytest.raises(ValueError, match="arch must be one of"):
        unet_config_from_dict({"arch": "transformer"})
    with pytest.raises(ValueError, match=r"unknown U-Net config fields: \['bogus'\]"):
        unet_config_from_dict({"arch": "paper", "bogus": 1})
    with pytest.raises(ValueError, match="FiLMUNetConfig is arch 'film', got arch 'paper'"):
        FiLMUNetConfig.from_dict({"arch": "paper"})
    with pytest.raises(ValueError, match=r"unknown PaperUNetConfig fields: \['base_channels'\]"):
        PaperUNetConfig.from_dict({"base_channels": 64})
    with pytest.raises(TypeError, match="unet_config_from_dict"):
        build_unet({"arch": "film"})


@pytest.mark.parametrize(
    "d, field",
    [
        ({"arch": "paper", "base_channels": 128}, "base_channels"),
        ({"arch": "paper", "text_tokens": 2}, "text_tokens"),
        ({"arch": "film", "levels": 5}, "levels"),
        ({"emb_dim": 64, "keep_dead_params": True}, "keep_dead_params"),
    ],
)
def test_a_set_field_of_the_other_network_is_refused_unless_stored(d, field):
    with pytest.raises(ValueError, match=rf"^{field} = .* is a setting of the '(paper|film)' network"):
        unet_config_from_dict(d)
    # a stored config: the value never reached the trained network, which loads
    cfg = unet_config_from_dict(d, strict=False)
    assert cfg.arch == d.get("arch", "film") and field not in cfg.to_dict()


def test_a_profile_naming_a_field_of_the_other_network_fails_at_load(tmp_path: Path):
    p = tmp_path / "x.yaml"
    p.write_text("unet:\n  model: {arch: paper, base_channels: 128}\n")
    with pytest.raises(ProfileError, match=r"unet\.model.*base_channels = 128 is a setting of the 'film' network"):
        load_profile(p)
    p.write_text("unet:\n  model: {arch: paper, base_channels: 64, levels: 5}\n")  # a default: harmless
    assert load_profile(p).unet.model["levels"] == 5


def test_stored_flat_configs_load(tmp_path: Path):
    """``run/unet/model.pt`` and a model folder's ``unet/config.json`` written in the flat format (here even with a
    field of the other network set, which that network never read) load into the network that was trained."""
    unet = _seeded(FILM)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p))
    flat = {**FLAT_FILM, "levels": 5}
    atomic_save({"kind": "diffusets.unet", "config": flat, "state_dict": unet.state_dict(), "meta": {"a": 1}},
                tmp_path / "model.pt")  # fmt: skip
    back, meta = unet_from_artifact(tmp_path / "model.pt")
    assert isinstance(back, FiLMUNet1D) and back.cfg == FILM and meta == {"a": 1} and _same_weights(back, unet)

    save_model_dir(unet, tmp_path / "unet")
    path = tmp_path / "unet" / CONFIG_FILE
    written = json.loads(path.read_text())
    assert set(written) == {"_class_name", "_diffusets_version", *FILM.to_dict()}
    path.write_text(json.dumps({"_class_name": "FiLMUNet1D", "_diffusets_version": "0.1.0", **flat}))
    back = load_unet_dir(tmp_path / "unet")
    assert back.cfg == FILM and _same_weights(back, unet)


def test_describe_unet_dispatches_on_the_config():
    assert describe_unet(FILM, 32)[0]["stage"] == "conv in"
    assert describe_unet(PAPER, 32)[-1]["stage"] == "up 1"
    assert isinstance(build_unet(PAPER), ConditionalUNet1D)
    with pytest.raises(TypeError):
        describe_unet(FLAT_FILM)
