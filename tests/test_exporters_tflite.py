"""TFLite and text inputs: the lookup pre-step, what verification catches, what is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import _runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def churn():
    """(model, held-out inputs, the model's outputs on them) of the churn run."""
    import keras

    from dlpipe.data.pipeline import predict
    from dlpipe.data.prepare import prepare
    from dlpipe.exporters.stage import held_out
    from dlpipe.spec import load_spec

    root = _runs.churn()
    spec = load_spec(root / "spec.yaml")
    data = prepare(spec, _runs.FIXTURES, None)
    model = keras.saving.load_model(root / "model.keras")
    inputs = held_out(spec, data)
    return model, inputs, predict(model, inputs)


def test_tflite_files_take_indices_and_lookup_json_holds_the_vocabularies():
    from ai_edge_litert.interpreter import Interpreter

    directory = _runs.churn() / "export" / "tflite"
    assert sorted(p.name for p in directory.iterdir()) == ["lookup.json", "model_float32.tflite", "model_int8.tflite"]
    assert json.loads((directory / "lookup.json").read_text()) == {
        "plan": ["[UNK]", "basic", "plus", "pro"], "region": ["[UNK]", "east", "north", "south", "west"]}
    runner = Interpreter(model_path=str(directory / "model_int8.tflite")).get_signature_runner("serving_default")
    dtypes = {name: details["dtype"] for name, details in runner.get_input_details().items()}
    assert dtypes == {"plan": np.int64, "region": np.int64, "tenure_months": np.float32}


def test_the_pre_step_is_the_models_own_lookup(churn):
    import keras
    import tensorflow as tf

    from dlpipe.exporters.tflite import lookup_indices

    model, _, _ = churn
    layer = model.get_layer("plan_lookup")
    assert isinstance(layer, keras.layers.StringLookup)
    values = np.array([["pro"], ["basic"], ["enterprise"], [""], ["plus"], ["[UNK]"], ["Basic"]], dtype=object)
    expected = layer(tf.constant(values.astype(str))).numpy()
    vocabulary = [str(token) for token in layer.get_vocabulary()]
    np.testing.assert_array_equal(lookup_indices(values, vocabulary), expected)
    np.testing.assert_array_equal(expected.ravel(), [3, 1, 0, 0, 2, 0, 0])


def test_a_broken_pre_step_fails_verification(churn, tmp_path):
    from dlpipe.exporters import tflite
    from dlpipe.exporters.verify import compare_values, judge, run_and_compare
    from dlpipe.spec.export import Tolerance

    _, inputs, reference = churn
    shutil.copy(_runs.churn() / "export" / "tflite" / "model_float32.tflite", tmp_path)
    vocabularies = json.loads((_runs.churn() / "export" / "tflite" / "lookup.json").read_text())
    # Sorted the other way round: every known plan gets another plan's index.
    vocabularies["plan"] = ["[UNK]", *reversed(vocabularies["plan"][1:])]
    (tmp_path / "lookup.json").write_text(json.dumps(vocabularies))
    result = run_and_compare(tflite.load(tmp_path / "model_float32.tflite"), inputs, reference,
                             lambda ref, out: compare_values(ref, out, classes=True))
    assert result["agreement"] < 0.9, result  # 0.654 measured
    assert judge(result, Tolerance(agreement=0.9)) == [f"class agreement {result['agreement']:.4f} is below 0.9"]


def test_a_tflite_file_with_the_lookup_inside_fails_when_run_and_is_removed(churn, tmp_path):
    """What the pre-step avoids: converted as is, the file runs for a batch of 81 but fails
    when first called with one example. Verification catches it and removes the file."""
    from dlpipe.exporters import stage, tflite
    from dlpipe.exporters.base import Artifact, ExportJob
    from dlpipe.spec.export import Tolerance

    model, inputs, reference = churn
    job = ExportJob(None, {}, {})
    try:
        path = tmp_path / "model_float32.tflite"
        path.write_bytes(tflite.convert(job.saved_model(model), "float32", None))
    finally:
        job.cleanup()
    assert np.abs(tflite.load(path)(inputs) - reference).max() <= 1e-4  # a full batch works
    from dlpipe.exporters.verify import compare_values

    subject = stage.Subject(model, inputs, lambda ref, out: compare_values(ref, out, classes=True), {}, {})
    entry, runner = stage._verify(tflite.FORMAT, Artifact("tflite/float32", path), subject, reference,
                                  Tolerance(max_abs_diff=1e-4))
    assert entry["passed"] is False and runner is None  # nothing left to score the test split with
    assert entry["error"].startswith("fails when run (RuntimeError: ")
    assert "RESHAPE" in entry["error"] and entry["error"].endswith("; the file was removed")
    assert not path.exists()


def test_text_that_reaches_more_than_its_lookup_is_refused_by_name():
    import keras

    from dlpipe.errors import StageError
    from dlpipe.exporters.tflite import without_string_lookups

    text = keras.Input(shape=(1,), dtype="string", name="city")
    first = keras.layers.StringLookup(vocabulary=["a", "b"], name="city_lookup")(text)
    second = keras.layers.StringLookup(vocabulary=["b", "c"], name="city_lookup_2")(text)
    joined = keras.layers.Concatenate()([keras.layers.CategoryEncoding(3, output_mode="one_hot")(first),
                                         keras.layers.CategoryEncoding(3, output_mode="one_hot")(second)])
    model = keras.Model({"city": text}, keras.layers.Dense(1)(joined))
    with pytest.raises(StageError) as refused:
        without_string_lookups(model)
    assert str(refused.value) == (
        "export: tflite: input 'city' feeds two StringLookup layers ('city_lookup', 'city_lookup_2'); TFLite "
        "cannot run text lookups reliably, so dlpipe does not write a file that may fail when run. Leave tflite "
        "out of export.formats")
