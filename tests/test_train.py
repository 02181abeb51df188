"""Training loop: exact resume, atomic checkpoints, EMA, schedule, and DDP on two CPU processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusets_core.checkpoint import CheckpointError, atomic_save, load_checkpoint
from diffusets_core.fileio import TMP_PREFIX
from diffusets_core.train.ema import EMA
from tests.helpers.toy_train import make_trainer, toy_model

REPO = Path(__file__).resolve().parent.parent


def _curve(history):
    return [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    full = make_trainer(tmp_path / "full", 20)
    full.fit()
    # interrupted: 10 steps, then a fresh trainer resumes from last.pt and finishes
    part = make_trainer(tmp_path / "part", 20)
    part.fit(stop_at=10)
    resumed = make_trainer(tmp_path / "part", 20)
    assert resumed.resume()
    assert resumed.step == 10
    resumed.fit()
    a, b = _curve(full.history), _curve(resumed.history)
    assert [s for s, _ in a] == [s for s, _ in b]
    assert torch.allclose(torch.tensor([l for _, l in a]), torch.tensor([l for _, l in b]), atol=1e-6)
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k


def test_loss_decreases_and_files_written(tmp_path):
    tr = make_trainer(tmp_path / "run", 40)
    res = tr.fit()
    losses = [h["train_loss"] for h in res.history if "train_loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    for name in ("last.pt", "best.pt", "history.csv", "config.json"):
        assert (tmp_path / "run" / name).is_file(), name
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["meta"] == {"task": "toy"} and best["train_config"]["max_steps"] == 40
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_cosine_schedule_ends_at_min_lr(tmp_path):
    tr = make_trainer(tmp_path / "run", 10)
    tr.fit()
    assert tr.sched.get_last_lr()[0] == pytest.approx(1e-2 * 0.1)


def test_ema_tracks_weights():
    m = toy_model()
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    ema.update(m)
    # warm-up decay min(0.5, 2/11) = 0.1818 -> shadow moves 81.8% of the way
    w0 = toy_model().state_dict()["0.weight"]
    assert torch.allclose(ema.shadow.state_dict()["0.weight"], w0 + (1 - 2 / 11), atol=1e-6)


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "ck.pt"
    atomic_save({"a": torch.ones(1000)}, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="ck.pt: not a readable checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_ddp_two_cpu_processes_agree(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env["GLOO_SOCKET_IFNAME"] = "lo"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "tests.helpers.toy_train",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    # weights moved away from the initialisation, i.e. a real step happened on both ranks
    init = toy_model().state_dict()
    assert not torch.equal(r0["0.weight"], init["0.weight"])
    # only rank 0 wrote checkpoints: exactly one last.pt and no stray temp files
    assert (out / "last.pt").is_file() and not list(out.glob(".*.tmp")) and not list(out.glob(TMP_PREFIX + "*"))


def test_unet_does_not_resume_on_other_latents(tmp_path):
    """A U-Net checkpoint trained on latents of another VAE (or normalisation) is not resumed: the run trains
    from scratch instead of keeping a model of the wrong latents."""
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import train_vae
    from tests.data_trees import TINY_UNET, make_tiny_run

    recs = [
        {
            "subject_id": 10000032 + i % 12,
            "study_id": 40000000 + i,
            "hr": 60.0 + i,
            "seed": i,
            "reports": ["Sinus rhythm", "Normal ECG"],
        }
        for i in range(24)
    ]
    train = {"max_steps": 2, "batch_size": 8, "val_every": 2, "checkpoint_every": 2, "progress": False, "device": "cpu"}
    run = make_tiny_run(tmp_path, recs, train=train)
    first = load_checkpoint(run / "unet" / "last.pt")["meta"]["latents_fingerprint"]
    assert train_unet(run, TINY_UNET, train, seed=0)["steps"] == 2  # same latents: resumed, nothing to do
    train_vae(run, {"channels": [32, 32, 32], "norm_groups": 8, "latent_norm": "channel"}, train, seed=0, resume=False)
    encode_latents(run, device="cpu")
    train_unet(run, TINY_UNET, train, seed=0)
    again = load_checkpoint(run / "unet" / "last.pt")["meta"]["latents_fingerprint"]
    assert again != first


def test_ddp_trains_the_vae_stage(tmp_path):
    """torchrun over the real train_vae stage: the VAE's never-used parameters (the attention blocks' unapplied
    group norms) are frozen, so DDP's reducer accepts the step."""
    import socket

    from tests.data_trees import make_tiny_run, simple_mimic_records

    run = make_tiny_run(tmp_path, simple_mimic_records(24, subjects=12))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "tests.helpers.ddp_vae",
        str(run),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "vae" / "summary.json").read_text())["steps"] == 2
