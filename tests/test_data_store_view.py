"""SignalStore.view: a split's signals read lazily from the memory-mapped shards (training at any data size)."""

import numpy as np
import pytest
import torch

from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
from diffusets_core.data.store import SignalStore
from tests.data_trees import simple_mimic_records, write_mimic_tree


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    write_mimic_tree(root / "mimic", simple_mimic_records(30, subjects=15))
    prepare_dataset("mimic", root / "mimic", root / "run", PrepareConfig(shard_size=7), workers=1, progress=False)
    return SignalStore(root / "run")


def test_view_equals_the_in_memory_signals_across_shards(store):
    assert store.records()["shard"].nunique() >= 4  # rows really come from several shards
    for split in ("train", "val", "test", None):
        full = store.signals(split)
        v = store.view(split)
        assert v.shape == full.shape and len(v) == len(full)
        idx = np.random.default_rng(0).permutation(len(full))
        np.testing.assert_array_equal(v[idx], full[idx])  # any order, rows in the order asked
        np.testing.assert_array_equal(v[1:4], full[1:4])
        np.testing.assert_array_equal(v[2], full[2])
        np.testing.assert_array_equal(v[-1], full[-1])
    with pytest.raises(IndexError):
        store.view("train")[np.array([10**6])]


def test_vae_training_source_reads_the_view(store):
    from diffusets_core.train.datasets import store_signals
    from diffusets_core.train.loop import TensorSource

    x = store_signals(store, "train")
    src = TensorSource({"x": x})
    idx = torch.tensor([3, 0, 5])
    b = src.batch(idx, torch.device("cpu"))["x"]
    assert b.dtype == torch.float32
    np.testing.assert_array_equal(b.numpy(), store.signals("train")[[3, 0, 5]])
