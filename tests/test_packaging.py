"""Packaging: what pyproject.toml promises (lower bounds, the caps that are real, an SPDX
license, every package in the wheel), and the wheel itself installed into a fresh virtual
environment without extras, next to the newest numpy, pandas and scikit-learn, running a
template."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CAPPED = {"tensorflow", "keras", "protobuf", "pydantic"}
"""The core dependencies with an upper bound, each with its reason in pyproject.toml."""


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()


def test_core_dependencies_have_lower_bounds_and_only_real_caps():
    dependencies = PROJECT["project"]["dependencies"]
    for requirement in dependencies:
        name = requirement_name(requirement)
        assert ">=" in requirement, f"{requirement}: a lower bound (the oldest version run here)"
        assert ("<" in requirement.replace("<=", "")) == (name in CAPPED), \
            f"{requirement}: only {', '.join(sorted(CAPPED))} are capped, each with its reason"
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in CAPPED:  # the reason is the comment just above the line
        assert re.search(rf"\n  # [^\n]+\n(  #[^\n]*\n)*  \"{name}[>=<]", text, re.I), name


def test_license_is_an_spdx_expression_and_the_extras_include_all():
    assert PROJECT["project"]["license"] == "Apache-2.0"
    assert any(r.startswith("setuptools>=77") for r in PROJECT["build-system"]["requires"])
    extras = PROJECT["project"]["optional-dependencies"]
    inside_all = set(re.findall(r"[a-z]+", extras["all"][0].removeprefix("dlpipe")))
    # gpu, jax and torch are choices of a machine, bench serves benchmarks/ alone: not in all.
    assert inside_all == set(extras) - {"all", "test", "gpu", "jax", "torch", "bench"}
    assert "dlpipe[all]" in extras["test"]


def test_every_package_of_the_source_tree_is_in_the_wheel():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "dlpipe").rglob("__init__.py")
             if "__pycache__" not in path.parts}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert {"dlpipe.pipelines", "dlpipe.specs"} <= listed
    assert "*.json" in PROJECT["tool"]["setuptools"]["package-data"]["dlpipe.specs"]  # the schema


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_without_extras_and_runs_a_template(tmp_path):
    """In CI (or with DLPIPE_TEST_INSTALL=1): build the wheel, make a venv with nothing
    in it, install the newest numpy, pandas and scikit-learn, then the wheel (no extras):
    no deprecation warning, those three keep their versions, `dlpipe init` writes the
    template and its schema, and `dlpipe run` of the tabular template completes."""
    from _system import in_ci, require

    require(in_ci() or os.environ.get("DLPIPE_TEST_INSTALL"),
            "the fresh-venv install test is not run outside CI (it downloads TensorFlow, ~600 MB)",
            "DLPIPE_TEST_INSTALL=1 make test")

    def run(*command: str, cwd: Path = tmp_path) -> str:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheel"), "-v", str(ROOT))
    assert "deprecat" not in built.lower(), [line for line in built.splitlines() if "eprecat" in line]
    wheel = next((tmp_path / "wheel").glob("dlpipe-*.whl"))
    run(sys.executable, "-m", "venv", str(tmp_path / "venv"))
    python = str(tmp_path / "venv" / "bin" / "python")
    run(python, "-m", "pip", "install", "--quiet", "numpy", "pandas", "scikit-learn")
    versions = ("import json, numpy, pandas, sklearn; print(json.dumps("
                "[numpy.__version__, pandas.__version__, sklearn.__version__]))")
    before = json.loads(run(python, "-c", versions).strip().splitlines()[-1])
    installed = run(python, "-m", "pip", "install", str(wheel))
    assert "deprecat" not in installed.lower(), [line for line in installed.splitlines() if "eprecat" in line]
    assert json.loads(run(python, "-c", versions).strip().splitlines()[-1]) == before
    dlpipe = str(tmp_path / "venv" / "bin" / "dlpipe")
    run(dlpipe, "init", "tabular-classification", "mine.yaml")
    assert (tmp_path / "dlpipe-spec.schema.json").is_file()  # shipped as package data
    run(dlpipe, "run", "mine.yaml", "--set", "training.epochs=5", "--out", "run")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"] >= 0.9
