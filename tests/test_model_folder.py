"""A model folder people can share: ``save_pretrained`` / ``diffusets export`` write it, ``from_pretrained`` and
``diffusets generate --model`` load it without the run that trained the model, bit for bit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from diffusets_core.checkpoint import CheckpointError
from diffusets_core.cli import main
from diffusets_core.diffusion.model_folder import INDEX_FILE, TEXT_CACHE_DIR, file_sha256
from diffusets_core.diffusion.pipeline import DiffuSETSPipeline, export_model
from diffusets_core.eval.output import write_json, write_table
from diffusets_core.models.factory import build_unet
from diffusets_core.models.film_unet import FiLMUNetConfig
from diffusets_core.models.folder import load_unet_dir, load_vae_dir, save_model_dir
from diffusets_core.models.reference import ReferenceVAE
from diffusets_core.models.unet import ConditionalUNet1D, PaperUNetConfig
from diffusets_core.models.vae import VAE, VAEConfig
from diffusets_core.text.cache import EmbeddingCache
from diffusets_core.text.embed import user_cache_dir
from diffusets_core.text.embedders import HashEmbedder
from tests.data_trees import make_tiny_run, simple_mimic_records

TRAIN = {
    "max_steps": 2,
    "batch_size": 8,
    "val_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "progress": False,
    "device": "cpu",
}
CALL = {
    "reports": ["Sinus rhythm|Normal ECG", "Sinus tachycardia"],
    "age": [63, 40],
    "sex": ["M", "F"],
    "hr": [115, 70],
    "num_inference_steps": 2,
    "seed": 7,
}


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    """New prompt vectors of a loaded folder go to the user's cache: a temporary one here, never ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DIFFUSETS_CACHE", raising=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run (32-d hash embedder, 2 training steps per model); tests copy it before changing it."""
    return make_tiny_run(tmp_path_factory.mktemp("mf"), simple_mimic_records(24, subjects=12), train=TRAIN)


@pytest.fixture(scope="module")
def folder(run, tmp_path_factory) -> Path:
    """The run exported once; tests that tamper with it work on a copy (:func:`_copy`)."""
    return export_model(run, tmp_path_factory.mktemp("export") / "model")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _index(folder: Path) -> dict:
    return json.loads((folder / INDEX_FILE).read_text())


def _write_index(folder: Path, index: dict) -> None:
    (folder / INDEX_FILE).write_text(json.dumps(index))


def _load(folder: Path, **kw) -> DiffuSETSPipeline:
    return DiffuSETSPipeline.from_pretrained(folder, device="cpu", **kw)


# ---- the round trip ----------------------------------------------------------------------------------------------
def test_folder_reproduces_the_run_bit_for_bit_without_it(run, tmp_path, capsys):
    work = _copy(run, tmp_path / "run")
    pipe = _load(work)
    expected = pipe(**CALL).signals
    single = pipe("Sinus rhythm", age=50, sex="F", hr=70, num_inference_steps=2, seed=0).signals[0]
    api = pipe.save_pretrained(tmp_path / "api")
    assert main(["export", str(work), "--out", str(tmp_path / "cli")]) == 0
    shutil.rmtree(work)  # nothing of the run is needed from here on

    for exported in (api, tmp_path / "cli"):
        loaded = _load(exported)
        assert loaded.provenance["source"] == "run" and loaded.identity["weights"] == "exported model folder"
        assert np.array_equal(loaded(**CALL).signals, expected), exported
    # folder -> folder: the same weights, files and card (the export time aside)
    again = _load(api).save_pretrained(tmp_path / "again")
    assert _index(again)["files"] == _index(api)["files"]
    assert (again / "README.md").read_text() == (api / "README.md").read_text()
    assert np.array_equal(_load(again)(**CALL).signals, expected)
    # the command line: generate --model writes what the pipeline generates
    argv = ["generate", "--model", str(tmp_path / "cli"), "--report", "Sinus rhythm", "--age", "50", "--sex", "F"]
    argv += ["--hr", "70", "--steps", "2", "--formats", "npy", "--quiet", "--out", str(tmp_path / "samples")]
    assert main(argv) == 0
    assert np.array_equal(np.load(tmp_path / "samples" / "ecg_000000.npy"), single)
    capsys.readouterr()


def test_index_records_what_generation_needs(folder, run):
    index = _index(folder)
    assert index["format_version"] == 1 and index["package_version"]
    assert index["embedder"]["backend"] == "hash" and index["embedder"]["dim"] == 32 == index["text_dim"]
    assert index["patient_mode"] == "normalized" and index["schedule"]["num_train_timesteps"] == 1000
    assert index["fs"] == pytest.approx(102.4) and index["leads"][4] == "aVL"
    assert index["sampling"]["source"] == "defaults" and index["sampling"]["settings"]["sampler"] == "ddim"
    assert set(index["files"]) == {f"{c}/{f}" for c in ("unet", "vae") for f in ("config.json", "model.safetensors")}
    for rel, sha in index["files"].items():
        assert file_sha256(folder / rel) == sha and len(sha) == 64
    # every tensor of the trained models, buffers included, is in the safetensors files
    trained = torch.load(run / "unet" / "model.pt", weights_only=True)["state_dict"]
    stored = load_file(str(folder / "unet" / "model.safetensors"))
    assert stored.keys() == trained.keys() and all(torch.equal(stored[k], trained[k]) for k in trained)
    assert not (folder / TEXT_CACHE_DIR).exists()  # no cache unless asked for
    mask = os.umask(0)
    os.umask(mask)
    for p in [*folder.glob("*.*"), *folder.glob("*/*")]:  # readable as the umask allows, not private temp files
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p


def test_saved_sampling_settings_travel_with_the_model(run, tmp_path):
    work = _copy(run, tmp_path / "run")
    settings = {"sampler": "ddim", "num_inference_steps": 3, "guidance_scale": 2.0, "chosen_by": "a test"}
    (work / "unet" / "sampling.json").write_text(json.dumps(settings))
    out = export_model(work, tmp_path / "m")
    index = _index(out)
    assert index["sampling"]["source"] == "sampling.json" and index["sampling"]["saved"] == settings
    assert index["sampling"]["settings"]["num_inference_steps"] == 3
    assert _load(out).sampling == _load(work).sampling
    assert "chosen by a test" in (out / "README.md").read_text()


def test_loading_a_folder_imports_no_training_code(folder, tmp_path):
    code = f"""
import sys
from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
pipe = DiffuSETSPipeline.from_pretrained({str(folder)!r}, device="cpu")
pipe("Sinus rhythm", age=50, sex="F", hr=70, num_inference_steps=1)
api = sorted(m for m in sys.modules if m.startswith(("diffusets_core.train", "diffusets_core.eval")))
from diffusets_core.cli import main
argv = ["generate", "--model", {str(folder)!r}, "--report", "Sinus rhythm", "--age", "50", "--sex", "F", "--hr", "70",
        "--steps", "1", "--formats", "npy", "--quiet", "--out", {str(tmp_path / "o")!r}]
assert main(argv) == 0
cli = sorted(m for m in sys.modules if m.startswith("diffusets_core.train"))
print("api", api, "cli", cli)
"""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "api [] cli []" in res.stdout


def test_new_prompt_vectors_go_to_the_user_cache_not_the_folder(folder, tmp_path):
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    _load(folder)("Atrial fibrillation", age=70, sex="M", hr=110, num_inference_steps=1)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert list((tmp_path / "xdg" / "diffusets" / "embeddings").rglob("seg-*.npy"))


def test_text_cache_ships_the_runs_prompt_vectors(run, tmp_path):
    out = export_model(run, tmp_path / "m", text_cache=True)
    index = _index(out)
    assert index["text_cache"]["vectors"] > 0
    assert any(rel.startswith(f"{TEXT_CACHE_DIR}/") for rel in index["files"])
    report = pd.read_csv(run / "data" / "manifest.csv", dtype=str).query("status == 'ok'")["report"].iloc[0]
    pipe = _load(out)
    np.testing.assert_array_equal(pipe.embed_reports([report]), _load(run).embed_reports([report]))
    assert pipe.embedder.stats["texts"] == 0  # read from the shipped cache, not embedded again
    # the shipped vectors win over other vectors of the same prompt in the user's cache
    prompt = pd.read_csv(run / "embeddings" / "distinct_prompts.csv", keep_default_na=False)["prompt"].iloc[0]
    EmbeddingCache(user_cache_dir() / "embeddings", pipe.embedder.identity).add([prompt], np.zeros((1, 32)))
    shipped = np.load(run / "embeddings" / "vectors.npy")[0]
    np.testing.assert_array_equal(_load(out).embedding_cache().get([prompt])[0], shipped)


# ---- the model card -----------------------------------------------------------------------------------------------
def test_model_card_says_not_evaluated_without_an_evaluation(folder):
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\nlibrary_name: diffusets-core\ntags:\n")
    assert "Not evaluated: the run has no eval/targets.csv" in card
    assert "Not for diagnosis" in card.replace("**", "") and "unknown (the run does not record the commit" in card
    assert "unknown (the run records no profile.json)" in card


def _evaluate_stub(run: Path, unet_sha: str) -> pd.DataFrame:
    """What evaluate_run leaves in eval/: targets.csv (a few rows, distinctive values) and benchmark.json."""
    targets = pd.DataFrame(
        [
            ["hr_mae_50_150", "HR MAE (requested HR 50-150 bpm)", 7.043431, 0.674574, 5.0, "<=", False],
            ["macro_recall_morphology", "classifier recall, morphology", 0.5504298, 0.5084337, 0.8, ">=", False],
            ["rfid", "rFID", 14.135755, 5.3289325, 2.0, "<=", False],
        ],
        columns=["target", "description", "value", "vae_ceiling", "threshold", "direction", "met"],
    )
    write_table(run / "eval", "targets", targets)
    bench = {"n_conditions": 567, "sampler": "ddim", "steps": 20, "guidance_scale": 4.5, "guidance_on": "text"}
    write_json(run / "eval" / "benchmark.json", {**bench, "seed": 0, "pipeline": {"unet_sha256": unet_sha}})
    return targets


def test_model_card_shows_the_runs_benchmark_read_from_its_files(run, tmp_path):
    work = _copy(run, tmp_path / "run")
    (work / "profile.json").write_text(
        json.dumps({"name": "tiny", "description": "A test profile.", "run_dir": "/x/y"})
    )
    _evaluate_stub(work, file_sha256(work / "unet" / "model.pt")[:16])
    out = export_model(work, tmp_path / "m")
    card = (out / "README.md").read_text()
    assert "| `hr_mae_50_150` | HR MAE (requested HR 50-150 bpm) | 7.043 | 0.6746 | <= 5 | no |" in card
    assert "| `rfid` | rFID | 14.14 | 5.329 | <= 2 | no |" in card
    assert "567 test conditions, sampler ddim with 20 steps, guidance scale 4.5 on text" in card
    assert "profile `tiny`" in card and "A test profile." in card
    prepared = json.loads((work / "data" / "prepare.json").read_text())["counts"]["ok"]
    assert f"Records: {prepared} prepared" in card
    prov = _index(out)["provenance"]
    assert prov["evaluation"]["status"] == "evaluated" and prov["profile"]["run_dir"] == "y"  # no machine paths
    # an evaluation of other weights (a retrained U-Net) is not this model's
    _evaluate_stub(work, "0" * 16)
    card = (export_model(work, tmp_path / "m") / "README.md").read_text()
    assert "Not evaluated: the run's evaluation (eval/) is of other U-Net weights" in card and "7.043" not in card


# ---- refusals -----------------------------------------------------------------------------------------------------
def test_missing_files_are_named(folder, tmp_path):
    a = _copy(folder, tmp_path / "a")
    (a / "vae" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing file: .*a/vae/model\.safetensors \(listed in"):
        _load(a)
    b = _copy(folder, tmp_path / "b")
    (b / INDEX_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"missing file: .*b/model_index\.json .*interrupted export"):
        _load(b)


def test_changed_weights_are_refused_by_their_sha256(folder, tmp_path):
    f = _copy(folder, tmp_path / "f")
    data = bytearray((f / "unet" / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    (f / "unet" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"unet/model\.safetensors: SHA-256 .* does not match"):
        _load(f)


def _replace_weights(folder: Path, change) -> None:
    """Rewrite the U-Net's weights with ``change(state)`` applied and record the new SHA-256 (a folder assembled
    by hand, whose index agrees with its files)."""
    path = folder / "unet" / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))
    index = _index(folder)
    index["files"]["unet/model.safetensors"] = file_sha256(path)
    _write_index(folder, index)


def test_weights_that_do_not_fit_the_config_are_refused(folder, tmp_path):
    a = _copy(folder, tmp_path / "a")
    key = next(k for k, v in load_file(str(a / "unet" / "model.safetensors")).items() if v.dim() == 3)
    _replace_weights(a, lambda s: s.__setitem__(key, torch.zeros(1, 1, 1)))
    with pytest.raises(CheckpointError, match=rf"a/unet/model\.safetensors .*1 shape mismatch\(es\): {key}"):
        _load(a)
    b = _copy(folder, tmp_path / "b")
    _replace_weights(b, lambda s: s.update(extra=torch.zeros(2)))
    with pytest.raises(CheckpointError, match=r"b/unet/model\.safetensors .*1 unexpected key\(s\): extra"):
        _load(b)
    c = _copy(folder, tmp_path / "c")
    _replace_weights(c, lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=rf"1 missing key\(s\): {key}"):
        _load(c)


def test_an_embedder_of_another_width_is_refused(folder, tmp_path):
    with pytest.raises(ValueError, match="16-d vectors but the U-Net was trained on 32-d"):
        _load(folder, embedder=HashEmbedder(dim=16))
    f = _copy(folder, tmp_path / "f")
    index = _index(f)
    index["embedder"]["dim"] = 16
    _write_index(f, index)
    with pytest.raises(
        CheckpointError, match=r"model_index\.json: the embedder hash .* 16-d vectors but .*text_dim 32"
    ):
        _load(f)


def test_an_unknown_format_version_is_refused(folder, tmp_path):
    f = _copy(folder, tmp_path / "f")
    index = _index(f)
    index["format_version"] = 99
    _write_index(f, index)
    with pytest.raises(CheckpointError, match=r"model_index\.json: unknown format version 99"):
        _load(f)


def test_export_refuses_folders_that_are_not_exports(run, folder, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"busy is not empty and not a model folder \(notes\.txt\).*overwrite"):
        export_model(run, busy)
    assert main(["export", str(run), "--out", str(busy)]) == 2 and "--overwrite" in capsys.readouterr().err
    export_model(run, busy, overwrite=True)
    assert (busy / "notes.txt").read_text() == "mine" and (busy / INDEX_FILE).is_file()
    export_model(run, _copy(folder, tmp_path / "previous"))  # a previous export is replaced without asking
    with pytest.raises(ValueError, match="is where the model is loaded from"):
        export_model(run, run, overwrite=True)
    with pytest.raises(ValueError, match="is where the model is loaded from"):
        _load(folder).save_pretrained(folder)
    other = tmp_path / "other_run"
    (other / "unet").mkdir(parents=True)
    (other / "unet" / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="other_run is a run directory"):  # its unet/config.json is the trainer's
        export_model(folder, other, overwrite=True)


def test_generate_takes_one_model(folder, tmp_path, capsys):
    base = ["generate", "--report", "Sinus rhythm", "--age", "50", "--sex", "F", "--hr", "70", "--out", str(tmp_path)]
    assert main([*base, "--run", str(folder), "--model", str(folder)]) == 2
    assert "--run RUN_DIR or --model FOLDER (one of them)" in capsys.readouterr().err
    assert main(base) == 2 and "one of them" in capsys.readouterr().err
    assert main([*base, "--model", str(tmp_path)]) == 2
    assert "missing file: " in capsys.readouterr().err


# ---- components and the released checkpoint ---------------------------------------------------------------------
def test_film_unet_buffers_and_vae_latent_statistics_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = FiLMUNetConfig(
        text_dim=8, base_channels=8, channel_mults=(1, 2), attn_levels=(1,), emb_dim=16, norm_groups=4,
        attn_heads=2, text_tokens=2, text_subspace=0.5,
    )  # fmt: skip
    unet = build_unet(cfg)
    for buf in unet.buffers():
        buf.copy_(torch.randn_like(buf))  # standardisation and whitening buffers that differ from their init
    save_model_dir(unet, tmp_path / "unet")
    back = load_unet_dir(tmp_path / "unet")
    assert type(back).__name__ == "FiLMUNet1D" and back.cfg == unet.cfg
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), back.state_dict().values()))

    vae = VAE(VAEConfig.tiny(channels=(8, 8), norm_groups=4, latent_norm="channel", derived_leads=True))
    vae.set_scale_factor(0.7)
    vae.set_latent_stats([0.1, -1.0, 0.3, 0.0], [0.5, 0.2, 1.0, 2.0])
    save_model_dir(vae, tmp_path / "vae")
    back = load_vae_dir(tmp_path / "vae")
    z = torch.randn(2, 4, 16)
    assert back.cfg == vae.cfg and torch.equal(back.decode(z), vae.eval().decode(z))


def test_a_released_checkpoint_exports_in_paper_mode(tmp_path):
    torch.manual_seed(0)
    unet = ConditionalUNet1D(PaperUNetConfig.paper(text_dim=32, levels=3, attn_heads=2))
    vae = ReferenceVAE(VAEConfig.paper(channels=(8, 8, 8), norm_groups=4))
    torch.save(unet.state_dict(), tmp_path / "unet_all.pth")
    torch.save(vae.reference_state_dict(), tmp_path / "vae_model.pth")
    pipe = DiffuSETSPipeline.from_reference(
        tmp_path / "unet_all.pth", tmp_path / "vae_model.pth", embedder=HashEmbedder(dim=32), device="cpu",
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    call = {"reports": "Sinus rhythm", "sampler": "ddpm", "num_inference_steps": 2, "seed": 3}
    out = pipe.save_pretrained(tmp_path / "released")
    loaded = _load(out)
    assert isinstance(loaded.vae, ReferenceVAE) and loaded.patient_mode == "paper" and loaded.clip_sample == 1.0
    assert np.array_equal(loaded(**call).signals, pipe(**call).signals)
    card = (out / "README.md").read_text()
    assert "license: unknown" in card and "released checkpoint" in card and "Not evaluated" in card
