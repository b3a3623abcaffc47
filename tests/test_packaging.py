"""The project installs as a package: what pyproject.toml declares is what the code needs and what make installs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_txt_installs_every_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {r for r in declared if not r.startswith(project["name"])}  # the dev extra names the others
    listed = {line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert {_name(r): r for r in declared} == {_name(r): r for r in listed}


def test_constraints_txt_pins_every_requirement_within_its_range():
    """What `make` installs is pinned; a requirement added without a pin, or a pin outside the range that
    requirements.txt asks for, fails here rather than on a fresh machine."""
    from packaging.requirements import Requirement

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    pins = {_name(name): version for name, version in pins.items()}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            assert _name(requirement.name) in pins, f"{requirement.name} is not pinned in constraints.txt"
            assert requirement.specifier.contains(pins[_name(requirement.name)]), line


def test_grid_files_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "grids/*.yaml" in config["gridsearch"]
    grids = sorted(p.name for p in (ROOT / "gridsearch" / "grids").glob("*.yaml"))
    assert grids == ["anchored.yaml", "paper.yaml", "plan.yaml", "retrained.yaml", "small.yaml"]


@pytest.mark.parametrize("module,command", [("mdp_prune", "run"), ("gridsearch", "compare")])
def test_the_project_imports_from_any_folder(tmp_path, module, command):
    """Installed (make's `pip install -e .`), the commands work outside the repository, with no sys.path help."""
    out = subprocess.run([sys.executable, "-m", module, command, "--help"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "--out" in out.stdout


OUTSIDE_DESIGN_DOC = "DESIGN" + ".md"  # spelt in two parts so that this file does not cite it


def test_docs_link_only_to_files_in_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    documents = [ROOT / f for f in tracked if f.endswith((".md", ".py", ".ipynb", ".toml", ".yaml"))]
    if not documents:
        pytest.skip("not a git checkout")
    for doc in documents:
        text = doc.read_text()
        assert OUTSIDE_DESIGN_DOC not in text, f"{doc} cites a design document outside the repository"
        if doc.suffix == ".md":
            for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
                assert (doc.parent / target).exists(), f"{doc}: broken link {target}"


def test_the_readme_names_every_built_in_grid():
    """The README's GRID row is written by hand: a grid added to gridsearch/grids must be added there too."""
    from gridsearch.grids import builtin_grids

    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if "variables `GRID`" in line)
    missing = [name for name in builtin_grids() if f"`{name}`" not in row]
    assert not missing, f"README's GRID row does not name the grids {missing}"
