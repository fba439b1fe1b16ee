"""The bad-input corpus (tests/fixtures/bad): every case prints exactly its expected lines,
exits 1, and shows no traceback."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dlpipe.cli import main

BAD = Path(__file__).resolve().parent / "fixtures" / "bad"
EXPECTED: dict[str, list[str]] = yaml.safe_load((BAD / "expected.yaml").read_text(encoding="utf-8"))


def invoke(case: str, tmp_path: Path) -> tuple[int, list[str], str]:
    """Run one case from its own folder, as a user would: (exit code, stderr lines, stderr)."""
    folder, name = case.split("/")
    args = ["validate", name] if folder == "spec" else ["run", name, "--out", str(tmp_path / "run")]
    with contextlib.chdir(BAD / folder):
        result = CliRunner().invoke(main, args)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[dlpipe]")]
    lines = [line.replace(str(BAD / folder), "{dir}") for line in lines]
    return result.exit_code, lines, result.stderr


def test_every_case_has_an_expectation_and_the_corpus_is_large():
    on_disk = {f"{p.parent.name}/{p.name}" for p in BAD.glob("*/*.yaml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 60


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_gives_its_located_one_line_error(case, tmp_path):
    code, lines, stderr = invoke(case, tmp_path)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert lines == EXPECTED[case]
    if case.startswith("spec/"):  # the second time the result is replayed from the cache
        assert invoke(case, tmp_path)[:2] == (code, lines)


if __name__ == "__main__":  # python tests/test_bad_inputs.py --print spec/NAME.yaml
    import tempfile

    for case in sys.argv[2:]:
        code, lines, _ = invoke(case, Path(tempfile.mkdtemp()))
        print(f"{case}: exit {code}")
        print("\n".join(f"  {line}" for line in lines))
