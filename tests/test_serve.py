"""`dlpipe serve`: a real server process on 127.0.0.1, asked what `dlpipe predict` is asked.

Each test starts `python -m dlpipe serve RUN` (uvicorn) on a free port of 127.0.0.1 and stops
it with SIGTERM; the answers are compared with `dlpipe predict` on the same rows."""

from __future__ import annotations

import base64
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import _runs
from _server import Server
from dlpipe.cli import main
from dlpipe.serving import BadRequest, instances

pytestmark = pytest.mark.slow

TABULAR = {"task": "classification", "class_names": ["no", "yes"], "output": {"units": 1, "activation": "sigmoid"},
           "inputs": [{"name": "mean radius", "input": "mean_radius", "type": "numerical", "shape": [1]},
                      {"name": "plan", "input": "plan", "type": "categorical", "shape": [1]}]}


def predict_cli(model: Path, data: Path, out: Path) -> list[dict]:
    result = CliRunner().invoke(main, ["predict", str(model), str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def assert_same(served: list[dict], predicted: list[dict], tolerance: float = 1e-6) -> float:
    """Same classes in the same order; probabilities within `tolerance`; returns the largest difference."""
    assert [r["prediction"] for r in served] == [r["prediction"] for r in predicted]
    diff = max(abs(a["probabilities"][k] - b["probabilities"][k])
               for a, b in zip(served, predicted) for k in b["probabilities"])
    assert diff <= tolerance
    return diff


def breast_cancer_rows(count: int) -> list[dict]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    return [{k: float(v) for k, v in row.items()} for row in frame.iloc[::569 // count][:count].to_dict("records")]


def test_request_shapes_of_tensorflow_serving_become_records():
    """No server: the row and columnar formats, one input's bare values, and their refusals."""
    rows, columnar = instances({"instances": [{"mean radius": 1.0, "plan": "a"}]}, TABULAR)
    assert rows == [{"mean radius": 1.0, "plan": "a"}] and not columnar
    rows, columnar = instances({"signature_name": "serving_default",
                                "inputs": {"mean_radius": [[1.0], [2.0]], "plan": [["a"], ["b"]]}}, TABULAR)
    assert rows == [{"mean_radius": [1.0], "plan": ["a"]}, {"mean_radius": [2.0], "plan": ["b"]}] and columnar
    one = {**TABULAR, "inputs": TABULAR["inputs"][:1]}
    assert instances({"instances": [3.0, [4.0]]}, one)[0] == [{"mean_radius": 3.0}, {"mean_radius": [4.0]}]
    assert instances({"inputs": [3.0, 4.0]}, one)[0] == [{"mean_radius": 3.0}, {"mean_radius": 4.0}]
    for body, message in [([1], "expected a JSON object"), ({"rows": []}, "unknown key 'rows'"),
                          ({"instances": [], "inputs": {}}, "exactly one of"), ({"instances": []}, "non-empty list"),
                          ({"instances": [{}], "signature_name": "other"}, "one signature"),
                          ({"inputs": {"mean_radius": [1], "plan": ["a", "b"]}}, "same, non-zero number")]:
        with pytest.raises(BadRequest, match=message):
            instances(body, TABULAR)


def test_tabular_answers_equal_dlpipe_predict_and_a_bad_request_is_one_line(tmp_path):
    run = _runs.quick_tabular()
    rows = breast_cancer_rows(40)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    predicted = predict_cli(run, data, tmp_path / "predicted.jsonl")
    name = "breast-cancer-mlp"
    with Server(run, "--max-batch", "16") as server:
        status, answer = server.request(f"/v1/models/{name}:predict", {"instances": rows})
        assert status == 200
        assert_same(answer["predictions"], predicted)
        assert set(answer["predictions"][0]) == {"prediction", "probabilities"}

        # One row per request from 8 threads at once: batched together, the same answers.
        with ThreadPoolExecutor(8) as pool:
            single = list(pool.map(lambda row: server.request(f"/v1/models/{name}:predict", {"instances": [row]}),
                                   rows))
        assert {s for s, _ in single} == {200}
        assert_same([a["predictions"][0] for _, a in single], predicted)

        # A TensorFlow Serving client's request, unchanged: signature inputs by their
        # SavedModel names, each value a (1,)-shaped list; versioned path; columnar form.
        tf_rows = [{k.replace(" ", "_"): [v] for k, v in row.items()} for row in rows[:5]]
        status, answer = server.request(f"/v1/models/{name}/versions/1:predict",
                                        {"signature_name": "serving_default", "instances": tf_rows})
        assert status == 200
        assert_same(answer["predictions"], predicted[:5])
        columns = {key: [row[key] for row in tf_rows] for key in tf_rows[0]}
        status, answer = server.request(f"/v1/models/{name}:predict", {"inputs": columns})
        assert status == 200 and answer["outputs"]["prediction"] == [r["prediction"] for r in predicted[:5]]
        status, answer = server.request(f"/v1/models/{name}")
        assert answer["model_version_status"][0]["state"] == "AVAILABLE"
        status, answer = server.request(f"/v1/models/{name}/metadata")
        signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert signature["inputs"]["mean_radius"]["tensor_shape"]["dim"] == [{"size": "-1"}, {"size": "1"}]
        assert answer["dlpipe"]["class_names"] == ["malignant", "benign"]
        assert server.request("/v1/models/other:predict", {"instances": rows[:1]})[0] == 404

        # Bad requests: 400, the one line `dlpipe predict` gives for the same row; the server carries on.
        missing = [{k: v for k, v in rows[0].items() if k != "mean texture"}]
        wrong = [{**rows[0], "mean radius": "large"}]
        bad = {
            b'{"instances": [{"mean radius": 1.0,': "malformed JSON: Expecting property name enclosed in double quotes",
            json.dumps({"instances": missing}).encode(): "instances[0]: no column 'mean texture'",
            json.dumps({"instances": wrong}).encode(): "instances[0], column 'mean radius': expected a number, got 'large'",
            b'{"instances": ["' + b"x" * (10 << 20) + b'"]}': "the request body has 10,485,779 bytes; this server takes "
                                                            "at most 4,194,304 (dlpipe serve --max-body)",
        }
        for body, message in bad.items():
            status, answer = server.request(f"/v1/models/{name}:predict", body)
            assert status == 400 and list(answer) == ["error"] and "\n" not in answer["error"]
            assert answer["error"].startswith(message), answer
            status, answer = server.request(f"/v1/models/{name}:predict", {"instances": rows[:2]})
            assert status == 200 and len(answer["predictions"]) == 2
        wrong_file = tmp_path / "wrong.jsonl"
        wrong_file.write_text(json.dumps(wrong[0]) + "\n")
        result = CliRunner().invoke(main, ["predict", str(run), str(wrong_file)])
        assert f"{wrong_file}: line 1, column 'mean radius': expected a number, got 'large'" in result.output

        # SIGTERM while a request is in flight (its body half sent): the request is answered, then the server exits 0.
        body = json.dumps({"instances": rows[:3]}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
            client.sendall(f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
            time.sleep(0.5)
            server.process.send_signal(15)
            time.sleep(0.5)
            client.sendall(body[100:])
            answer = client.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 200") and b'"predictions"' in answer
        assert server.stop() == 0
    assert "[dlpipe] serve: stopped by SIGTERM" in server.stderr and "4 bad requests" in server.stderr


def test_images_as_base64_get_the_answers_of_dlpipe_predict_on_the_files(tmp_path):
    import tensorflow as tf
    from sklearn.datasets import load_digits

    run = _runs.quick_digits()
    folder = tmp_path / "digits"
    folder.mkdir()
    encoded = []
    for i, scan in enumerate(load_digits().images[:12]):
        pixels = np.round(scan * 255 / 16).astype(np.uint8)[..., np.newaxis]
        if i % 2:  # larger RGB images are converted as for files
            pixels = np.repeat(np.kron(pixels, np.ones((3, 3, 1), np.uint8)), 3, axis=-1)
        png = tf.io.encode_png(pixels).numpy()
        (folder / f"{i:02d}.png").write_bytes(png)
        encoded.append(base64.b64encode(png).decode())
    predicted = predict_cli(run, folder, tmp_path / "predicted.jsonl")
    predicted = [{k: v for k, v in record.items() if k != "file"} for record in predicted]
    with Server(run) as server:
        path = "/v1/models/digits-cnn:predict"
        forms = [{"instances": [{"b64": text} for text in encoded]},               # TF Serving's binary form
                 {"instances": [{"image": {"b64": text}} for text in encoded]},    # by input name
                 {"instances": encoded},                                            # bare base64
                 {"inputs": {"image": [{"b64": text} for text in encoded]}}]       # columnar
        for form in forms:
            status, answer = server.request(path, form)
            assert status == 200, answer
            served = answer.get("predictions") or [
                {"prediction": p, "probabilities": q}
                for p, q in zip(answer["outputs"]["prediction"], answer["outputs"]["probabilities"])]
            assert_same(served, predicted)
        status, answer = server.request(path, {"instances": ["bm90IGFuIGltYWdl"]})  # "not an image"
        assert status == 400 and answer["error"] == "instances[0], column 'image': cannot decode as an image"
        status, answer = server.request(path, {"instances": ["%%%"]})
        assert status == 400 and "not base64" in answer["error"]
        status, answer = server.request(path, {"instances": [[[0.0] * 8] * 7]})
        assert status == 400 and "expected 64 value(s) (shape (8, 8, 1)), got 56" in answer["error"]
        assert server.request(path, {"instances": encoded[:1]})[0] == 200
