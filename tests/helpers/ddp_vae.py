"""Run by tests/test_train.py under torchrun: train_vae (the real stage) for 2 steps on a prepared run."""

import sys

from diffusets_core.train.vae import train_vae

if __name__ == "__main__":
    train_vae(
        sys.argv[1],
        {"channels": [8, 8, 16], "norm_groups": 4, "derived_leads": True, "latent_channels": 8},
        {"max_steps": 2, "batch_size": 4, "val_every": 2, "checkpoint_every": 2, "progress": False, "device": "cpu"},
        seed=0,
        kl_weight=1e-4,
    )
