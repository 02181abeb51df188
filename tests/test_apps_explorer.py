"""The ECG explorer: back-end (conditions in -> ECG, figure, measurements, reading, closest real ECG out; bad input
-> a clear message), the ipywidgets front-end without a browser, the pre-rendered grid writer, and its HTML page in
headless Chromium (skipped when Chromium is absent)."""

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.signal import resample

from diffusets_core.apps.explorer import (
    MEASUREMENTS,
    Explorer,
    ExplorerInputError,
    agreement,
    check_conditions,
    measure_ecg,
    read_ecg,
)
from diffusets_core.apps.explorer_grid import grid_conditions, render_grid, write_explorer, write_explorer_html
from tests.data_trees import make_tiny_run, simple_mimic_records, synthetic_ecg
from tests.helpers.explorer_browser import CHROMIUM, exercise_explorer, non_local

FS = 102.4
TRAIN = {
    "max_steps": 3,
    "batch_size": 8,
    "val_every": 3,
    "checkpoint_every": 3,
    "log_every": 1,
    "progress": False,
    "device": "cpu",
}


def ecg_at(hr: float, seed: int = 0) -> np.ndarray:
    """A neurokit2 12-lead ECG at ``hr`` bpm, 10 s, resampled to the model's 102.4 Hz: (12, 1024) mV."""
    return resample(synthetic_ecg(hr=hr, seed=seed).T, 1024, axis=-1).astype(np.float32)


class FakePipe:
    """DiffuSETSPipeline's call signature; the ECG's rate follows the requested HR (seeded per ECG)."""

    fs = FS
    sampling = {"guidance_scale": 2.0}

    def __call__(
        self,
        reports,
        *,
        age=50,
        sex="M",
        hr=75,
        seed=0,
        num_inference_steps=20,
        sampler="dpmsolver++",
        guidance_scale=None,
        **kw,
    ):
        reports = [reports] if isinstance(reports, str) else list(reports)
        n = len(reports)
        hrs = [hr] * n if np.isscalar(hr) else list(hr)
        sig = np.stack([ecg_at(float(h), seed + i) for i, h in enumerate(hrs)])
        cond = pd.DataFrame(
            {
                "report": reports,
                "hr": hrs,
                "seed": [seed + i for i in range(n)],
                "guidance_scale": guidance_scale or 2.0,
            }
        )
        return SimpleNamespace(signals=sig, fs=FS, conditions=cond)

    def embed_reports(self, reports):
        return np.stack([[len(r), r.count("|"), 1.0] for r in reports]).astype(np.float32)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("explorer"), simple_mimic_records(24, subjects=12), train=TRAIN)


@pytest.fixture(scope="module")
def explorer(run) -> Explorer:
    return Explorer.from_run(run, dim=32)


def test_explore_returns_ecg_figure_measurements_and_the_closest_real_ecg(explorer, tmp_path):
    report = explorer.records["report"].iloc[0]
    res = explorer.explore(report, 63, "F", 80, seed=3, steps=3)
    assert res.signal.shape == (12, 1024) and res.fs == pytest.approx(FS)
    assert set(MEASUREMENTS) <= set(res.measurements) and "reason" in res.measurements
    assert res.reading and all(isinstance(s, str) for s in res.reading)
    assert {"class", "asked", "read", "agree"} <= set(res.agreement.columns)
    assert res.conditions.statements == tuple(s.strip() for s in report.split("|"))
    # the requested report is a training report: the closest real ECG carries it
    assert res.nearest is not None and res.nearest.similarity == pytest.approx(1.0, abs=1e-4)
    assert res.nearest.report == report and res.nearest.signal.shape == (12, 1024)
    fig = res.figure()
    assert len(fig.axes) == 1 and "seed 3" in fig._suptitle.get_text()
    assert res.nearest_figure() is not None
    html = res.summary_html()
    assert "Measured:" in html and "Interpreter" in html and "QRS axis" in html
    assert set(res.seconds) == {"generate", "measure", "compare"}
    # seeded: the same conditions give the same ECG, another seed another one
    again = explorer.explore(report, 63, "F", 80, seed=3, steps=3, compare=False)
    np.testing.assert_array_equal(again.signal, res.signal)
    assert again.nearest is None
    other = explorer.explore(report, 63, "F", 80, seed=4, steps=3, compare=False)
    assert not np.allclose(other.signal, res.signal)
    files = res.save(tmp_path, formats=("wfdb", "png"))
    assert {f.suffix for f in files} == {".hea", ".dat", ".png"}
    assert "seed: 3" in next(f for f in files if f.suffix == ".hea").read_text()


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"report": ""}, "report"),
        ({"report": " | \n"}, "report"),
        ({"report": None}, "report"),
        ({"age": 400}, "age"),
        ({"age": "old"}, "age"),
        ({"age": float("nan")}, "age"),
        ({"sex": "X"}, "sex"),
        ({"sex": None}, "sex"),
        ({"hr": 5}, "hr"),
        ({"hr": 301}, "hr"),
        ({"hr": "fast"}, "hr"),
        ({"seed": -1}, "seed"),
        ({"seed": "x"}, "seed"),
        ({"guidance_scale": 100}, "guidance scale"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_input_gives_a_message_naming_the_field(kw, field):
    args = {"report": "Sinus rhythm", "age": 60, "sex": "M", "hr": 75, **kw}
    with pytest.raises(ExplorerInputError, match=f"^{re.escape(field)}") as info:
        check_conditions(args.pop("report"), **args)
    assert isinstance(info.value, ValueError) and "Traceback" not in str(info.value)


def test_bad_input_is_caught_before_generation():
    class Boom(FakePipe):
        def __call__(self, *a, **k):
            raise AssertionError("generation must not start")

    with pytest.raises(ExplorerInputError, match="age"):
        Explorer(Boom()).explore("Sinus rhythm", 400, "M", 75)


def test_pipeline_value_errors_become_messages():
    class Refuses(FakePipe):
        def __call__(self, *a, **k):
            raise ValueError("guidance_scale != 1 needs a U-Net trained with condition dropout")

    with pytest.raises(ExplorerInputError, match="condition dropout"):
        Explorer(Refuses()).explore("Sinus rhythm", 60, "M", 75, guidance_scale=3)


def test_conditions_are_normalised():
    c = check_conditions("Sinus rhythm | Right bundle branch block|", "63", "female", 80.0, seed="2")
    assert (
        c.statements == ("Sinus rhythm", "Right bundle branch block")
        and c.report == "Sinus rhythm|Right bundle branch block"
    )
    assert (c.age, c.sex, c.hr, c.seed, c.guidance_scale, c.steps, c.sampler) == (
        63.0,
        "F",
        80.0,
        2,
        None,
        20,
        "dpmsolver++",
    )
    assert check_conditions(["Normal ECG"], 0, "m", 20).statements == ("Normal ECG",)


@pytest.mark.parametrize("hr", [70.0, 115.0])
def test_measurements_of_a_known_ecg(hr):
    m = measure_ecg(ecg_at(hr), FS)
    assert m["hr"] == pytest.approx(hr, abs=4)
    assert 40 <= m["qrs"] <= 200 and 60 <= m["pr"] <= 400 and 200 <= m["qt"] <= 600  # plausible, all measured
    assert np.isfinite(m["qtc"]) and -180 <= m["axis"] <= 180
    reading = read_ecg(ecg_at(hr), FS)
    assert reading[0] == ("Sinus tachycardia" if hr > 100 else "Sinus rhythm")


def test_measurements_never_raise_on_a_flat_signal():
    m = measure_ecg(np.zeros((12, 1024), np.float32), FS)
    assert all(np.isnan(m[k]) for k in MEASUREMENTS) and m["reason"]


def test_agreement_by_benchmark_class():
    t = agreement(
        ["Sinus rhythm", "Right bundle branch block"], ["Sinus rhythm", "Left bundle branch block", "Abnormal ECG"]
    )
    assert t.set_index("class")[["asked", "read", "agree"]].to_dict("index") == {
        "rbbb": {"asked": True, "read": False, "agree": False},
        "lbbb": {"asked": False, "read": True, "agree": False},
    }
    assert agreement(["Sinus tachycardia"], ["Sinus tachycardia", "Borderline ECG"])["agree"].all()


def records_frame() -> pd.DataFrame:
    rows = []
    for i in range(30):
        rep, hr = [
            ("Sinus rhythm|Normal ECG", 70 + i % 5),
            ("Sinus tachycardia|Borderline ECG", 110 + i % 7),
            ("Sinus rhythm|Right bundle branch block|Abnormal ECG", 80),
        ][i % 3]
        rows.append({"record_id": str(i), "report": rep, "hr": float(hr), "age": 40.0 + i, "sex": "MF"[i % 2]})
    return pd.DataFrame(rows)


def test_grid_conditions_classes_rates_and_indices():
    g = grid_conditions(records_frame(), hr_quantiles=(0.1, 0.9))
    assert g["index"].tolist() == list(range(len(g)))
    assert list(dict.fromkeys(g["class"])) == ["normal", "sinus_tachycardia", "rbbb"]
    assert g.loc[g["class"] == "rbbb", "hr"].unique().tolist() == [80.0]  # equal quantiles collapse to one rate
    assert sorted(g.loc[g["class"] == "sinus_tachycardia", "hr"].unique()) == [110.0, 115.0]
    assert set(g["sex"]) == {"F", "M"} and g.loc[g["class"] == "normal", "statement"].iloc[0] == "Normal ECG"
    assert len(grid_conditions(records_frame(), max_classes=1)) == 2 * 2
    with pytest.raises(ValueError, match="no records"):
        grid_conditions(records_frame().iloc[:0])


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    grid = grid_conditions(records_frame(), hr_quantiles=(0.5,))
    table = write_explorer(Explorer(FakePipe()), grid, out, seed=5, batch_size=4, title="test explorer")
    return out, grid, table


def test_grid_writer_images_json_and_html_agree(page):
    out, grid, table = page
    assert len(table) == len(grid) and table["index"].tolist() == grid["index"].tolist()
    assert table["image"].tolist() == [f"img/ecg_{i:03d}.png" for i in grid["index"]]
    assert all((out / p).stat().st_size > 5000 for p in table["image"])
    assert sorted(p.name for p in (out / "img").iterdir()) == sorted(Path(p).name for p in table["image"])
    assert table["seed"].tolist() == [5 + i for i in grid["index"]]
    # requested HR kept, measured HR beside it (the fake ECG follows the request)
    assert table["hr"].tolist() == grid["hr"].tolist()
    np.testing.assert_allclose(table["measured_hr"], table["hr"], atol=5)
    rows = json.loads((out / "conditions.json").read_text())
    assert [r["index"] for r in rows] == table["index"].tolist() and [r["image"] for r in rows] == table[
        "image"
    ].tolist()
    html = (out / "index.html").read_text()
    blob = re.search(r'<script id="explorer-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    data = json.loads(blob.replace("<\\/", "</"))
    assert [r["index"] for r in data["rows"]] == table["index"].tolist()
    assert [m["key"] for m in data["measurements"]] == list(MEASUREMENTS)
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "cdn" not in html.lower()


def test_html_writer_refuses_missing_images(page, tmp_path):
    _, _, table = page
    with pytest.raises(FileNotFoundError, match="images"):
        write_explorer_html(table, tmp_path)


def test_rerendering_a_smaller_grid_leaves_no_stale_images(tmp_path):
    ex = Explorer(FakePipe())
    render_grid(ex, grid_conditions(records_frame(), hr_quantiles=(0.5,)), tmp_path)
    small = render_grid(ex, grid_conditions(records_frame(), hr_quantiles=(0.5,), max_classes=1), tmp_path)
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == ["ecg_000.png", "ecg_001.png"] and len(small) == 2


def test_render_grid_needs_positional_indices(tmp_path):
    g = grid_conditions(records_frame()).iloc[1:]
    with pytest.raises(ValueError, match="index"):
        render_grid(Explorer(FakePipe()), g, tmp_path)


def test_widget_shows_messages_and_results(explorer, tmp_path):
    pytest.importorskip("ipywidgets")
    from diffusets_core.apps.explorer_widget import ExplorerWidget

    w = ExplorerWidget(explorer, save_dir=tmp_path, default_statements=())
    assert w.statements.options and w.save_wfdb.disabled
    w.typed.value = ""
    assert w.generate() is None and "report" in w.message.value  # nothing picked or typed
    w.statements.value = (w.statements.options[0],)
    w.age.value = 400
    assert w.generate() is None and "age must be within" in w.message.value and "Traceback" not in w.message.value
    assert w.save_wfdb.disabled
    w.age.value, w.guidance.value = 50, 1.0
    w.typed.value = "Sinus rhythm"
    res = w.generate()
    assert res is not None and res.conditions.statements[-1] == "Sinus rhythm"
    assert not w.save_wfdb.disabled and "Measured:" in w.summary.value and "generated in" in w.message.value
    files = w.save(("wfdb",))
    assert {f.suffix for f in files} == {".hea", ".dat"} and "saved" in w.message.value


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (make browser installs it where apt-get works)")
def test_page_in_headless_chromium(page, tmp_path):
    out, grid, _ = page
    shot = Path(os.environ.get("DIFFUSETS_SCREENSHOT_DIR", tmp_path)) / "explorer_tiny.png"
    res = exercise_explorer((out / "index.html").as_uri(), shot, profile_dir=tmp_path / "profile")
    before, after = res["before"], res["after"]
    assert not res["errors"], res["errors"]
    assert before["loaded"] and after["loaded"]
    assert before["classes"] == list(dict.fromkeys(grid["class"]))
    assert after["src"] != before["src"] and after["index"] != before["index"]
    assert after["measurements"] != before["measurements"] and len(after["measurements"]) == len(MEASUREMENTS)
    assert after["report"] != before["report"]
    row = grid.iloc[int(after["index"])]
    assert row["class"] == before["classes"][-1] and row["sex"] == "M"
    assert not non_local(res["requests"]), non_local(res["requests"])
    assert any(u.endswith(after["src"]) for u in res["requests"])
    assert shot.stat().st_size > 10_000


def test_book_stage_carries_the_explorer(tmp_path):
    """The runner copies <run_dir>/explorer into the staged html_extra_path folder (and stages an empty one
    without it, so Sphinx never warns about a missing html_extra_path)."""
    import yaml

    from diffusets_core.book import EXTRA_DIR, stage_book
    from diffusets_core.config import REPO_ROOT, load_profile

    assert EXTRA_DIR in yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["sphinx"]["config"]["html_extra_path"]
    prof = load_profile("smoke")
    run = tmp_path / "run"
    run.mkdir()
    assert not any((stage_book(prof, run, []) / EXTRA_DIR).iterdir())
    (run / "explorer" / "img").mkdir(parents=True)
    (run / "explorer" / "index.html").write_text("<html></html>")
    (run / "explorer" / "img" / "ecg_000.png").write_bytes(b"png")
    stage = stage_book(prof, run, [])
    assert (stage / EXTRA_DIR / "explorer" / "index.html").is_file()
    assert (stage / EXTRA_DIR / "explorer" / "img" / "ecg_000.png").is_file()


# ------------------------------------------------------------------------------ a reference ECG (the digital twin)
@pytest.fixture(scope="module")
def twin_explorer(run) -> Explorer:
    """The tiny run's pipeline with an (untrained) twin U-Net in place of its own: the real reference path (the
    loader's checks, the VAE's encoding) at no training cost."""
    import torch

    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.models.film_unet import FiLMUNet1D, FiLMUNetConfig
    from diffusets_core.models.twin import ReferenceEncoderConfig, TwinUNet1D

    pipe = DiffuSETSPipeline.from_pretrained(run, device="cpu", dim=32)
    c = pipe.unet.cfg
    film = FiLMUNetConfig(
        in_channels=c.in_channels,
        text_dim=c.text_dim,
        cond_dim=c.cond_dim,
        base_channels=16,
        channel_mults=(1, 2),
        attn_levels=(1,),
        emb_dim=32,
        attn_heads=2,
        kernel_size=3,
        norm_groups=8,
    )
    ref = ReferenceEncoderConfig(in_channels=c.in_channels, emb_dim=32, channels=(16, 16))
    torch.manual_seed(0)
    pipe.unet = TwinUNet1D(FiLMUNet1D(film), ref).eval()
    return Explorer.from_run(run, pipe=pipe)


class RecordingPipe(FakePipe):
    """FakePipe that keeps the keywords of its last call."""

    def __call__(self, reports, **kw):
        self.last = kw
        return super().__call__(reports, **kw)


def test_reference_choices_list_the_test_records(run):
    from diffusets_core.data.store import SignalStore

    choices = Explorer.reference_choices(run)
    test = SignalStore(run).records("test")
    assert list(choices.columns) == ["record_id", "subject_id", "report", "age", "sex", "hr"]
    assert choices["record_id"].tolist() == test["record_id"].astype(str).tolist() and len(choices) > 1
    assert len(Explorer.reference_choices(SignalStore(run), limit=1)) == 1
    assert set(Explorer.reference_choices(run, split="val")["record_id"]).isdisjoint(choices["record_id"])


def test_a_reference_reaches_the_pipeline_and_is_named_and_shown(run):
    from diffusets_core.apps.explorer import ReferenceECG
    from diffusets_core.data.reference_ecg import reference_from_run

    pipe = RecordingPipe()
    ex = Explorer(pipe, run_dir=run)
    rid = Explorer.reference_choices(run)["record_id"].iloc[0]
    res = ex.explore("Sinus rhythm", 60, "F", 70, steps=3, reference=ReferenceECG.from_run(run, rid))
    np.testing.assert_array_equal(pipe.last["reference"], reference_from_run(run, rid))
    assert res.reference.record_id == rid and res.reference.report
    assert f"Reference ECG: reference {rid} | " in res.summary_html()
    assert f"{rid} as reference" in res.figure()._suptitle.get_text()
    assert res.reference_figure()._suptitle.get_text().startswith(f"reference {rid}")
    # an array as the pipeline takes it is passed unchanged and named as such
    arr = reference_from_run(run, rid)
    res = ex.explore("Sinus rhythm", 60, "F", 70, steps=3, reference=arr)
    assert pipe.last["reference"] is arr and "Reference ECG: reference array<" in res.summary_html()
    # without a reference the pipeline is called as before: no reference keyword at all
    res = ex.explore("Sinus rhythm", 60, "F", 70, steps=3)
    assert "reference" not in pipe.last and res.reference is None and res.reference_figure() is None
    assert "Reference" not in res.summary_html()


def test_bad_references_give_explorer_input_errors(run, explorer, twin_explorer, tmp_path):
    from diffusets_core.apps.explorer import ReferenceECG
    from tests.data_trees import write_wfdb

    rid = Explorer.reference_choices(run)["record_id"].iloc[0]
    ref = ReferenceECG.from_run(run, rid)
    with pytest.raises(ExplorerInputError, match="this model has no reference encoder"):
        explorer.explore("Sinus rhythm", 60, "F", 70, steps=2, compare=False, reference=ref)
    with pytest.raises(ExplorerInputError, match="12 leads"):
        twin_explorer.explore("Sinus rhythm", 60, "F", 70, steps=2, compare=False, reference=ref.signal[:8])
    write_wfdb(
        tmp_path,
        "eight",
        synthetic_ecg(70.0)[:, :8],
        500,
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2"],
        gain=200,
    )
    with pytest.raises(ExplorerInputError, match=r"eight\.hea.*V3") as info:
        twin_explorer.explore("Sinus rhythm", 60, "F", 70, steps=2, compare=False, reference=str(tmp_path / "eight"))
    assert "Traceback" not in str(info.value)
    with pytest.raises(ExplorerInputError, match=r"record 'nope' is not in run"):
        ReferenceECG.from_run(run, "nope")
    # the twin with a good reference: the pipeline read it
    res = twin_explorer.explore("Sinus rhythm", 60, "F", 70, steps=2, compare=False, reference=ref)
    assert res.output.conditions["reference"].tolist() == ["array[0]"] and res.reference is ref


def _widgets(w) -> list:
    return [w] + [d for c in getattr(w, "children", ()) for d in _widgets(c)]


def test_widget_offers_a_reference_only_for_a_twin(run, explorer, twin_explorer, tmp_path, monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    from diffusets_core.apps.explorer_widget import ExplorerWidget

    shown = []  # the titles of the figures the widget displays (no kernel here to capture them in its outputs)
    monkeypatch.setattr(IPython.display, "display", lambda fig: shown.append(fig._suptitle.get_text()))

    plain = ExplorerWidget(explorer, save_dir=tmp_path)
    assert plain.reference not in _widgets(plain.box) and plain.reference.layout.display == "none"
    assert plain.reference.options == (("None", None),)
    w = ExplorerWidget(twin_explorer, save_dir=tmp_path, n_references=3)
    assert w.reference in _widgets(w.box) and w.reference.layout.display != "none"
    choices = Explorer.reference_choices(run, limit=3)
    labels = [label for label, _ in w.reference.options]
    assert labels[0] == "None" and len(labels) == 1 + len(choices)
    assert labels[1].startswith(f"{choices['record_id'].iloc[0]} · {choices['report'].iloc[0].split('|')[0]}")
    w.typed.value, w.guidance.value = "Sinus rhythm", 1.0
    w.reference.value = choices["record_id"].iloc[1]
    res = w.generate()
    assert res is not None and res.reference.record_id == choices["record_id"].iloc[1]
    assert f"Reference ECG: reference {choices['record_id'].iloc[1]}" in w.summary.value
    rid = choices["record_id"].iloc[1]
    assert shown[0].startswith("generated") and f"{rid} as reference" in shown[0]
    assert shown[1].startswith(f"reference {rid} | ")  # the reference drawn beside the generated ECG
    shown.clear()
    w.reference.value = None
    res = w.generate()
    assert res is not None and res.reference is None and not any("reference" in t for t in shown)
