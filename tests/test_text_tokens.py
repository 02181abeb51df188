"""Statement tokens (FiLMUNetConfig.text_tokens > 0): the token matrix, the U-Net's cross-attention path (shapes,
padding, dropping the report, a stored slice) and the training -> pipeline round trip on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusets_core.models.factory import build_unet, unet_config_from_dict
from diffusets_core.models.film_unet import FiLMUNetConfig
from diffusets_core.text.tokens import report_tokens, statement_rows

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers


def _embed(statements: list[str]) -> np.ndarray:
    # deterministic 4-d vectors from the text, never all-zero
    return np.array([[len(s), s.count("e") + 1, ord(s[0]) / 10, 1.0] for s in statements], dtype=np.float32)


def test_report_tokens_layout_padding_and_truncation():
    reports = ["Sinus rhythm|Normal ECG", "Atrial fibrillation", "A|B|C|D"]
    prompts = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    calls = []

    def embed(st):
        calls.append(list(st))
        return _embed(st)

    tok, stats = report_tokens(reports, prompts, embed, max_statements=3)
    assert tok.shape == (3, 4, 4) and tok.dtype == np.float32
    np.testing.assert_array_equal(tok[:, 0], prompts)  # token 0 is the prompt vector
    np.testing.assert_array_equal(tok[0, 1], _embed(["Sinus rhythm"])[0])
    np.testing.assert_array_equal(tok[0, 2], _embed(["Normal ECG"])[0])
    assert not tok[0, 3].any() and not tok[1, 2:].any()  # padding rows are zeros
    np.testing.assert_array_equal(tok[2, 3], _embed(["C"])[0])  # "D" is the 4th: truncated
    assert stats == {"distinct_statements": 6, "truncated_reports": 1, "max_statements_seen": 4}
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))  # every distinct statement embedded once
    rows = statement_rows(tok)
    assert rows.shape == (6, 4)  # 2 + 1 + 3 statements present, padding dropped


@pytest.mark.parametrize(
    "reports, prompts, embed, match",
    [
        (["A", "  |  "], np.ones((2, 4)), _embed, "no statement"),
        (["A"], np.ones((2, 4)), _embed, "N=1"),
        (["A"], np.ones((1, 4)), lambda st: np.zeros((len(st), 4)), "all-zero"),
        (["A"], np.ones((1, 4)), lambda st: np.ones((len(st), 3)), r"\(1, 4\)"),
    ],
)
def test_report_tokens_refuses_bad_input(reports, prompts, embed, match):
    with pytest.raises(ValueError, match=match):
        report_tokens(reports, prompts, embed, 2)


def token_cfg(**kw) -> FiLMUNetConfig:
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
        text_tokens=3,
    )
    base.update(kw)
    return FiLMUNetConfig(**base)


def seeded_token_model():
    torch.manual_seed(0)
    m = build_unet(token_cfg())
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero-initialised output projections get small values so every path reaches the output
        for n, p in m.named_parameters():
            if p.dim() > 0 and "null" not in n and bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def token_inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(2))
    text = torch.randn(2, 4, 16, generator=g)
    text[1, 2:] = 0  # second report: one statement
    patient = torch.tensor([[1.0, 0.5, 0.7], [0.0, 0.3, 1.1]])
    return x, torch.tensor([3, 700]), text, patient


# stored from this implementation (torch 2.13 CPU); a change to the token path, the cross-attention or its
# placement moves these numbers
EXPECTED_TOKEN_SLICE = torch.tensor(
    [
        -0.083293,
        0.15532,
        0.362745,
        -0.044072,
        -0.072214,
        -0.059472,
        0.180856,
        0.105483,
        0.280019,
        0.156497,
        0.034975,
        -0.323278,
    ]
)


def test_token_model_shapes_slice_and_statements_matter():
    m = seeded_token_model()
    x, t, text, patient = token_inputs()
    out = m(x, t, text, patient)
    assert out.shape == x.shape
    torch.testing.assert_close(out[0, :, :3].flatten(), EXPECTED_TOKEN_SLICE, atol=2e-5, rtol=1e-4)
    # changing one report's statement changes that report's output and leaves the other row's alone
    other = text.clone()
    other[0, 2] = torch.randn(16)
    assert not torch.allclose(m(x, t, other, patient)[0], out[0])
    torch.testing.assert_close(m(x, t, other, patient)[1], out[1])
    # the statements enter by cross-attention AND the pooled FiLM embedding
    assert sum(1 for n, _ in m.named_modules() if n.endswith("xattns.0") or n == "mid_xattn") >= 3
    with pytest.raises(ValueError, match=r"\(B, 4, 16\)"):
        m(x, t, text[:, 0], patient)
    with pytest.raises(ValueError, match="text_tokens"):
        unet_config_from_dict({"arch": "paper", "levels": 3, "text_dim": 16, "text_tokens": 2})


def test_dropped_report_ignores_every_statement():
    m = seeded_token_model()
    x, t, text, patient = token_inputs()
    drop = torch.tensor([[True, False], [True, False]])
    other = text.clone()
    other[:, 1:] = torch.randn(2, 3, 16)
    other[:, 0] = torch.randn(2, 16)
    torch.testing.assert_close(m(x, t, text, patient, drop), m(x, t, other, patient, drop))
    assert not torch.allclose(m(x, t, text, patient, drop), m(x, t, text, patient.flip(0), drop))


def test_statement_stats_are_buffers_saved_with_the_model():
    m = seeded_token_model()
    x, t, text, patient = token_inputs()
    before = m(x, t, text, patient)
    m.set_text_stats(
        torch.zeros(16), torch.ones(16), statement_mean=torch.full((16,), 0.5), statement_std=torch.full((16,), 2.0)
    )
    after = m(x, t, text, patient)
    assert not torch.allclose(before, after)
    m2 = build_unet(token_cfg())
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2(x, t, text, patient), after)
    with pytest.raises(ValueError, match="no statement tokens"):
        build_unet(token_cfg(text_tokens=0)).set_text_stats(
            torch.zeros(16), torch.ones(16), statement_mean=torch.zeros(16), statement_std=torch.ones(16)
        )


def test_tiny_run_trains_and_generates_with_statement_tokens(tmp_path):
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from tests.data_trees import make_tiny_run, simple_mimic_records

    train = {
        "max_steps": 3,
        "batch_size": 8,
        "val_every": 3,
        "checkpoint_every": 3,
        "log_every": 1,
        "progress": False,
        "device": "cpu",
    }
    unet = {
        "arch": "film",
        "base_channels": 8,
        "channel_mults": [1, 2],
        "attn_levels": [1],
        "emb_dim": 16,
        "attn_heads": 2,
        "norm_groups": 4,
        "cond_dropout": 0.2,
        "cond_dropout_mode": "separate",
        "text_tokens": 4,
        "text_subspace": 0.999,
    }
    run = make_tiny_run(tmp_path, simple_mimic_records(24, subjects=12), train=train, unet=unet)
    ck = torch.load(run / "unet" / "model.pt", weights_only=True)
    assert ck["config"]["text_tokens"] == 4
    sd = ck["state_dict"]
    # statement statistics were measured on the training split (not left at 0 / 1)
    assert sd["stmt_std"].ne(1).any() and sd["stmt_mean"].ne(0).any()
    # and the subspace whitening of prompts and statements (text_subspace) is stored with the weights
    eye = torch.eye(32)
    assert not torch.allclose(sd["text_whiten"], eye) and not torch.allclose(sd["stmt_whiten"], eye)
    assert ck["meta"]["text_standardisation"]["components"] < 32
    pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu", dim=32)
    tok = pipe.embed_reports(["Sinus rhythm|Normal ECG", "Atrial fibrillation"])
    assert tok.shape == (2, 5, 32) and not tok[1, 2:].any() and tok[0, 1:3].any()
    out = pipe(
        ["Sinus rhythm|Normal ECG", "Atrial fibrillation"],
        age=60,
        sex="F",
        hr=[70, 110],
        num_inference_steps=3,
        sampler="ddim",
        guidance_scale=2.0,
        guidance_on="text",
        seed=0,
    )
    assert out.signals.shape[:2] == (2, 12) and np.isfinite(out.signals).all()
