"""exporters/scoring.py without TensorFlow: an export's bytes and gzip bytes, and the
single-example latency measurement (the slow suites score real exports: tests/test_export_stage.py,
tests/test_run_templates.py)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time

import numpy as np

from dlpipe.exporters.scoring import chunks, finite, footprint, latency


def test_footprint_of_a_file_is_its_size_and_its_gzip_size(tmp_path):
    content = bytes(range(256)) * 40 + b"\0" * 20_000
    (tmp_path / "model.tflite").write_bytes(content)
    sizes = footprint(tmp_path / "model.tflite")
    assert sizes["bytes"] == len(content) == 30_240
    assert sizes["gzip_bytes"] == len(gzip.compress(content, compresslevel=9, mtime=0))
    assert gzip.decompress(gzip.compress(content, compresslevel=9, mtime=0)) == content
    assert sizes["gzip_bytes"] < sizes["bytes"] // 5  # the zeros compress


def test_footprint_of_a_folder_sums_its_files_and_gzips_one_reproducible_tar(tmp_path):
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph" * 1000)
    (folder / "variables" / "variables.data").write_bytes(np.arange(5000, dtype=np.float32).tobytes())
    first = footprint(folder)
    assert first["bytes"] == 5000 + 20_000
    time.sleep(0.01)
    (folder / "saved_model.pb").touch()  # a later mtime changes nothing: mtimes are zeroed
    assert footprint(folder) == first
    # What it gzipped is a tar of both files, by relative path.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as archive:
        for name in ("saved_model.pb", "variables/variables.data"):
            info = archive.gettarinfo(str(folder / name), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(folder / name, "rb") as handle:
                archive.addfile(info, handle)
    assert first["gzip_bytes"] == len(buffer.getvalue())


def test_latency_times_single_examples_after_untimed_calls():
    seen = []

    def predict(inputs):
        seen.append(len(inputs["x"]))
        time.sleep(0.002)
        return inputs["x"]

    timed = latency(predict, {"x": np.zeros((1, 3))}, 7)
    assert seen == [1] * 9  # 2 untimed, 7 timed, each one example
    assert timed["calls"] == 7 and timed["batch_size"] == 1
    assert 2.0 <= timed["median_ms"] <= timed["p90_ms"] < 1000
    assert latency(predict, {"x": np.zeros((1, 3))}, 0) is None


def test_chunks_cover_every_example_in_order_and_undefined_metrics_are_null():
    x = {"a": np.arange(600), "b": np.arange(600) * 2}
    parts = list(chunks(x, 256))
    assert [len(p["a"]) for p in parts] == [256, 256, 88]
    assert np.array_equal(np.concatenate([p["b"] for p in parts]), x["b"])
    assert finite({"roc_auc": float("nan"), "accuracy": 0.5}) == {"roc_auc": None, "accuracy": 0.5}
