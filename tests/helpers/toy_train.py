"""A tiny noisy-regression task for exercising the training loop (also run under torchrun)."""

import sys
from pathlib import Path

import torch
from torch import nn

from diffusets_core.train.loop import TensorSource, TrainConfig, Trainer


def toy_data(n: int = 64, seed: int = 0) -> TensorSource:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.linspace(-1, 1, 8).unsqueeze(1) + 0.1
    return TensorSource({"x": x, "y": y})


def toy_loss(model: nn.Module, batch, gen: torch.Generator) -> torch.Tensor:
    # The injected noise makes the loss depend on the step's generator, as diffusion losses do.
    noise = torch.randn(batch["x"].shape, generator=gen, device=batch["x"].device) * 0.05
    return nn.functional.mse_loss(model(batch["x"] + noise), batch["y"])


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 1))


def make_trainer(out: Path, max_steps: int, **kw) -> Trainer:
    cfg = TrainConfig(
        max_steps=max_steps,
        batch_size=8,
        lr=1e-2,
        val_every=5,
        checkpoint_every=5,
        log_every=1,
        progress=False,
        seed=0,
        device="cpu",
        **kw,
    )
    return Trainer(toy_model(), toy_loss, toy_data(), out, cfg, val=toy_data(16, seed=1), meta={"task": "toy"})


if __name__ == "__main__":  # torchrun entry: train 3 steps, each rank dumps its weights
    out = Path(sys.argv[1])
    tr = make_trainer(out, 3)
    tr.fit()
    torch.save(tr.model.state_dict(), out / f"rank{tr.dist.rank}.pt")
