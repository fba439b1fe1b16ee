"""YAML → data with positions (dlpipe/spec/loader.py): where keys and values were written,
what is refused (duplicate keys, tags, malformed YAML), and `--set` overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlpipe.errors import Problem, SpecError
from dlpipe.spec import load_spec
from dlpipe.spec.loader import Document, apply_overrides, format_path, parse, read

SPECS = Path(__file__).resolve().parent.parent / "specs"

LOCATED = """\
name: demo
model:
  type: cnn
  blocks:
    - {filters: 32}
    - filters: 64
      convs: 2
"""


def parse_problems(text: str, file: str = "f.yaml") -> list[Problem]:
    """The problems `parse` raises, or those it records for validation to report."""
    try:
        doc = parse(text, file)
    except SpecError as err:
        return err.problems
    return doc.problems


def overridden(text: str, *overrides: str) -> Document:
    return apply_overrides(parse(text, "f.yaml"), list(overrides))


# Positions --------------------------------------------------------------------------------


def test_every_key_and_value_has_its_line_and_column():
    doc = parse(LOCATED, "f.yaml")
    assert doc.data == {"name": "demo",
                        "model": {"type": "cnn", "blocks": [{"filters": 32}, {"filters": 64, "convs": 2}]}}
    assert doc.problems == []
    keys = {path: (line, column) for path, (_, line, column) in doc.keys.items()}
    values = {path: (line, column) for path, (_, line, column) in doc.values.items()}
    assert keys == {
        ("name",): (1, 1),
        ("model",): (2, 1),
        ("model", "type"): (3, 3),
        ("model", "blocks"): (4, 3),
        ("model", "blocks", 0, "filters"): (5, 8),
        ("model", "blocks", 1, "filters"): (6, 7),
        ("model", "blocks", 1, "convs"): (7, 7),
    }
    assert values == {
        (): (1, 1),
        ("name",): (1, 7),
        ("model",): (3, 3),          # a block mapping starts at its first key
        ("model", "type"): (3, 9),
        ("model", "blocks"): (5, 5),  # a block sequence starts at its first '-'
        ("model", "blocks", 0): (5, 7),
        ("model", "blocks", 0, "filters"): (5, 17),
        ("model", "blocks", 1): (6, 7),
        ("model", "blocks", 1, "filters"): (6, 16),
        ("model", "blocks", 1, "convs"): (7, 14),
    }
    assert {file for file, _, _ in [*doc.keys.values(), *doc.values.values()]} == {"f.yaml"}


def test_a_path_not_in_the_file_falls_back_to_the_nearest_enclosing_value():
    doc = parse(LOCATED, "f.yaml")
    assert doc.value_position(("model", "blocks", 0, "kernel_size")) == ("f.yaml", 5, 7)
    assert doc.value_position(("training", "epochs")) == ("f.yaml", 1, 1)
    # A list item has no key: its key position is where its value starts.
    assert doc.key_position(("model", "blocks", 1)) == ("f.yaml", 6, 7)


def test_format_path_writes_indices_in_brackets():
    assert format_path(("model", "blocks", 1, "filters")) == "model.blocks[1].filters"
    assert format_path(("evaluation", "metrics", 0)) == "evaluation.metrics[0]"
    assert format_path(()) == ""


def test_plain_values_keep_their_yaml_types_and_dates_stay_text():
    doc = parse("a: 3\nb: 0.5\nc: true\nd: null\ne: 2024-01-31\nf: '7'\ng: 1_000\n", "f.yaml")
    assert doc.data == {"a": 3, "b": 0.5, "c": True, "d": None, "e": "2024-01-31", "f": "7", "g": 1000}


@pytest.mark.parametrize("written, value", [
    ("1e-3", 0.001), ("1.0e-3", 0.001), ("1.0e3", 1000.0), ("-2E+4", -20000.0), ("5e-4", 0.0005),
    ("'1e-3'", "1e-3"), ("!!str 1e3", "1e3"), ("1e", "1e"), ("e5", "e5"),
])
def test_exponent_notation_is_a_number_as_in_yaml_1_2(written, value):
    # PyYAML alone reads 1e-3 as the text '1e-3' (YAML 1.1 floats need a dot and a sign).
    data = parse(f"learning_rate: {written}\n", "f.yaml").data
    assert data == {"learning_rate": value}
    assert type(data["learning_rate"]) is type(value)


def test_merge_keys_fill_in_but_never_override_keys_written_in_place():
    doc = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n", "f.yaml")
    assert doc.data["other"] == {"x": 3, "y": 2}
    assert doc.problems == []


# What the loader refuses ------------------------------------------------------------------


def test_a_duplicate_key_is_reported_at_the_second_key_and_names_the_first_line():
    problems = parse_problems("name: a\nseed: 1\nname: b\n")
    assert problems == [Problem("f.yaml", 3, 1, "name", "duplicate key 'name' (first given on line 1)")]


def test_duplicate_keys_are_found_at_any_depth_and_in_flow_mappings():
    problems = parse_problems(
        "model:\n  type: mlp\n  units: [8]\n  type: cnn\nhead: {dropout: 0.1, dropout: 0.2}\n")
    assert [str(p) for p in problems] == [
        "f.yaml:4:3: model.type: duplicate key 'type' (first given on line 2)",
        "f.yaml:5:22: head.dropout: duplicate key 'dropout' (first given on line 5)",
    ]


def test_the_first_of_duplicate_keys_is_kept():
    assert parse("a: 1\na: 2\n", "f.yaml").data == {"a": 1}


@pytest.mark.parametrize("tagged, shown", [
    ("!!python/object:os.system {}", "!!python/object:os.system"),
    ("!!python/object/apply:os.system ['echo hi']", "!!python/object/apply:os.system"),
    ("!!python/name:os.system", "!!python/name:os.system"),
    ("!!binary aGk=", "!!binary"),
    ("!!set {a, b}", "!!set"),
    ("!include other.yaml", "!include"),
])
def test_yaml_tags_are_refused_where_they_are_written(tagged, shown):
    problems = parse_problems(f"name: demo\nseed: {tagged}\n")
    assert problems == [Problem("f.yaml", 2, 7, "seed", f"YAML tag {shown!r} is not allowed")]


def test_a_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: demo\nseed: !!python/object/apply:os.system ['touch {marker}']\n"
                    f"top: !!python/object/apply:subprocess.call [['touch', '{marker}']]\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "seed: YAML tag '!!python/object/apply:os.system' is not allowed" in str(info.value)
    assert "top: YAML tag '!!python/object/apply:subprocess.call' is not allowed" in str(info.value)
    assert not marker.exists()


def test_a_tag_on_the_whole_document_is_refused():
    problems = parse_problems("!!python/object/apply:os.system\nargs: ['echo hi']\n")
    assert problems == [
        Problem("f.yaml", 1, 1, "", "YAML tag '!!python/object/apply:os.system' is not allowed")]


@pytest.mark.parametrize("text, line, column, message", [
    ("name: demo\nmodel:\n\ttype: mlp\n", 3, 1, "a tab character cannot indent YAML; use spaces"),
    ("metrics: [accuracy, f1_macro\nseed: 3\n", 1, 10,
     "the '[' opened here is not closed (expected ',' or ']', but got ':' at line 2, column 5)"),
    ("metrics: [accuracy, f1_macro\n", 1, 10,
     "the '[' opened here is not closed (expected ',' or ']', but got '<stream end>' at line 2, column 1)"),
    ("source: {type: csv\nseed: 3\n", 1, 9,
     "the '{' opened here is not closed (expected ',' or '}', but got ':' at line 2, column 5)"),
    ("name: a: b\n", 1, 8, "mapping values are not allowed here"),
    ("name: 'demo\n", 1, 7, "the quote opened here is not closed (found unexpected end of stream at line 2, column 1)"),
    ("seed: *nowhere\n", 1, 7, "found undefined alias 'nowhere'"),
    ("seed: 1\nname: x\x07y\n", 2, 8, "unacceptable character #x0007: special characters are not allowed"),
])
def test_malformed_yaml_is_one_located_problem(text, line, column, message):
    assert parse_problems(text) == [Problem("f.yaml", line, column, "", f"invalid YAML: {message}")]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_one_problem(text):
    assert parse_problems(text) == [Problem("f.yaml", 1, 1, "", "the spec is empty")]


@pytest.mark.parametrize("text", ["- name: demo\n", "just text\n", "42\n"])
def test_the_top_level_must_be_a_mapping(text):
    assert parse_problems(text) == [
        Problem("f.yaml", 1, 1, "", "a spec must be a mapping of sections (name: ..., data: ...)")]


def test_keys_must_be_strings():
    problems = parse_problems("name: demo\n1: one\n[a, b]: two\n")
    assert [str(p) for p in problems] == [
        "f.yaml:2:1: keys must be names (strings), got '1'",
        "f.yaml:3:1: keys must be names (strings), got 'a collection'",
    ]


def test_reading_a_missing_file_a_folder_or_bytes_that_are_not_utf8(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    for name, message in [("missing.yaml", "no such file"), (".", "is a directory, not a spec file")]:
        with pytest.raises(SpecError) as info:
            read(tmp_path / name)
        assert info.value.problems == [Problem(str(tmp_path / name), 1, 1, "", message)]
    with pytest.raises(SpecError) as info:
        read(tmp_path / "latin1.yaml")
    assert str(info.value).startswith(
        f"{tmp_path / 'latin1.yaml'}:1:1: cannot read: 'utf-8' codec can't decode")


# Bounds: what a hostile or broken spec cannot make the loader do ---------------------------


def laughs(depth: int) -> str:
    """A "billion laughs": each anchor repeats the previous one nine times (9^depth values)."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "name: demo\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("depth", [6, 9, 40, 400])
def test_an_alias_bomb_of_any_depth_is_refused_at_the_alias_that_crosses_the_cap(depth):
    # Aliases up to l4 add 74,718 values (l4 alone 9 × 7,381); l4 expands to 66,430, so the first
    # *l4 in l5 (line 7) crosses the 100,000 cap, whatever follows.
    assert parse_problems(laughs(depth)) == [Problem(
        "f.yaml", 7, 10, "",
        "alias *l4: the aliases would repeat more than 100,000 values; a spec needs far fewer "
        "(an anchor that repeats other anchors grows exponentially)")]


def test_aliases_below_the_cap_are_expanded_with_the_anchor_positions():
    doc = parse(laughs(5), "f.yaml")
    assert len(doc.data["l4"]) == 9 and doc.data["l4"][8][8][8][8] == ["lol"] * 9
    shared = "defaults: &d {units: [8], dropout: 0.1}\nmodel: {<<: *d, type: mlp}\nother: *d\n"
    doc = parse(shared, "f.yaml")
    assert doc.data["model"] == {"type": "mlp", "units": [8], "dropout": 0.1}
    assert doc.data["other"] == {"units": [8], "dropout": 0.1}
    assert doc.value_position(("other", "units")) == ("f.yaml", 1, 22)


@pytest.mark.parametrize("text, column", [
    ("model: &m {type: mlp, units: [*m]}\n", 31),
    ("a: &a [1, [2, *a]]\n", 15),
    ("a: &a {b: *a}\n", 11),
])
def test_an_alias_inside_its_own_anchor_is_refused(text, column):
    anchor = text.split("&")[1][0]
    assert parse_problems(text) == [Problem(
        "f.yaml", 1, column, "", f"alias *{anchor} lies inside its own anchor &{anchor}: the value would never end")]


def test_nesting_is_capped_in_flow_and_block_style_and_through_aliases():
    too_deep = "[" * 64 + "]" * 64  # 64 lists under the top mapping: 65 levels
    assert parse_problems(f"a: {too_deep}\n") == [
        Problem("f.yaml", 1, 67, "", "the YAML nests deeper than 64 levels; a spec needs far fewer")]
    value = parse(f"a: {'[' * 63}1{']' * 63}\n", "f.yaml").data["a"]  # 64 levels: accepted
    for _ in range(63):
        value = value[0]
    assert value == 1
    block = "".join(f"{'  ' * i}k{i}:\n" for i in range(70))
    assert parse_problems(block)[0].message == "the YAML nests deeper than 64 levels; a spec needs far fewer"
    # 40 levels anchored, then aliased 30 levels down: 70 in all
    nested = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    assert parse_problems(nested) == [
        Problem("f.yaml", 2, 34, "", "the YAML nests deeper than 64 levels; a spec needs far fewer")]
    assert parse_problems("a: " + "[" * 100_000 + "\n")[0].message.startswith("the YAML nests deeper")


def test_a_spec_must_be_a_regular_file_of_at_most_one_mebibyte(tmp_path):
    import os

    big = tmp_path / "big.yaml"
    big.write_text("name: demo\n" + "#" * (1 << 20) + "\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer: it must not
    for path, message in [(big, "the file is larger than 1 MiB; a spec is far smaller"),
                          (Path("/dev/zero"), "not a regular file (a device, pipe or socket); a spec is a YAML file"),
                          (fifo, "not a regular file (a device, pipe or socket); a spec is a YAML file")]:
        with pytest.raises(SpecError) as info:
            read(path)
        assert info.value.problems == [Problem(str(path), 1, 1, "", message)]
    exactly = tmp_path / "exactly.yaml"
    exactly.write_text("name: demo\n" + "#" * ((1 << 20) - 12) + "\n")
    assert exactly.stat().st_size == 1 << 20 and read(exactly).data == {"name": "demo"}


# --set overrides --------------------------------------------------------------------------

BASE = """\
name: demo
training:
  epochs: 10
model:
  type: cnn
  blocks:
    - {filters: 32}
    - {filters: 64}
"""


def test_an_override_sets_a_nested_key_and_is_located_at_its_value():
    doc = overridden(BASE, "training.epochs=5")
    assert doc.problems == []
    assert doc.data["training"] == {"epochs": 5}
    assert doc.keys[("training", "epochs")] == ("--set", 1, 1)
    assert doc.values[("training", "epochs")] == ("--set", 1, 17)  # after 'training.epochs='


@pytest.mark.parametrize("key", ["model.blocks[1].filters", "model.blocks.1.filters"])
def test_an_override_reaches_into_lists_by_index(key):
    doc = overridden(BASE, f"{key}=8")
    assert doc.problems == []
    assert doc.data["model"]["blocks"] == [{"filters": 32}, {"filters": 8}]
    assert doc.values[("model", "blocks", 1, "filters")] == ("--set", 1, len(key) + 2)


@pytest.mark.parametrize("value, parsed", [
    ("5", 5), ("0.5", 0.5), ("1e-4", 0.0001), ("true", True), ("null", None), ("", None),
    ("'5'", "5"), ("adam", "adam"), ("[8, 16]", [8, 16]),
    ("{type: sgd, momentum: 0.9}", {"type": "sgd", "momentum": 0.9}),
])
def test_an_override_value_is_parsed_as_yaml(value, parsed):
    assert overridden(BASE, f"training.value={value}").data["training"]["value"] == parsed


def test_an_override_creates_missing_mappings_and_replaces_whole_subtrees():
    doc = overridden(BASE, "training.early_stopping.patience=3", "model={type: mlp, units: [4]}")
    assert doc.problems == []
    assert doc.data["training"] == {"epochs": 10, "early_stopping": {"patience": 3}}
    assert doc.data["model"] == {"type": "mlp", "units": [4]}
    # Positions of the replaced subtree are gone; the new ones point at the second --set.
    assert ("model", "blocks") not in doc.values and ("model", "blocks") not in doc.keys
    assert doc.values[("model", "units", 0)] == ("--set", 2, 7)


@pytest.mark.parametrize("override", ["foo", "=5", "training..epochs=5", "training.=5", "model.blocks[x]=1"])
def test_a_malformed_override_is_one_problem(override):
    doc = overridden(BASE, "training.epochs=3", override)
    assert doc.problems == [
        Problem("--set", 2, 1, "", f"expected KEY=VALUE such as training.epochs=5, got {override!r}")]
    assert doc.data["training"] == {"epochs": 3}


@pytest.mark.parametrize("override, path, message", [
    ("model.blocks[5].filters=8", "model.blocks[5].filters", "model.blocks[5] does not exist"),
    ("model.layers.0.units=8", "model.layers[0].units", "model.layers[0] does not exist"),
    ("name.first=x", "name.first", "cannot set a key inside name, which is str"),
])
def test_an_override_that_cannot_apply_changes_nothing(override, path, message):
    doc = overridden(BASE, override)
    assert doc.problems == [Problem("--set", 1, 1, path, message)]
    assert doc.data == parse(BASE, "f.yaml").data


def test_an_override_value_that_is_not_text_is_one_problem():
    # A byte that is not UTF-8 in argv reaches Python as a lone surrogate.
    doc = overridden(BASE, "name=a\udcff")
    assert doc.problems == [Problem(
        "--set", 1, 6, "name",
        "invalid YAML: unacceptable character #xdcff: special characters are not allowed")]


def test_a_malformed_override_value_is_located_at_the_value():
    doc = overridden(BASE, "training.epochs=[1, 2")
    assert doc.problems == [Problem(
        "--set", 1, 17, "training.epochs",
        "invalid YAML: the '[' opened here is not closed (expected ',' or ']', but got '<stream end>')")]


def test_an_override_value_is_bounded_like_a_spec():
    # Found by fuzz/fuzz_inputs.py: a recursive alias typed in --set escaped as a traceback.
    doc = overridden(BASE, "name=&a [*a]", "training.epochs=" + "[" * 70 + "]" * 70)
    assert doc.problems == [
        Problem("--set", 1, 10, "name", "alias *a lies inside its own anchor &a: the value would never end"),
        Problem("--set", 2, 81, "training.epochs", "the YAML nests deeper than 64 levels; a spec needs far fewer")]


def test_an_override_value_may_not_carry_a_tag(tmp_path):
    marker = tmp_path / "executed"
    doc = overridden(BASE, f"training.epochs=!!python/object/apply:os.system ['touch {marker}']")
    assert doc.problems == [Problem("--set", 1, 17, "training.epochs",
                                    "YAML tag '!!python/object/apply:os.system' is not allowed")]
    assert doc.data["training"] == {"epochs": 10}
    assert not marker.exists()


def test_a_bad_override_key_is_located_at_the_set_with_a_suggestion():
    template = SPECS / "image-classification.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(template, ["training.epochs=3", "training.epoch=5", "trainin.batch_size=8"])
    assert [str(p) for p in info.value.problems] == [
        "--set:2:1: training.epoch: unknown key 'epoch'; did you mean 'epochs'?",
        "--set:3:1: trainin: unknown key 'trainin'; did you mean 'training'?",
    ]


def test_a_bad_override_value_is_located_at_its_column():
    with pytest.raises(SpecError) as info:
        load_spec(SPECS / "image-classification.yaml", ["seed=1", "model.blocks[1].filters=-3"])
    assert [str(p) for p in info.value.problems] == [
        "--set:2:25: model.blocks[1].filters: expected a value > 0, got -3"]


def test_overrides_apply_in_order_and_reach_the_spec():
    spec = load_spec(SPECS / "image-classification.yaml",
                     ["training.epochs=2", "training.epochs=3", "model.blocks.0.filters=4",
                      "training.optimizer.learning_rate=5e-4"])
    assert spec.training.epochs == 3
    assert spec.model.blocks[0].filters == 4
    assert spec.training.optimizer.learning_rate == 5e-4


# libyaml and the pure-Python parser ------------------------------------------------------

CORPUS = [
    *(p.read_text(encoding="utf-8") for p in sorted(SPECS.glob("*.yaml"))),
    *(p.read_bytes().decode("utf-8", "surrogateescape")
      for p in sorted((Path(__file__).parent / "fixtures").rglob("*.yaml"))),
    LOCATED, BASE,
    # Columns count characters, not bytes:
    "é: {ü: 1, b: 2}\nx: [日本, 語, c]  # 😀\ny: '😀😀'\nz: {😀: 1, k: v}\n",
    "\ufeffname: bom\nseed: [1, 2]\n", "a: |\n  text\n  more\nb: >\n  folded\nc: 2\n",
    "a: &x {k: 1}\nb:\n  <<: *x\n  j: 2\n", "a: !!python/object:os.system {}\nb: !custom 3\n",
    "a: 1e-3\nb: '1e-3'\nc: !!str 1e3\nd: 2024-01-01\ne: yes\nf: 0x10\ng: .inf\n", "a: 1\na: 2\n",
    "? complex\n: value\n", "a:\n  - b: 1\n    c: 2\n  -   d: 3\n", "", "- 1\n", "a:\n\tb: 1\n", "a: [1,\n",
    "a: \x07\n", "a: 1\n---\nb: 2\n", "a: \udcff\n",
]


def _outcome(text: str):
    try:
        doc = parse(text, "f.yaml")
    except SpecError as err:
        return err.problems
    return doc.data, doc.values, doc.keys, doc.problems


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_libyaml_and_pure_python_parse_alike(text, monkeypatch):
    import yaml

    from dlpipe.spec import loader

    assert (loader._FastLoader is not None) == yaml.__with_libyaml__
    fast = _outcome(text)
    monkeypatch.setattr(loader, "_FastLoader", None)
    assert _outcome(text) == fast
