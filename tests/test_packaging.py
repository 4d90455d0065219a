"""What ships and where data is found: the packages a Ray Client head receives are the ones
pyproject.toml installs, every top-level package of the product is among them, and the Nova presets
read their file from any working directory (or say in one line where it is expected)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

import search.driver
import trainables.data.presets as presets
from search.cluster.client import client_runtime_env, project_packages
from search.run import main

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "benchmarks", "examples", "docs"}  # never imported by the product


def pyproject_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*").rstrip(".") for pattern in include}


def test_the_head_gets_pyprojects_packages_and_every_product_package_is_listed():
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_SHIPPED
    assert folders <= pyproject_packages(), "a top-level package is missing from pyproject.toml"
    assert set(project_packages()) == pyproject_packages()  # the install is pyproject's
    shipped = [Path(p).name for p in client_runtime_env()["py_modules"]]
    assert sorted(shipped) == sorted(pyproject_packages())


def test_what_the_driver_imports_is_shipped():
    """The driver, the CLI, the report and the mirror in a fresh process: every project package
    they import is in the runtime env a Ray Client head receives."""
    code = (
        "import sys, search.run, search.driver, reports, mirrors, record;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    imported = set(out.stdout.split()) & ours
    assert imported and imported <= set(project_packages())


def test_nova_reads_its_file_from_any_directory(tmp_path, monkeypatch):
    if not Path(presets.NOVA.path).is_file():
        pytest.skip(f"the shared Nova data is not at {presets.NOVA.path}")
    monkeypatch.chdir(tmp_path)
    data = presets.build_dataset("nova")
    assert len(data.train.y) + len(data.val.y) + len(data.test.y) == 1829


def test_a_missing_preset_file_is_one_line_saying_where_and_how(tmp_path, monkeypatch, capsys):
    def tripwire(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    moved = replace(presets.PRESETS["nova"], base=replace(presets.NOVA, path=str(tmp_path / "x")))
    monkeypatch.setitem(presets.PRESETS, "nova", moved)
    monkeypatch.setattr(search.driver, "connect", tripwire)
    monkeypatch.chdir(tmp_path)
    assert main(["data=nova", "preflight=only", "mlflow.enabled=false"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: data=nova: its file is expected at {tmp_path / 'x'} ({presets.NOVA_PATH} from "
        f"the project folder {presets.PROJECT_ROOT}); pass data.path=<the file> to read it from "
        "elsewhere"
    )
