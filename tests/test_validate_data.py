"""Plain `dlpipe validate` looks at the data cheaply — files exist, headers hold the columns
the spec names — at the spec's lines, without reading rows or importing pandas, pyarrow or
TensorFlow; a remembered result is replayed only while the files look the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlpipe.cli import main

SPEC = """\
version: 1
name: churn
task: classification
data:
  source: {type: csv, path: data/rows.csv}
  features:
    - {name: tenure, type: numerical}
    - {name: plan, type: categorical}
  target: {name: churned}
model: {type: mlp, units: [8]}
"""
ROWS = "tenure,plan,churned\n3,basic,yes\n40,pro,no\n"


def validate(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", *map(str, args)])
    return result.exit_code, result.stderr.splitlines() or result.stdout.splitlines()


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DLPIPE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text(ROWS)
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path


def spec_with(project: Path, old: str, new: str, name: str = "spec.yaml") -> Path:
    path = project / name
    path.write_text(SPEC.replace(old, new, 1))
    return path


def test_a_valid_spec_and_its_data(project):
    assert validate(project / "spec.yaml") == (0, [f"{project / 'spec.yaml'}: valid"])


def test_a_missing_file_at_its_line_with_the_folders_close_name(project):
    spec = spec_with(project, "data/rows.csv", "data/row.csv")
    assert validate(spec) == (1, [f"{spec}:5:29: data.source.path: no such file: {project / 'data' / 'row.csv'}; "
                                  "did you mean 'rows.csv'?"])


def test_a_missing_target_and_a_misspelled_feature_each_at_its_line(project):
    spec = spec_with(project, "name: tenure", "name: tenur")
    spec.write_text(spec.read_text().replace("name: churned", "name: churn"))
    rows = project / "data" / "rows.csv"
    assert validate(spec) == (1, [
        f"{spec}:7:14: data.features[0].name: no column 'tenur' in {rows}; did you mean 'tenure'?",
        f"{spec}:9:18: data.target.name: no column 'churn' in {rows}; did you mean 'churned'?"])


def test_named_columns_of_other_sections(project):
    spec = spec_with(project, "model:", "training: {sample_weight: wieght}\nmodel:")
    (project / "data" / "rows.csv").write_text("tenure,plan,churned,weight\n3,basic,yes,1\n")
    assert validate(spec) == (1, [f"{spec}:10:27: training.sample_weight: no column 'wieght' in "
                                  f"{project / 'data' / 'rows.csv'}; did you mean 'weight'?"])


def test_a_wrong_delimiter_is_named(project):
    (project / "data" / "rows.csv").write_text(ROWS.replace(",", ";"))
    code, lines = validate(project / "spec.yaml")
    assert code == 1 and lines[-1].endswith("data.target.name: no column 'churned' in "
                                            f"{project / 'data' / 'rows.csv'}; the header 'tenure;plan;churned' "
                                            "looks delimited by ';': set data.source.delimiter")


def test_section_keys_name_columns_when_features_are_inferred(project):
    (project / "data" / "rows.csv").write_text("mean radius,area,churned\n1,2,yes\n")
    spec = project / "inferred.yaml"
    spec.write_text(SPEC.split("  features:")[0] + "  target: {name: churned}\n"
                    "prepare:\n  normalization: {mean radius: {type: minmax}, numerical: {type: zscore}}\n"
                    "  imputation: {mean_radius: {type: mean}, area: {type: median}}\n"
                    "model: {type: mlp, units: [8]}\n")
    assert validate(spec) == (1, [
        f"{spec}:9:29: prepare.imputation.mean_radius: 'mean_radius' is neither a column of "
        f"{project / 'data' / 'rows.csv'} nor a feature type (numerical, categorical, ordinal, text); "
        "did you mean 'mean radius'?"])


def test_split_files_and_other_paths(project):
    spec = spec_with(project, "  target: {name: churned}", "  target: {name: churned, label_map: labels.json}\n"
                     "  split: {files: {test: data/test.csv}}")
    (project / "data" / "test.csv").write_text("tenure,plan,label\n1,pro,no\n")
    assert validate(spec) == (1, [
        f"{spec}:9:38: data.target.label_map: no such file: {project / 'labels.json'}",
        f"{spec}:10:25: data.split.files.test: no column 'churned' in {project / 'data' / 'test.csv'}; "
        "columns are: tenure, plan, label"])


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "npz"])
def test_headers_of_other_tabular_files(project, kind):
    path = project / "data" / f"rows.{kind}"
    if kind == "jsonl":
        path.write_text('\n{"tenure": 3, "plan": "basic", "churn": "yes"}\n')
    elif kind == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"tenure": [3], "plan": ["basic"], "churn": ["yes"]}), path)
    else:
        import numpy as np

        np.savez(path, tenure=np.array([3.0]), plan=np.array(["basic"]), churn=np.array(["yes"]))
    spec = spec_with(project, "{type: csv, path: data/rows.csv}", f"{{type: {kind}, path: data/rows.{kind}}}")
    assert validate(spec) == (1, [f"{spec}:9:18: data.target.name: no column 'churned' in {path}; "
                                  "did you mean 'churn'?"])


def test_folder_sources(project):
    spec = spec_with(project, "{type: csv, path: data/rows.csv}", "{type: image_folder, path: pictures}")
    spec.write_text(spec.read_text().replace("    - {name: plan, type: categorical}\n", "").replace(
        "{name: tenure, type: numerical}", "{name: image, type: image}").replace("churned", "label"))
    spec.write_text(spec.read_text().replace("type: mlp, units: [8]", "type: cnn, blocks: [{filters: 4}]"))
    assert validate(spec) == (1, [f"{spec}:5:38: data.source.path: no such folder: {project / 'pictures'}"])
    (project / "pictures").write_text("")
    assert validate(spec) == (1, [f"{spec}:5:38: data.source.path: {project / 'pictures'} is a file, not a folder"])
    (project / "pictures").unlink()
    (project / "pictures").mkdir()
    assert validate(spec)[0] == 0


def test_a_remembered_valid_is_never_stale(project):
    """Valid, replayed; the file removed: the replay is refused and the missing file found;
    restored: valid. A header changed in place (same size, same mtime) is found too."""
    spec, rows = project / "spec.yaml", project / "data" / "rows.csv"
    assert validate(spec)[0] == 0
    (entry,) = (project / "cache" / "validate").glob("*.json")
    observed = json.loads(entry.read_text())["observed"]
    assert ["stat", str(rows)] in [item[:2] for item in observed]
    assert validate(spec)[0] == 0
    rows.rename(project / "rows.bak")
    assert validate(spec) == (1, [f"{spec}:5:29: data.source.path: no such file: {rows}"])
    (project / "rows.bak").rename(rows)
    assert validate(spec)[0] == 0
    stat = rows.stat()
    rows.write_text(ROWS.replace("churned", "churnex"))
    os.utime(rows, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert rows.stat().st_size == stat.st_size and rows.stat().st_mtime_ns == stat.st_mtime_ns
    code, lines = validate(spec)
    assert code == 1 and "no column 'churned'" in lines[0]


def test_the_same_spec_in_another_folder_is_checked_there(project, tmp_path):
    assert validate(project / "spec.yaml")[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "spec.yaml").write_text(SPEC)
    before = Path.cwd()
    try:
        os.chdir(project)
        assert validate("spec.yaml")[0] == 0
        os.chdir(other)  # the same bytes, the same path as given: another folder, no data
        assert validate("spec.yaml") == (1, [f"spec.yaml:5:29: data.source.path: no such file: "
                                             f"{other / 'data' / 'rows.csv'}"])
    finally:
        os.chdir(before)


def test_validate_reads_no_rows_and_imports_no_pandas_pyarrow_or_tensorflow(project):
    import numpy as np

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"tenure": np.arange(3.0), "plan": ["a", "b", "c"], "churned": ["y", "n", "y"]}),
                   project / "data" / "rows.parquet")
    spec = spec_with(project, "{type: csv, path: data/rows.csv}", "{type: parquet, path: data/rows.parquet}",
                     "parquet.yaml")
    probe = ("import sys; from dlpipe.cli import main; sys.argv = ['dlpipe', 'validate', '--no-cache', %r, %r]\n"
             "try: main()\n"
             "except SystemExit as e: print(sorted(m for m in ('pandas', 'pyarrow', 'tensorflow', 'keras') "
             "if m in sys.modules), e.code)") % (str(project / "spec.yaml"), str(spec))
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ)
    assert run.stdout.splitlines()[-1] == "[] 0", run.stderr


def test_parquet_columns_read_without_pyarrow_agree_with_pyarrow(tmp_path):
    """Wide (more than 15 columns: a long list header), nested, unicode and list columns."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from dlpipe.spec.datacheck import parquet_columns
    from dlpipe.validation_cache import _parquet_footer

    tables = [
        pa.table({f"c{i}": [float(i)] for i in range(40)}),
        pa.table({"point": pa.array([{"x": 1, "y": {"z": 2}}]), "tags": pa.array([["a", "b"]]), "größe": [1.5],
                  "label": ["x"]}),
    ]
    for i, table in enumerate(tables):
        pq.write_table(table, tmp_path / f"{i}.parquet")
        assert parquet_columns(_parquet_footer(str(tmp_path / f"{i}.parquet"))) == table.column_names
    (tmp_path / "not.parquet").write_text("a,b\n1,2\n")
    assert _parquet_footer(str(tmp_path / "not.parquet")) is None
