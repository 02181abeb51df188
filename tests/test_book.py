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
    _nb(nbdir / "01_data.ipynb", ["import json, pathlib\n"
                                  "pathlib.Path(run_dir, 'seen.json').write_text(json.dumps("
                                  "{'profile': profile, 'seed': seed, 'source': source, 'n': n}))"])
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
