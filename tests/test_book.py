"""The book runner: papermill parameters, failing cells named, staging and TOC pruning."""

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from diffusets_core import book
from diffusets_core.config import Profile


def _nb(path: Path, cells):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = new_code_cell("run_dir = None\nprofile = None\nseed = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# A chapter"), p] + [new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture
def nbdir(tmp_path, monkeypatch):
    d = tmp_path / "notebooks"
    d.mkdir()
    monkeypatch.setattr(book, "NOTEBOOKS_DIR", d)
    return d


def test_parameters_are_injected(nbdir, tmp_path):
    _nb(
        nbdir / "01_data.ipynb",
        [
            "import json, pathlib\n"
            "pathlib.Path(run_dir, 'seen.json').write_text(json.dumps("
            "{'profile': profile, 'seed': seed, 'source': source, 'n': n}))"
        ],
    )
    prof = Profile(name="t", seed=5, notebooks=["01_data"])
    prof.data.n = 7
    res = book.run_book(prof, run_dir=tmp_path / "run", build=False)
    seen = json.loads((tmp_path / "run" / "seen.json").read_text())
    assert seen == {"profile": "t", "seed": 5, "source": "cohort", "n": 7}
    assert (tmp_path / "run" / "executed" / "01_data.ipynb").is_file()
    assert set(res["notebooks"]) == {"01_data"}


def test_failing_notebook_names_the_cell_and_stops(nbdir, tmp_path):
    _nb(nbdir / "01_data.ipynb", ["x = 1", "raise ZeroDivisionError('boom in chapter one')"])
    _nb(nbdir / "02_text.ipynb", ["open('ran.txt', 'w').write('should not run')"])
    prof = Profile(name="t", notebooks=["01_data", "02_text"])
    with pytest.raises(book.NotebookFailed) as exc:
        book.run_book(prof, run_dir=tmp_path / "run", build=False)
    msg = str(exc.value)
    assert "notebook 01_data failed at cell" in msg and "ZeroDivisionError" in msg and "boom in chapter one" in msg
    assert not (tmp_path / "run" / "executed" / "02_text.ipynb").exists()


def test_stage_prunes_toc_to_executed_chapters(tmp_path):
    run = tmp_path / "run"
    (run / "executed").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Data")]), run / "executed" / "01_data.ipynb")
    prof = Profile(name="t", notebooks=["01_data"])
    stage = book.stage_book(prof, run, [book.NotebookRun("01_data", 1.0, run / "executed" / "01_data.ipynb")])
    toc = yaml.safe_load((stage / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert "notebooks/01_data" in files and "notebooks/02_text" not in files
    info = (stage / "book" / "build_info.md").read_text()
    assert "`t`" in info and "01_data" in info


def test_profile_parameter_typo_is_refused_before_anything_runs(nbdir, tmp_path):
    _nb(nbdir / "01_data.ipynb", ["open('ran.txt', 'w').write('should not run')"])
    prof = Profile(name="t", notebooks=["01_data"], notebook_params={"01_data": {"sed": 3}})
    with pytest.raises(ValueError, match=r"notebook_params.01_data: \['sed'\] not declared"):
        book.run_book(prof, run_dir=tmp_path / "run", build=False)
    assert not (tmp_path / "run" / "executed").exists()


def test_repo_profiles_and_stage_parameters_match_the_notebooks():
    """Every parameter a shipped profile or STAGE_PARAMETERS sets is declared by the notebook it goes to."""
    from diffusets_core.config import REPO_ROOT, load_profile

    for path in sorted((REPO_ROOT / "profiles").glob("*.yaml")):
        prof = load_profile(path.stem)
        book.check_profile_parameters(prof, prof.notebooks)
        for nb in prof.notebooks:
            injected = set(book.notebook_parameters(prof, nb, Path("/tmp/run")))
            missing = injected - book.declared_parameters(book.NOTEBOOKS_DIR / f"{nb}.ipynb")
            assert not missing, f"{path.name}: {nb} is given {sorted(missing)} it does not declare"


def test_merge_parameter_cells_shows_the_values_used():
    defaults = (
        '# Parameters (papermill overrides these)\nrun_dir = "../runs/smoke"   # where it writes\n'
        'profile = "smoke"\nn = 240                     # records\nsteps = 20\n'
        'model = {"a": 1,\n         "b": 2}  # a dict\n'
    )
    injected = (
        '# Parameters\nrun_dir = "/home/u/repo/runs/cpu"\nprofile = "cpu"\nn = 3000\nmodel = {"a": 5}\nextra = 1\n'
    )
    paths = book.PathDisplay((("/home/u/repo/runs/cpu", "runs/cpu"),), "runs/cpu")
    merged = book.merge_parameter_cells(defaults, injected, paths)
    assert merged.splitlines() == [
        book.PARAMETERS_HEADER,
        'run_dir = "runs/cpu"        # where it writes',
        'profile = "cpu"',
        "n = 3000                    # records",
        "steps = 20",
        'model = {"a": 5}  # a dict',
        "extra = 1",
    ]
    ns: dict = {}
    exec(merged, ns)
    assert (ns["run_dir"], ns["n"], ns["steps"], ns["model"]) == ("runs/cpu", 3000, 20, {"a": 5})


def test_path_display_keeps_machine_paths_out(tmp_path):
    repo, home = tmp_path / "home" / "u" / "repo", tmp_path / "home" / "u"
    prof = Profile(name="cpu")
    inside = book.PathDisplay.for_run(prof, repo / "runs" / "cpu", repo_root=repo, home=home)
    assert inside.run_dir_shown == "runs/cpu"
    text = f"wrote {repo}/runs/cpu/eval/x.csv; notebooks in {repo}/notebooks; cache {home}/.cache; root {repo}"
    assert inside(text) == "wrote runs/cpu/eval/x.csv; notebooks in notebooks; cache ~/.cache; root ."
    outside = book.PathDisplay.for_run(prof, tmp_path / "scratch" / "r1", repo_root=repo, home=home)
    assert outside.run_dir_shown == "runs/cpu"
    assert outside(f"{tmp_path}/scratch/r1/unet/model.pt") == "runs/cpu/unet/model.pt"
    # whole paths only: a longer name or base64 image data that contains the text stay as they are
    for other in (f"{home}fs/y", f"iVBORw0KGgo{home}AAAA", f"x+{home}"):
        assert inside(other) == other
    assert inside(f"{repo}2/x") == "~/repo2/x"  # a sibling of the repository: only the home part is rewritten
    assert inside(f"the run is {repo}/runs/cpu.") == "the run is runs/cpu."


def test_render_for_book_keeps_images_byte_exact_and_names_the_cell_of_a_marker_typo(tmp_path):
    paths = book.PathDisplay((("/root", "~"),), "runs/cpu")
    png = "iVBORw0KGgo/root+AAAA/root"
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_code_cell("x = 1")])
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "/root/x"})]
    nbformat.write(nb, tmp_path / "a.ipynb")
    page = nbformat.read(
        book.render_for_book(tmp_path / "a.ipynb", tmp_path / "out" / "a.ipynb", profile="cpu", paths=paths),
        as_version=4,
    )
    assert page.cells[1].outputs[0]["data"] == {"image/png": png, "text/plain": "~/x"}
    nb.cells.append(new_markdown_cell("<!-- only-profile: cpu -->\nnever closed"))
    nbformat.write(nb, tmp_path / "b.ipynb")
    with pytest.raises(ValueError, match=r"b.ipynb, cell 2: an only-profile block is not closed"):
        book.render_for_book(tmp_path / "b.ipynb", tmp_path / "out" / "b.ipynb", profile="cpu", paths=paths)


def test_merge_parameter_cells_keeps_comments_after_non_ascii_values():
    merged = book.merge_parameter_cells('label = "µµµV"  # unit\nn = 1  # count', "n = 5")
    assert merged.splitlines()[1:] == ['label = "µµµV"  # unit', "n = 5  # count"]


def test_render_for_book_merges_parameters_drops_other_profiles_and_scrubs_paths(tmp_path):
    run = tmp_path / "run"
    nb = new_notebook()
    p = new_code_cell('run_dir = "../runs/smoke"\nprofile = "smoke"')
    p.metadata["tags"] = ["parameters"]
    inj = new_code_cell(f'# Parameters\nrun_dir = "{run}"\nprofile = "cpu"\n')
    inj.metadata["tags"] = ["injected-parameters"]
    only_smoke = new_markdown_cell("On the smoke profile the models are toys.")
    only_smoke.metadata["tags"] = ["only-profile-smoke"]
    only_cpu = new_markdown_cell("Measured on the cpu profile.")
    only_cpu.metadata["tags"] = ["only-profile-cpu", "only-profile-gpu"]
    out = new_code_cell("print(run_dir)")
    out.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{run}/eval/table.csv\n")]
    nb.cells = [new_markdown_cell("# A chapter"), p, inj, only_smoke, only_cpu, out]
    nb.metadata["papermill"] = {"parameters": {"run_dir": str(run)}, "output_path": f"{run}/executed/x.ipynb"}
    src = tmp_path / "x.ipynb"
    nbformat.write(nb, src)
    before = src.read_text()
    paths = book.PathDisplay.for_run(Profile(name="cpu"), run)
    dest = book.render_for_book(src, tmp_path / "stage" / "x.ipynb", profile="cpu", paths=paths)
    assert src.read_text() == before  # papermill's record is left alone
    page = nbformat.read(dest, as_version=4)
    assert [c.source.splitlines()[0] for c in page.cells] == [
        "# A chapter",
        book.PARAMETERS_HEADER,
        "Measured on the cpu profile.",
        "print(run_dir)",
    ]
    assert page.cells[1].metadata["tags"] == ["parameters", "hide-input"]
    assert 'run_dir = "runs/cpu"' in page.cells[1].source and 'profile = "cpu"' in page.cells[1].source
    assert page.cells[3].outputs[0]["text"] == "runs/cpu/eval/table.csv\n"
    assert str(run) not in dest.read_text()


def test_profile_only_text_appears_only_on_that_profile():
    text = (
        "Shared.\n<!-- only-profile: smoke -->\nToy models: the numbers mean nothing.\n<!-- /only-profile -->\n"
        "Also shared.\n<!-- only-profile: cpu, gpu -->\nMeasured on the laptop profile.\n<!-- /only-profile -->\n"
    )
    assert book.filter_profile_text(text, "smoke") == "Shared.\nToy models: the numbers mean nothing.\nAlso shared.\n"
    assert book.filter_profile_text(text, "gpu") == "Shared.\nAlso shared.\nMeasured on the laptop profile.\n"
    assert book.filter_profile_text(text, "paper") == "Shared.\nAlso shared.\n"
    for bad in (
        "<!-- only-profile: cpu -->\nx\n",
        "x\n<!-- /only-profile -->\n",
        "<!-- only-profile: a -->\n<!-- only-profile: b -->\n<!-- /only-profile -->\n",
    ):
        with pytest.raises(ValueError):
            book.filter_profile_text(bad, "cpu")


def test_stage_filters_profile_text_of_book_pages():
    """The shipped pages stage for every profile, and the smoke-only note reaches only the smoke build."""
    from diffusets_core.config import REPO_ROOT

    intro = (REPO_ROOT / "book" / "intro.md").read_text()
    assert "built on the `smoke` profile" in book.filter_profile_text(intro, "smoke")
    assert "built on the `smoke` profile" not in book.filter_profile_text(intro, "cpu")
    for page in (REPO_ROOT / "book").glob("*.md"):
        for prof in ("smoke", "cpu", "paper"):
            assert "only-profile" not in book.filter_profile_text(page.read_text(), prof)
