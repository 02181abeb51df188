"""FiLM U-Net (arch="film", the default for new runs): shapes, a seeded stored slice, text standardisation,
separate text / patient dropout, and the paper network's (B, 2) masks."""

from __future__ import annotations

import pytest
import torch

from diffusets_core.models import ConditionalUNet1D
from diffusets_core.models.factory import DEFAULT_UNET_ARCH, build_unet, describe_unet, unet_config_from_dict
from diffusets_core.models.film_unet import FiLMUNet1D, FiLMUNetConfig
from diffusets_core.models.unet import PaperUNetConfig

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers


def film_cfg(**kw) -> FiLMUNetConfig:
    base = dict(
        text_dim=16,
        base_channels=16,
        channel_mults=(1, 2),
        attn_levels=(1,),
        emb_dim=32,
        attn_heads=2,
        norm_groups=8,
        kernel_size=3,
        cond_dropout=0.1,
        cond_dropout_mode="separate",
    )
    base.update(kw)
    return FiLMUNetConfig(**base)


def seeded_model(**kw) -> FiLMUNet1D:
    torch.manual_seed(0)
    m = build_unet(film_cfg(**kw))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the zero-initialised layers get small values so every path reaches the output
        for n, p in m.named_parameters():
            if p.dim() > 0 and "null" not in n and bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


EXPECTED_SLICE = torch.tensor(
    [
        0.251936,
        -0.053792,
        0.536442,
        -0.013978,
        -0.035945,
        0.273494,
        -0.119442,
        0.391964,
        -0.204013,
        0.172931,
        0.072898,
        -0.007164,
    ]
)


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(2))
    text = torch.randn(2, 16, generator=g)
    patient = torch.tensor([[1.0, 0.5, 0.7], [0.0, 0.3, 1.1]])
    return x, torch.tensor([3, 700]), text, patient


def test_build_unet_dispatches_on_arch():
    assert isinstance(build_unet(film_cfg()), FiLMUNet1D)
    assert isinstance(build_unet(PaperUNetConfig(levels=3, text_dim=16)), ConditionalUNet1D)
    with pytest.raises(ValueError, match="arch"):
        unet_config_from_dict({"arch": "transformer"})
    with pytest.raises(ValueError, match="attn_levels"):
        film_cfg(attn_levels=(5,))
    with pytest.raises(ValueError, match="cond_dropout_mode"):
        film_cfg(cond_dropout_mode="sometimes")


def test_shapes_length_multiple_and_config_round_trip():
    m = seeded_model()
    x, t, text, patient = inputs()
    out = m(x, t, text, patient)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert m.cfg.length_multiple == 2
    with pytest.raises(ValueError, match="divisible"):
        m(torch.randn(2, 4, 31), t, text, patient)
    with pytest.raises(ValueError, match="text_dim=16"):
        m(x, t, torch.randn(2, 8), patient)
    cfg2 = unet_config_from_dict(m.cfg.to_dict())
    assert cfg2 == m.cfg and isinstance(cfg2.channel_mults, tuple)


def test_seeded_output_slice_is_stored():
    # a regression in any block (norm, FiLM, attention, skip order, up/down sampling) moves these numbers
    m = seeded_model()
    out = m(*inputs())
    # stored from this implementation (torch 2.13 CPU); tolerance covers thread-count rounding
    torch.testing.assert_close(out[0, :, :3].flatten(), EXPECTED_SLICE, atol=2e-5, rtol=1e-4)


def test_text_standardisation_is_a_buffer_that_changes_the_output():
    m = seeded_model()
    x, t, text, patient = inputs()
    before = m(x, t, text, patient)
    mean, std = text.mean(0), text.std(0) + 0.5
    m.set_text_stats(mean, std)
    after = m(x, t, text, patient)
    assert not torch.allclose(before, after)
    # saved with the weights, so a model loaded from the state dict standardises the same way
    m2 = build_unet(film_cfg())
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2.text_mean, mean)
    torch.testing.assert_close(m2(x, t, text, patient), after)
    # equivalently: an unstandardised model given the standardised text
    m3 = seeded_model()
    torch.testing.assert_close(m3(x, t, (text - mean) / std, patient), after, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"\(16,\)"):
        m.set_text_stats(torch.zeros(8), torch.ones(8))


def test_separate_drop_masks():
    m = seeded_model()
    x, t, text, patient = inputs()
    with torch.no_grad():
        m.null_text.normal_()
        m.null_patient.normal_()
    full = m(x, t, text, patient)
    none = torch.zeros(2, 2, dtype=torch.bool)
    torch.testing.assert_close(m(x, t, text, patient, none), full)
    text_only_dropped = m(x, t, text, patient, torch.tensor([[True, False], [False, False]]))
    assert not torch.allclose(text_only_dropped[0], full[0]) and torch.allclose(text_only_dropped[1], full[1])
    # with the text dropped, the patient values still matter; with both dropped, nothing does
    other_patient = patient.flip(0)
    drop_text = torch.tensor([[True, False], [True, False]])
    assert not torch.allclose(m(x, t, text, patient, drop_text), m(x, t, text, other_patient, drop_text))
    both = torch.ones(2, dtype=torch.bool)
    torch.testing.assert_close(m(x, t, text, patient, both), m(x, t, text.flip(0), other_patient, both))
    g = torch.Generator().manual_seed(0)
    mask = m.sample_drop_mask(4000, generator=g)
    assert mask.shape == (4000, 2) and abs(mask.float().mean().item() - 0.1) < 0.02
    assert abs((mask[:, 0] & mask[:, 1]).float().mean().item() - 0.01) < 0.006  # independent draws
    assert build_unet(film_cfg(cond_dropout_mode="joint")).sample_drop_mask(5).shape == (5,)


def test_paper_network_accepts_two_column_masks():
    torch.manual_seed(0)
    m = ConditionalUNet1D(PaperUNetConfig(levels=3, text_dim=16, cond_dropout=0.1, cond_dropout_mode="separate"))
    with torch.no_grad():
        m.null_text.fill_(0.3)
        m.null_patient.fill_(-2.0)
    text, patient = torch.randn(2, 16), torch.rand(2, 3)
    c = m.condition_vector(text, patient, torch.tensor([[True, False], [False, True]]))
    torch.testing.assert_close(c[0, :16], torch.full((16,), 0.3))
    torch.testing.assert_close(c[0, 16:], patient[0])
    torch.testing.assert_close(c[1, :16], text[1])
    torch.testing.assert_close(c[1, 16:], torch.full((3,), -2.0))
    joint = m.condition_vector(text, patient, torch.tensor([True, False]))
    torch.testing.assert_close(joint[0], torch.cat([torch.full((16,), 0.3), torch.full((3,), -2.0)]))
    assert m.sample_drop_mask(6).shape == (6, 2)


def test_describe_unet_follows_the_config():
    film = describe_unet(film_cfg(), 32)
    assert [r["stage"] for r in film] == ["conv in", "down 0", "down 1", "middle", "up 1", "up 0", "out"]
    assert (
        film[2]["length"] == 16 and "self-attention" in film[2]["detail"] and "self-attention" not in film[1]["detail"]
    )
    paper = describe_unet(PaperUNetConfig(levels=4, text_dim=16), 128)
    assert paper[0]["channels in → out"] == "4 → 8" and paper[3]["stage"] == "bottleneck" and paper[3]["length"] == 16


def test_the_default_network_is_the_film_unet():
    """ "Default" means the profiles' network everywhere: a U-Net dict without ``arch`` is the FiLM U-Net; the paper's
    network is asked for by name (``arch: paper``, ``PaperUNetConfig``, ``PaperUNetConfig.paper()`` for the released
    model). Each network refuses the other's config."""
    assert DEFAULT_UNET_ARCH == "film" == FiLMUNetConfig().arch
    assert isinstance(build_unet(unet_config_from_dict({"text_dim": 16})), FiLMUNet1D)
    assert PaperUNetConfig.paper().arch == "paper" and ConditionalUNet1D().cfg.arch == "paper"
    with pytest.raises(ValueError, match="build_unet"):
        ConditionalUNet1D(FiLMUNetConfig())
    with pytest.raises(ValueError, match="build_unet"):
        FiLMUNet1D(PaperUNetConfig())
