"""The fixture's deterministic weight rule (tests/fixtures/reference/README.md, "The weight rule").

``make_reference_state_dicts()`` builds state dicts laid out like the released checkpoints
(``unet_all.pth``: flat U-Net state dict; ``vae_model.pth``: ``{'encoder': ..., 'decoder': ...}``) from the
key lists alone. It lives in the tests, not in the package: it is a fixture generator, not a model API.
Other test modules import it from here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


@functools.cache
def load_key_lists() -> tuple[dict, dict]:
    unet = json.loads((FIXTURES / "unet_keys.json").read_text())
    vae = json.loads((FIXTURES / "vae_keys.json").read_text())
    return unet, vae


@functools.cache
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "golden.npz") as z:
        return {k: z[k] for k in z.files}


def rule_tensor(hashed_string: str, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """The weight rule for one tensor: PCG64 seeded with CRC-32 of the string, float64, cast once."""
    rng = np.random.default_rng(zlib.crc32(hashed_string.encode("utf-8")))
    shape = tuple(int(s) for s in shape)
    draw = rng.standard_normal(shape)
    if len(shape) >= 2:
        value = draw / np.sqrt(float(np.prod(shape[1:], dtype=np.int64)))
    elif hashed_string.endswith("weight"):
        value = 1.0 + 0.05 * draw
    else:
        value = 0.05 * draw
    return value.astype(np.float32)


def _fill(rows: list[dict], table: np.ndarray | None, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for r in rows:
        if r["init"] == "kept_as_constructed":
            assert table is not None and list(table.shape) == r["shape"], r["key"]
            value = table
        else:
            value = rule_tensor(prefix + r["key"], r["shape"])
        out[r["key"]] = torch.from_numpy(np.ascontiguousarray(value).copy())
    return out


@functools.cache
def _cached_state_dicts() -> tuple[dict, dict]:
    unet_keys, vae_keys = load_key_lists()
    unet_sd = _fill(unet_keys["keys"], golden()["unet_time_table"])
    vae_sd = {
        "encoder": _fill(vae_keys["encoder"], None, "encoder."),
        "decoder": _fill(vae_keys["decoder"], None, "decoder."),
    }
    return unet_sd, vae_sd


def make_reference_state_dicts() -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """``(unet_state_dict, {'encoder': ..., 'decoder': ...})`` from the weight rule; the 13 time tables hold
    ``unet_time_table`` (as a real checkpoint does). Returns fresh copies (cached underneath)."""
    unet_sd, vae_sd = _cached_state_dicts()
    return (
        {k: v.clone() for k, v in unet_sd.items()},
        {part: {k: v.clone() for k, v in sd.items()} for part, sd in vae_sd.items()},
    )


def sha256_le(t: torch.Tensor | np.ndarray) -> str:
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else t
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
def test_worked_examples_first3():
    examples = {
        ("downsampling_blocks.0.down.weight", (8, 8, 3)): [
            0.3072514832019806,
            0.11818641424179077,
            -0.2457880973815918,
        ],
        ("downsampling_blocks.0.block.layer_norm1.weight", (6,)): [
            0.9175857305526733,
            0.9994258284568787,
            0.983321487903595,
        ],
        ("downsampling_blocks.0.down.bias", (8,)): [0.048625413328409195, -0.054408080875873566, 0.06775566935539246],
        ("upsampling_blocks.0.up.weight", (256, 256, 4)): [
            -0.00183516601100564,
            -0.002318170852959156,
            0.0040319194085896015,
        ],
        ("encoder.0.weight", (128, 12, 3)): [-0.006450675427913666, 0.21571508049964905, -0.19630910456180573],
        ("decoder.2.groupnorm_1.weight", (512,)): [1.003556489944458, 0.9446712732315063, 1.0367010831832886],
    }
    for (h, shape), first3 in examples.items():
        v = rule_tensor(h, shape).reshape(-1)[:3]
        np.testing.assert_array_equal(v, np.asarray(first3, dtype=np.float32), err_msg=h)


def test_rule_sha256_all_keys():
    """Every key (713 U-Net + 240 VAE) matches the fixture's SHA-256 of its little-endian float32 bytes."""
    unet_sd, vae_sd = _cached_state_dicts()
    unet_keys, vae_keys = load_key_lists()
    checked = 0
    for rows, sd in (
        (unet_keys["keys"], unet_sd),
        (vae_keys["encoder"], vae_sd["encoder"]),
        (vae_keys["decoder"], vae_sd["decoder"]),
    ):
        assert list(sd) == [r["key"] for r in rows]
        for r in rows:
            t = sd[r["key"]]
            assert list(t.shape) == r["shape"] and t.dtype == torch.float32
            assert sha256_le(t) == r["sha256_le_bytes"], r["key"]
            checked += 1
    assert checked == 713 + 104 + 136


@pytest.mark.parametrize("part", ["unet", "vae"])
def test_key_list_summaries(part):
    unet_keys, vae_keys = load_key_lists()
    if part == "unet":
        assert unet_keys["summary"]["n_keys"] == len(unet_keys["keys"]) == 713
        assert sum(r["numel"] for r in unet_keys["keys"]) == 14_177_792
    else:
        assert sum(r["numel"] for r in vae_keys["encoder"]) == 12_218_448
        assert sum(r["numel"] for r in vae_keys["decoder"]) == 17_333_664
