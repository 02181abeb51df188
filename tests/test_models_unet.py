"""U-Net: tiny-config shapes, condition dropout, cross-attention shortcut, input validation."""

from __future__ import annotations

import pytest
import torch

from diffusets_core.models import ConditionalUNet1D, PaperUNetConfig, unet_config_from_dict


def tiny_cfg(**kw) -> PaperUNetConfig:
    base = dict(levels=4, text_dim=384, cond_dropout=0.1)
    base.update(kw)
    return PaperUNetConfig(**base)


def inputs(b=3, d=384, length=32, c=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, length, generator=g)
    t = torch.tensor([0, 500, 999, 17, 3][:b])
    text = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=-1)
    patient = torch.tensor([[1.0, 0.5, 0.8], [0.0, 0.71, 0.55], [1.0, 0.23, 1.3], [0, 0.4, 0.6], [1, 0.9, 0.7]][:b])
    return x, t, text, patient


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return ConditionalUNet1D(tiny_cfg())


def test_tiny_shapes_and_text_layouts(tiny):
    x, t, text, patient = inputs()
    eps = tiny(x, t, text, patient)
    assert eps.shape == x.shape and eps.dtype == torch.float32
    torch.testing.assert_close(tiny(x, t, text[:, None, :], patient), eps)
    torch.testing.assert_close(tiny(x, t, text, patient[:, None, :]), eps)
    # scalar timestep broadcasts over the batch
    torch.testing.assert_close(tiny(x, 500, text, patient)[1], eps[1])


def test_channel_plan_follows_reference_arithmetic():
    assert PaperUNetConfig.paper().channels == [4, 8, 16, 32, 64, 128, 256]
    assert PaperUNetConfig(width_mult=2).channels == [4, 16, 32, 64, 128, 256, 512]
    assert PaperUNetConfig.paper(in_channels=12).channels[-1] == 768  # the no-VAE ablation
    m = ConditionalUNet1D(tiny_cfg(width_mult=2, in_channels=12, levels=3, kernel_size=5))
    x = torch.randn(2, 12, 16)
    assert m(x, torch.tensor([1, 2]), torch.randn(2, 384), torch.zeros(2, 3)).shape == x.shape


def test_paper_state_dict_has_no_null_condition():
    paper = ConditionalUNet1D(PaperUNetConfig.paper(levels=3, text_dim=16))
    names = set(paper.state_dict())
    assert "null_text" not in names and "null_patient" not in names
    assert any(".block.down." in n for n in names)
    ours = ConditionalUNet1D(PaperUNetConfig(levels=3, text_dim=16))
    names = set(ours.state_dict())
    assert {"null_text", "null_patient"} <= names
    assert not any(".block.down." in n for n in names)
    assert ours.null_text.shape == (16,) and ours.null_patient.shape == (3,)


def test_condition_dropout(tiny):
    x, t, text, patient = inputs()
    with torch.no_grad():
        tiny.null_text.normal_()
        tiny.null_patient.normal_()
    none = torch.zeros(3, dtype=torch.bool)
    allm = torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(tiny(x, t, text, patient, drop_mask=none), tiny(x, t, text, patient))
    # fully dropped: the output no longer depends on the condition ...
    a = tiny(x, t, text, patient, drop_mask=allm)
    b = tiny(x, t, torch.randn_like(text), patient * 7, drop_mask=allm)
    torch.testing.assert_close(a, b)
    # ... and equals feeding the null vectors explicitly
    null_text = tiny.null_text.detach().expand(3, -1)
    null_pat = tiny.null_patient.detach().expand(3, -1)
    torch.testing.assert_close(a, tiny(x, t, null_text, null_pat))
    # per-sample masking
    mixed = torch.tensor([True, False, True])
    out = tiny(x, t, text, patient, drop_mask=mixed)
    torch.testing.assert_close(out[1], tiny(x, t, text, patient)[1])
    torch.testing.assert_close(out[0], a[0])
    # the null vectors are learned
    tiny.zero_grad()
    tiny(x, t, text, patient, drop_mask=mixed).pow(2).mean().backward()
    assert tiny.null_text.grad is not None and tiny.null_text.grad.abs().sum() > 0
    assert tiny.null_patient.grad is not None
    tiny.zero_grad()
    m = tiny.sample_drop_mask(10_000, generator=torch.Generator().manual_seed(0))
    assert m.dtype == torch.bool and 0.08 < m.float().mean() < 0.12


def test_drop_mask_needs_null_condition():
    m = ConditionalUNet1D(PaperUNetConfig.paper(levels=3, text_dim=384))
    x, t, text, patient = inputs(b=2, length=16)
    with pytest.raises(ValueError, match="no null condition"):
        m(x, t, text, patient, drop_mask=torch.ones(2, dtype=torch.bool))


def test_cross_attention_bias_equals_full():
    torch.manual_seed(3)
    full = ConditionalUNet1D(tiny_cfg(cross_attn_impl="full"))
    bias = ConditionalUNet1D(tiny_cfg(cross_attn_impl="bias"))
    bias.load_state_dict(full.state_dict())
    x, t, text, patient = inputs()
    torch.testing.assert_close(bias(x, t, text, patient), full(x, t, text, patient), atol=1e-5, rtol=1e-5)
    # the query path of the literal attention gets (up to rounding) zero gradient, as in the reference
    full(x, t, text, patient).sum().backward()
    ca = full.downsampling_blocks[1].block.cross_attention
    assert float(ca.to_q.weight.grad.abs().max()) < 1e-6 * float(ca.to_v.weight.grad.abs().max())


def test_training_step_and_unused_parameters():
    torch.manual_seed(0)
    m = ConditionalUNet1D(tiny_cfg(keep_dead_params=True))
    x, t, text, patient = inputs()
    m(x, t, text, patient, drop_mask=m.sample_drop_mask(3)).pow(2).mean().backward()
    unused = set(m.unused_parameter_names())
    assert unused and any(".block.down." in n for n in unused) and any("to_q" in n for n in unused)
    for name, p in m.named_parameters():
        if not p.requires_grad:
            assert name.endswith("time_emb.embeddings")
        elif name in unused:
            assert p.grad is None, name
        elif name not in ("null_text", "null_patient"):
            assert p.grad is not None, name
    frozen = m.freeze_unused_parameters()
    assert set(frozen) == unused and all(not p.requires_grad for n, p in m.named_parameters() if n in unused)


def test_input_validation(tiny):
    x, t, text, patient = inputs()
    with pytest.raises(TypeError, match="integer"):
        tiny(x, t.float(), text, patient)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        tiny(x, torch.tensor([0, 1, 1000]), text, patient)
    with pytest.raises(ValueError, match="divisible"):
        tiny(torch.randn(3, 4, 20), t, text, patient)
    with pytest.raises(ValueError, match="expects \\(B, 384\\)"):
        tiny(x, t, torch.randn(3, 1536), patient)
    with pytest.raises(ValueError, match="patient values"):
        tiny(x, t, text, None)
    with pytest.raises(ValueError, match="patient must be"):
        tiny(x, t, text, patient[:, :2])


def test_text_only_variant():
    m = ConditionalUNet1D(tiny_cfg(cond_dim=0, levels=3))
    x, t, text, _ = inputs(length=16)
    assert m(x, t, text).shape == x.shape
    assert m(x, t, text, drop_mask=torch.tensor([True, False, False])).shape == x.shape


def test_bf16_autocast_cpu(tiny):
    x, t, text, patient = inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps = tiny(x, t, text, patient)
    ref = tiny(x, t, text, patient)
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert (eps.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def test_config_round_trip():
    cfg = PaperUNetConfig.paper(text_dim=8192)
    assert unet_config_from_dict(cfg.to_dict()) == cfg == PaperUNetConfig.from_dict(cfg.to_dict())
    with pytest.raises(ValueError):
        unet_config_from_dict({"cond_dropout": 1.0})
    with pytest.raises(ValueError):
        unet_config_from_dict({"kernel_size": 4})
    with pytest.raises(ValueError, match="bogus"):
        unet_config_from_dict({"levels": 7, "bogus": 1})
