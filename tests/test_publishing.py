"""Publishing and reaching the book from outside: the Pages workflow, the repository address kept in one place, the
chapters' install cell, chapters opened alone, and default parameters that train what the book shows."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from diffusets_core import book
from diffusets_core.apps import prerequisites
from diffusets_core.config import REPO_ROOT, load_profile
from diffusets_core.publish import (
    RepositorySettings,
    colab_url,
    notebook_setup_problems,
    repository_settings,
    setup_cell_source,
    sync_setup_cells,
)

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "book.yml"
NOTEBOOKS = REPO_ROOT / "notebooks"


def readme_commands() -> list[str]:
    """The commands of the README's first code block (its first lines: set up + build, set up + test)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index(block.group(0)) < 200, "the README must open with its two commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def workflow() -> dict:
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    return wf


def runs(job: dict) -> list[str]:
    return [s["run"].strip() for s in job["steps"] if "run" in s]


def uses(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


# ------------------------------------------------------------------------------------------------ the workflow
def test_workflow_publishes_the_cpu_book_with_the_readme_command():
    wf, (build_cmd, _) = workflow(), readme_commands()
    assert build_cmd == "make book"
    assert set(wf["on"]) >= {"push", "pull_request"} and wf["on"]["push"]["branches"] == ["main"]
    build = wf["jobs"]["build"]
    assert runs(build) == [build_cmd], "the published book is built by the README's command (cpu profile)"
    assert "PROFILE" not in str(build.get("env", {})) and "PROFILE" not in str(wf.get("env", {}))
    (upload,) = uses(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    assert "pull_request" in build["if"], "pull requests never publish"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build" and uses(deploy, "actions/deploy-pages")
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"


def test_workflow_checks_pull_requests_with_the_smoke_book():
    check = workflow()["jobs"]["check"]
    assert check["if"] == "github.event_name == 'pull_request'"
    assert runs(check) == [readme_commands()[0] + " PROFILE=smoke"]
    assert not uses(check, "actions/deploy-pages") and not uses(check, "actions/upload-pages-artifact")


def test_the_book_lands_where_the_workflow_uploads_it():
    """`make book` -> `diffusets book` -> build_html(stage, REPO_ROOT): the HTML is REPO_ROOT/_build/html."""
    assert book.build_html.__doc__ and "out_dir/_build/html" in book.build_html.__doc__
    make = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^book: .*\n\t\$\(BIN\)/diffusets book --profile \$\(PROFILE\)$", make, re.M)
    assert re.search(r"^PROFILE \?= cpu$", make, re.M)


# ------------------------------------------------------------------------------- one repository address
def test_config_turns_on_repository_and_launch_buttons():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    launch = config["launch_buttons"]
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert (REPO_ROOT / "environment.yml").is_file(), "Binder builds environment.yml"
    s = repository_settings()
    assert s.url == config["repository"]["url"] and s.github_path.count("/") == 1


def test_every_copy_of_the_repository_address_agrees():
    url = repository_settings().url
    assert notebook_setup_problems(NOTEBOOKS, url) == []
    readme = (REPO_ROOT / "README.md").read_text()
    github = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme))
    ours = {u for u in github if "DiffuSETS" not in u}  # the authors' repositories are cited too
    assert ours == {url}, f"README names {ours}; _config.yml says {url}"


def test_colab_url_is_the_launch_buttons_form():
    s = RepositorySettings(url="https://github.com/me/fork", branch="dev")
    assert colab_url("notebooks/05_generation.ipynb", s) == (
        "https://colab.research.google.com/github/me/fork/blob/dev/notebooks/05_generation.ipynb"
    )
    with pytest.raises(ValueError, match="repository.url"):
        _ = RepositorySettings(url="https://gitlab.com/me/fork").github_path


def test_sync_rewrites_a_changed_address_and_inserts_a_missing_cell(tmp_path):
    for name in ("05_generation.ipynb", "00_methods.ipynb"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    nb = nbformat.read(tmp_path / "00_methods.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "setup" not in c.metadata.get("tags", [])]
    nbformat.write(nb, tmp_path / "00_methods.ipynb")
    other = "https://github.com/someone/fork"
    assert len(notebook_setup_problems(tmp_path, other)) == 2
    assert len(sync_setup_cells(tmp_path, other)) == 2
    assert notebook_setup_problems(tmp_path, other) == [] and sync_setup_cells(tmp_path, other) == []
    first = next(c for c in nbformat.read(tmp_path / "00_methods.ipynb", 4).cells if c.cell_type == "code")
    assert other in first.source and first.metadata["tags"] == ["setup", "remove-cell"]


def test_setup_cell_is_a_no_op_where_the_package_is_installed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(setup_cell_source("https://github.com/x/y"), "setup", "exec"), {})
    assert calls == [] and Path.cwd() == tmp_path


# ------------------------------------------------------------------------------------ the runtime install
def _runtime_install():
    spec = importlib.util.spec_from_file_location("runtime_install", REPO_ROOT / "tools" / "runtime_install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runtime_install_keeps_an_installed_torch():
    ri = _runtime_install()
    requires = ["torch==2.13.0", "numpy>=1.26", "Torch_Audio>=2", 'pytest>=8; extra == "test"', "wfdb>=4.1"]
    assert ri.requirement_name("Torch_Audio>=2") == "torch-audio"
    assert ri.runtime_requirements(requires) == ["numpy>=1.26", "Torch_Audio>=2", "wfdb>=4.1"]
    plain = ri.install_commands("/c", None)
    assert plain == [[sys.executable, "-m", "pip", "install", "-q", "-e", "/c"]]
    kept = ri.install_commands("/c", "2.5.1+cu121", requires)
    assert kept[0][-3:] == ["--no-deps", "-e", "/c"] and "torch==2.13.0" not in kept[1]
    assert kept[1][-3:] == ["numpy>=1.26", "Torch_Audio>=2", "wfdb>=4.1"]


@pytest.mark.slow
def test_setup_cell_installs_into_a_clean_venv_keeping_its_torch(tmp_path):
    """The Colab route as far as this machine allows: a new virtual environment that has only a PyTorch (as a
    Colab runtime has its own), the setup cell run there with ``DIFFUSETS_REPO`` set to a local clone of this
    repository (committed files only). Installs every dependency from the package index: minutes."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    torch_record = next((venv / "lib").glob("python*/site-packages/torch-*.dist-info/RECORD"))
    before = torch_record.stat().st_mtime_ns
    work = tmp_path / "content"
    work.mkdir()
    script = work / "setup_cell.py"
    script.write_text(setup_cell_source(repository_settings().url) + "\nprint('CWD', os.getcwd())\n")
    env = {**os.environ, "DIFFUSETS_REPO": str(REPO_ROOT)}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([py, str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert f"CWD {work / 'diffusets-book' / 'notebooks'}" in out.stdout
    assert "beside the runtime's torch 2.13.0" in out.stdout
    assert torch_record.stat().st_mtime_ns == before, "the runtime's torch was reinstalled"
    check = "import diffusets_core, wfdb, papermill, torch; from diffusets_core.publish import repository_settings"
    subprocess.run([py, "-c", check], cwd=tmp_path, env=env, check=True)
    again = subprocess.run([py, str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"CWD {work}" in again.stdout, "a second run must do nothing"


# ------------------------------------------------------------------------------- chapters opened alone
def test_prerequisites_name_what_is_missing_and_the_command(tmp_path):
    assert prerequisites.missing_chapters(tmp_path, "01_data") == []
    assert prerequisites.missing_chapters(tmp_path, "03_vae") == ["01_data"]
    assert prerequisites.missing_chapters(tmp_path, "05_generation") == ["01_data", "02_text", "03_vae", "04_diffusion"]
    with pytest.raises(KeyError, match="unknown chapter"):
        prerequisites.missing_chapters(tmp_path, "11_nothing")
    with pytest.raises(FileNotFoundError, match=r"--only 01_data 02_text 03_vae 04_diffusion --no-build"):
        prerequisites.ensure_prerequisites(tmp_path, "smoke", "09_gallery")
    for output in prerequisites.CHAPTER_OUTPUTS.values():
        output(tmp_path).parent.mkdir(parents=True, exist_ok=True)
        output(tmp_path).write_bytes(b"")
    assert prerequisites.ensure_prerequisites(tmp_path, "smoke", "09_gallery") == []


def test_prerequisites_run_the_missing_chapters_when_asked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(prerequisites.subprocess, "run", lambda cmd, check: calls.append(cmd))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.csv").write_text("")
    assert prerequisites.ensure_prerequisites(tmp_path, "cpu", "04_diffusion", run_missing=True) == [
        "02_text",
        "03_vae",
    ]
    (cmd,) = calls
    assert cmd[1:] == [
        "book",
        "--profile",
        "cpu",
        "--run-dir",
        str(tmp_path),
        "--only",
        "02_text",
        "03_vae",
        "--no-build",
    ]
    monkeypatch.setitem(sys.modules, "google.colab", object())  # Colab: every notebook starts on a fresh machine
    assert prerequisites.ensure_prerequisites(tmp_path, "cpu", "03_vae") == []
    assert prerequisites.ensure_prerequisites(tmp_path, "cpu", "05_generation") == ["02_text", "03_vae", "04_diffusion"]


def test_every_chapter_that_reads_earlier_chapters_checks_them():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
        if path.stem in prerequisites.CHAPTER_NEEDS:
            assert f'ensure_prerequisites(run_dir, profile, "{path.stem}", run_missing_chapters)' in code, path.name
        assert 'device="cpu"' not in code, f"{path.name}: the device is the parameters cell's `device`"


# ------------------------------------------------------------------------- "Run all" trains the book's model
#: Parameters the book sets differently from a notebook run on purpose, with the reason.
BOOK_ONLY = {("10_explorer", "interactive"): "the built book has no kernel: it shows the pre-rendered explorer"}


@pytest.mark.parametrize("notebook", load_profile("smoke").notebooks)
def test_default_parameters_are_the_smoke_profile(notebook):
    """A reader who runs a chapter in Jupyter trains and evaluates what the smoke book shows: every value the
    smoke profile injects equals the parameters cell's default."""
    prof = load_profile("smoke")
    namespace: dict = {}
    exec(book._parameters_cell(NOTEBOOKS / f"{notebook}.ipynb"), namespace)
    injected = book.notebook_parameters(prof, notebook, Path("../runs/smoke"))
    drift = {
        key: (namespace.get(key, "<not declared>"), value)
        for key, value in injected.items()
        if (notebook, key) not in BOOK_ONLY
        and namespace.get(key, "<not declared>") != (str(value) if key == "run_dir" else value)
    }
    assert drift == {}, f"{notebook}: parameter -> (notebook default, profiles/smoke.yaml): {drift}"


@pytest.mark.parametrize("name", ["cpu", "gpu", "paper"])
def test_other_profiles_never_inherit_a_smoke_setting(name):
    """The chapters' defaults are the smoke profile's, so a setting the smoke profile injects and another profile
    leaves to the default would silently give that profile the smoke value (e.g. the text-only ablation or a smaller
    explorer grid): every such key must be set by the profile itself."""
    smoke, prof = load_profile("smoke"), load_profile(name)
    inherited = {
        (nb, key)
        for nb in prof.notebooks
        for key in book.notebook_parameters(smoke, nb, Path("r"))
        if key not in book.notebook_parameters(prof, nb, Path("r")) and (nb, key) not in BOOK_ONLY
    }
    assert inherited == set(), f"profiles/{name}.yaml takes these from the smoke defaults: {sorted(inherited)}"
