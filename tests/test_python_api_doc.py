"""docs/python-api.md: its Python cells, run in order in one fresh interpreter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "python-api.md"


def cells() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_page_has_its_cells():
    assert len(cells()) >= 6 and all(cell.strip() for cell in cells())


@pytest.mark.slow
def test_the_cells_run_in_order(tmp_path):
    """In a folder holding a copy of specs/, as the page's "from the repository's root" asks."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    script = "\n".join(cells()) + "\nprint('probabilities' in dlpipe.predict(run, rows)[0], (run.path / 'curve.png').is_file())\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "True True"
    assert "--set:1:17: training.epochs: expected a value > 0, got 0" in done.stdout
