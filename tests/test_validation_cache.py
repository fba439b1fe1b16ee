"""`dlpipe validate` replays the remembered result of an unchanged spec, exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlpipe.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"


def validate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DLPIPE_CACHE_DIR", str(folder))
    return folder / "validate"


@pytest.fixture
def broken(tmp_path) -> Path:
    text = (SPECS / "tabular-classification.yaml").read_text(encoding="utf-8")
    text = text.replace("epochs:", "epoch:", 1).replace("learning_rate: 1.0e-3", "learning_rate: -1.0", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_replayed_result_is_the_checked_one(cache, broken, fmt):
    args = [str(SPECS / "image-classification.yaml"), str(broken), "--format", fmt]
    first = validate(*args)
    assert first[0] == 1 and len(list(cache.glob("*.json"))) == 2
    assert validate(*args) == first
    assert validate(*args, "--no-cache") == first


def test_a_changed_file_is_checked_again(cache, broken):
    code, _, before = validate(str(broken))
    assert code == 1 and "epoch" in before
    broken.write_text(broken.read_text(encoding="utf-8").replace("epoch:", "epochs:", 1), encoding="utf-8")
    code, _, after = validate(str(broken))
    assert code == 1 and "epoch:" not in after and "learning_rate" in after
    assert len(list(cache.glob("*.json"))) == 2


def test_overrides_are_part_of_the_key(cache):
    spec = str(SPECS / "tabular-classification.yaml")
    assert validate(spec)[0] == 0
    code, _, err = validate(spec, "--set", "training.epochs=-3")
    assert code == 1 and "--set:1:" in err and "training.epochs" in err
    assert validate(spec)[0] == 0


def test_no_cache_stores_nothing(cache):
    assert validate(str(SPECS / "tabular-classification.yaml"), "--no-cache")[0] == 0
    assert not cache.exists()


def test_a_damaged_entry_is_a_miss_and_is_rewritten(cache):
    spec = str(SPECS / "tabular-classification.yaml")
    validate(spec)
    (entry,) = cache.glob("*.json")
    entry.write_text("[{not json", encoding="utf-8")
    assert validate(spec)[0] == 0
    rewritten = json.loads(entry.read_text(encoding="utf-8"))
    # A builtin source reads no file; the backend's package is looked up (spec/backends.py).
    assert rewritten["problems"] == [] and [kind for kind, *_ in rewritten["observed"]] == ["module"]


def test_an_unusable_cache_folder_never_fails_validation(tmp_path, monkeypatch, broken):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("DLPIPE_CACHE_DIR", str(blocker / "cache"))  # mkdir fails: NotADirectoryError
    assert validate(str(SPECS / "tabular-classification.yaml"))[0] == 0
    code, _, err = validate(str(broken))
    assert code == 1 and err.count("\n") == 2


def test_a_replay_imports_no_pydantic(tmp_path):
    spec = str(SPECS / "image-classification.yaml")
    probe = ("import sys; from dlpipe.cli import main; sys.argv = ['dlpipe', 'validate', %r]\n"
             "try: main()\n"
             "except SystemExit as e: print('pydantic' in sys.modules, e.code)") % spec
    env = {**os.environ, "DLPIPE_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
            for _ in range(2)]
    assert [run.stdout.split("\n")[-2] for run in runs] == ["True 0", "False 0"]


def test_the_key_covers_every_module_validation_runs(tmp_path):
    """A replayed answer is only as fresh as the code in the key: every dlpipe module that plain
    validation imports must be among the fingerprinted files (a task's honoured keys, say)."""
    import json as _json
    import subprocess
    import sys

    from dlpipe.validation_cache import fingerprinted_files

    code = ("import json, sys; from pathlib import Path; from dlpipe.spec import load_document; "
            "[load_document(p) for p in sorted(Path('specs').glob('*.yaml'))]; "
            "import dlpipe.spec.datacheck; "  # the cheap look at the data files
            "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
            "if n.startswith('dlpipe') and getattr(m, '__file__', None))))")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    loaded = {Path(f).resolve() for f in _json.loads(done.stdout)}
    covered = {f.resolve() for f in fingerprinted_files()}
    assert loaded - covered == set(), f"validation imports modules the cache key ignores: {sorted(loaded - covered)}"
