"""The `dlpipe` command (dlpipe/cli.py): output, exit codes 0/1/2, no tracebacks, and no
TensorFlow on the way to `dlpipe validate`. Most tests call Click in-process; the few that
need a real process (exit codes as a shell sees them, what gets imported) run one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from dlpipe.cli import main
from dlpipe.errors import DlpipeError
from dlpipe.spec import check_files

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "specs").glob("*.yaml"))
MANY_PROBLEMS = Path(__file__).resolve().parent / "fixtures" / "specs" / "many-problems.yaml"


def dlpipe(*args: str) -> Result:
    """Run the command in-process; a Python exception other than an exit is a bug."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def dlpipe_process(*args: str) -> subprocess.CompletedProcess:
    """Run the installed `dlpipe` executable, as a shell or CI would."""
    executable = Path(sys.executable).with_name("dlpipe")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "dlpipe.cli"]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def broken_copy(tmp_path: Path, name: str = "broken.yaml") -> Path:
    """The image template with a negative epoch count (one problem): -40."""
    text = (ROOT / "specs" / "image-classification.yaml").read_text(encoding="utf-8")
    target = tmp_path / name
    target.write_text(text.replace("  epochs: ", "  epochs: -", 1), encoding="utf-8")
    return target


# validate ---------------------------------------------------------------------------------


def test_validate_passes_every_template_with_one_line_each():
    result = dlpipe("validate", *map(str, TEMPLATES))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{t}: valid" for t in TEMPLATES]
    assert result.stderr == ""


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path):
    result = dlpipe("validate", str(MANY_PROBLEMS))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [str(p) for p in check_files([MANY_PROBLEMS])]
    assert len(result.stderr.splitlines()) == 6
    assert all(line.startswith(f"{MANY_PROBLEMS}:") for line in result.stderr.splitlines())


def test_validate_reports_every_file_and_names_the_valid_ones(tmp_path):
    broken = broken_copy(tmp_path)
    result = dlpipe("validate", str(broken), str(TEMPLATES[0]), str(MANY_PROBLEMS))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{TEMPLATES[0]}: valid"]
    errors = result.stderr.splitlines()
    assert [e.split(":")[0] for e in errors] == [str(broken)] + [str(MANY_PROBLEMS)] * 6
    assert errors[0].endswith(": training.epochs: expected a value > 0, got -40")


def test_validate_json_is_a_list_of_located_problems(tmp_path):
    broken = broken_copy(tmp_path)
    result = dlpipe("validate", "--format", "json", str(broken), str(TEMPLATES[0]))
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    text = broken.read_text(encoding="utf-8")
    row = text[: text.index("epochs: -")].count("\n") + 1
    assert found == [{"file": str(broken), "line": row, "column": 11, "path": "training.epochs",
                      "message": "expected a value > 0, got -40"}]
    assert result.stderr == ""


def test_validate_json_of_valid_files_is_an_empty_list():
    result = dlpipe("validate", "--format", "json", *map(str, TEMPLATES))
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


def test_validate_applies_set_overrides_to_every_file():
    ok = dlpipe("validate", str(TEMPLATES[0]), "--set", "training.epochs=1", "--set", "seed=7")
    assert (ok.exit_code, ok.stdout.splitlines()) == (0, [f"{TEMPLATES[0]}: valid"])
    bad = dlpipe("validate", str(TEMPLATES[0]), "--set", "training.epoch=1")
    assert bad.exit_code == 1
    assert bad.stderr.splitlines() == [
        "--set:1:1: training.epoch: unknown key 'epoch'; did you mean 'epochs'?"]
    assert bad.stdout == ""  # a file that fails only through an override is not "valid"


def test_validate_a_missing_file_is_a_problem_not_a_crash(tmp_path):
    result = dlpipe("validate", str(tmp_path / "nope.yaml"))
    assert (result.exit_code, result.stderr) == (1, f"{tmp_path / 'nope.yaml'}:1:1: no such file\n")


def test_validate_and_run_refuse_a_spec_that_is_not_a_regular_file_or_too_large(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: demo\n" + " " * (1 << 20), encoding="utf-8")
    result = dlpipe("validate", "--no-cache", "/dev/zero", str(big))
    assert (result.exit_code, result.stderr.splitlines()) == (1, [
        "/dev/zero:1:1: not a regular file (a device, pipe or socket); a spec is a YAML file",
        f"{big}:1:1: the file is larger than 1 MiB; a spec is far smaller"])
    result = dlpipe("run", "/dev/zero", "--out", str(tmp_path / "run"))
    assert (result.exit_code, result.stderr) == (
        1, "/dev/zero:1:1: not a regular file (a device, pipe or socket); a spec is a YAML file\n")
    assert not (tmp_path / "run").exists()


def test_validate_malformed_yaml_is_one_line(tmp_path):
    spec = tmp_path / "tabs.yaml"
    spec.write_text("name: demo\nmodel:\n\ttype: mlp\n", encoding="utf-8")
    result = dlpipe("validate", str(spec))
    assert (result.exit_code, result.stderr) == (
        1, f"{spec}:3:1: invalid YAML: a tab character cannot indent YAML; use spaces\n")


def test_validate_exit_codes_and_streams_in_a_real_process(tmp_path):
    good = dlpipe_process("validate", *map(str, TEMPLATES))
    assert (good.returncode, good.stderr) == (0, "")
    assert good.stdout.splitlines() == [f"{t}: valid" for t in TEMPLATES]
    bad = dlpipe_process("validate", str(broken_copy(tmp_path)), str(TEMPLATES[0]))
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [f"{TEMPLATES[0]}: valid"]
    assert len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


def test_validate_ends_its_process_quickly_with_every_line_printed(tmp_path):
    """`dlpipe validate` skips the interpreter's teardown (os._exit: no atexit handler runs),
    after flushing what it printed, even into pipes; other commands end normally."""
    probe = ("import atexit, sys; atexit.register(lambda: print('torn down', file=sys.stderr)); "
             "sys.argv = ['dlpipe', *sys.argv[1:]]; from dlpipe.cli import run; run()")
    broken = str(broken_copy(tmp_path))
    checked = subprocess.run([sys.executable, "-c", probe, "validate", "--format", "json", "--no-cache",
                              broken, *map(str, TEMPLATES)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1 and checked.stderr == ""
    assert [p["path"] for p in json.loads(checked.stdout)] == ["training.epochs"]
    valid = subprocess.run([sys.executable, "-c", probe, "validate", "--no-cache", str(TEMPLATES[0])],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (valid.returncode, valid.stdout, valid.stderr) == (0, f"{TEMPLATES[0]}: valid\n", "")
    listed = subprocess.run([sys.executable, "-c", probe, "templates"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and listed.stderr == "torn down\n"


# templates / init -------------------------------------------------------------------------


def test_templates_lists_every_template_with_its_description():
    result = dlpipe("templates")
    assert result.exit_code == 0
    rows = [row.split(None, 1) for row in result.stdout.splitlines()]
    expected = [[t.stem, yaml.safe_load(t.read_text(encoding="utf-8"))["description"]] for t in TEMPLATES]
    assert rows == expected
    assert all(description for _, description in rows)


def test_every_template_has_a_run_template_entry():
    """tests/test_run_templates.py runs each template (shortened) against a trivial baseline;
    its table must name every template, so a new one cannot ship unchecked."""
    from test_run_templates import TEMPLATES as CHECKED

    assert {t.stem for t in TEMPLATES} == set(CHECKED), \
        "add an entry for each template to TEMPLATES in tests/test_run_templates.py (and remove gone ones)"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_init_writes_a_template_that_names_its_new_path_and_validates(template, tmp_path):
    dest = tmp_path / "mine.yaml"
    result = dlpipe("init", template.stem, str(dest))
    assert result.exit_code == 0
    schema_file = tmp_path / "dlpipe-spec.schema.json"
    assert result.stdout == (f"wrote {dest}; run it with: dlpipe run {dest}\n"
                             f"wrote {schema_file}: the spec's JSON Schema, which the template's "
                             "yaml-language-server line points editors at\n")
    written = dest.read_text(encoding="utf-8").splitlines()
    original = template.read_text(encoding="utf-8").splitlines()
    assert written[0] == f"# dlpipe run {dest}"
    assert written[1:] == original[1:]
    assert check_files([dest]) == []
    # The editor line points at a file that exists beside the copy, and the copy validates
    # against it; a second init into the same folder leaves the same schema alone.
    assert written[1] == "# yaml-language-server: $schema=dlpipe-spec.schema.json"
    schema = json.loads((dest.parent / written[1].split("$schema=")[1]).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(dest.read_text(encoding="utf-8")))
    again = dlpipe("init", template.stem, str(tmp_path / "second.yaml"))
    assert again.stdout.count("\n") == 1


def test_init_into_a_folder_keeps_the_template_name(tmp_path):
    result = dlpipe("init", TEMPLATES[0].stem, str(tmp_path))
    assert result.exit_code == 0
    assert (tmp_path / TEMPLATES[0].name).read_text(encoding="utf-8").splitlines()[0] == (
        f"# dlpipe run {tmp_path / TEMPLATES[0].name}")


def test_init_refuses_to_overwrite_without_force(tmp_path):
    dest = tmp_path / "mine.yaml"
    dest.write_text("mine\n", encoding="utf-8")
    refused = dlpipe_process("init", TEMPLATES[0].stem, str(dest))
    assert refused.returncode == 1
    assert refused.stderr == f"error: {dest}: already exists (use --force to overwrite)\n"
    assert dest.read_text(encoding="utf-8") == "mine\n"
    forced = dlpipe("init", TEMPLATES[0].stem, str(dest), "--force")
    assert forced.exit_code == 0
    assert dest.read_text(encoding="utf-8").startswith(f"# dlpipe run {dest}\n")


def test_init_an_unknown_template_suggests_the_closest(tmp_path):
    name = TEMPLATES[0].stem
    typo = dlpipe("init", name[:-1], str(tmp_path / "x.yaml"))
    assert (typo.exit_code, typo.stderr) == (
        1, f"error: unknown template {name[:-1]!r}; did you mean {name!r}?\n")
    far = dlpipe("init", "zzz", str(tmp_path / "x.yaml"))
    assert (far.exit_code, far.stderr) == (
        1, f"error: unknown template 'zzz'; choose from {', '.join(t.stem for t in TEMPLATES)}\n")
    assert list(tmp_path.iterdir()) == []


def test_debug_keeps_the_traceback(tmp_path):
    result = CliRunner().invoke(main, ["--debug", "init", "zzz", str(tmp_path / "x.yaml")])
    assert isinstance(result.exception, DlpipeError)
    assert str(result.exception).startswith("unknown template 'zzz'")


# schema, help, usage errors ---------------------------------------------------------------


def test_schema_prints_the_json_schema():
    result = dlpipe("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"name", "task", "data", "model"}
    assert schema["additionalProperties"] is False


def test_shell_completion_offers_template_names_for_init():
    """bash completion as README shows it (`eval "$(_DLPIPE_COMPLETE=bash_source dlpipe)"`),
    asked the way bash asks it."""
    env = {**os.environ, "_DLPIPE_COMPLETE": "bash_complete", "COMP_WORDS": "dlpipe init tab", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-c", "from dlpipe.cli import main; main(prog_name='dlpipe')"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain,tabular-classification", "plain,tabular-regression"]
    env.update(COMP_WORDS="dlpipe ", COMP_CWORD="1")
    done = subprocess.run([sys.executable, "-c", "from dlpipe.cli import main; main(prog_name='dlpipe')"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert {"plain,init", "plain,run", "plain,tune", "plain,schema"} <= set(done.stdout.split())


def test_schema_out_writes_the_file_the_templates_point_at(tmp_path):
    result = dlpipe("schema", "--out", str(tmp_path / "editor" / "dlpipe-spec.schema.json"))
    assert (result.exit_code, result.stdout) == (0, f"wrote {tmp_path / 'editor' / 'dlpipe-spec.schema.json'}\n")
    written = (tmp_path / "editor" / "dlpipe-spec.schema.json").read_text(encoding="utf-8")
    assert written == dlpipe("schema").stdout == (ROOT / "specs" / "dlpipe-spec.schema.json").read_text(encoding="utf-8")
    for template in TEMPLATES:  # each names the shipped file, relative to itself
        assert template.read_text(encoding="utf-8").splitlines()[1] == \
            "# yaml-language-server: $schema=dlpipe-spec.schema.json"
    (tmp_path / "taken").mkdir()
    refused = dlpipe("schema", "--out", str(tmp_path / "taken"))
    assert refused.exit_code != 0 and "Traceback" not in refused.output


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["validate", "--help"], ["init", "--help"]])
def test_help_works(args):
    result = dlpipe(*args)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")


def test_help_lists_the_commands():
    listed = dlpipe("--help").stdout
    for command in ("validate", "run", "templates", "init", "schema"):
        assert f"\n  {command} " in listed


def test_version():
    from dlpipe import __version__

    assert dlpipe("--version").stdout == f"dlpipe, version {__version__}\n"


@pytest.mark.parametrize("args, message", [
    (["validate"], "Missing argument 'SPECS...'"),
    (["validate", "--format", "xml", "x.yaml"], "'xml' is not one of 'text', 'json'"),
    (["bogus"], "No such command 'bogus'"),
    (["init"], "Missing argument 'TEMPLATE'"),
    (["validate", "--nope", "x.yaml"], "No such option '--nope'"),
    (["validate", str(ROOT / "specs")], "is a directory"),
])
def test_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_usage_error_exits_2_in_a_real_process():
    result = dlpipe_process("validate", "--format", "xml", str(TEMPLATES[0]))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("Usage: ")


# No TensorFlow on the way to `dlpipe validate` --------------------------------------------

STAGES = """\
import json, sys
from pathlib import Path

def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))

templates = sys.argv[1:]
imported = {}
import dlpipe.cli
imported["import dlpipe.cli"] = heavy()
from dlpipe.spec import load_spec
load_spec("specs/image-classification.yaml")
imported["load_spec"] = heavy()
dlpipe.cli.main(["validate", *templates], standalone_mode=False)
imported["dlpipe validate"] = heavy()
dlpipe.cli.main(["schema"], standalone_mode=False)
dlpipe.cli.main(["templates"], standalone_mode=False)
imported["dlpipe schema, templates"] = heavy()
print(json.dumps(imported), file=sys.stderr)
"""


def test_the_spec_layer_and_cli_never_import_tensorflow():
    # One fresh process, checked after each step: the first step that imports a framework
    # shows up with the modules it imported.
    done = subprocess.run([sys.executable, "-c", STAGES, *map(str, TEMPLATES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.splitlines()[-1]) == {
        "import dlpipe.cli": [], "load_spec": [], "dlpipe validate": [], "dlpipe schema, templates": []}
