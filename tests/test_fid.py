"""FID as the field defines it (dlpipe/metrics/fid.py): InceptionV3's 2,048 pool features on
images prepared as the reference implementations prepare them, a saved extractor that gives
the same numbers when loaded back, and the real-against-real floor.

InceptionV3 runs with random weights (offline) on a handful of images: on this CPU each
image costs about 6 GFLOPs. The tests without TensorFlow (the floor's draw, metrics.json's
numbers, the recomputation's refusals) are not marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.errors import DataError


def _bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize without antialiasing, written out (pytorch-fid's
    `F.interpolate(mode="bilinear", align_corners=False)`): the oracle for the preparation."""
    height, width = image.shape[:2]

    def axis(n_in):
        source = np.maximum((np.arange(size) + 0.5) * (n_in / size) - 0.5, 0.0)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, n_in - 1), source - low

    y0, y1, wy = axis(height)
    x0, x1, wx = axis(width)
    top = image[y0][:, x0] * (1 - wx)[None, :, None] + image[y0][:, x1] * wx[None, :, None]
    bottom = image[y1][:, x0] * (1 - wx)[None, :, None] + image[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits().images[:, :, :, np.newaxis].astype(np.float32)  # 8 × 8 × 1, values 0..16


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    from dlpipe.metrics.fid import inception_v3

    return inception_v3("random", low=0.0, high=16.0, seed=3, batch_size=4)


@pytest.mark.slow
def test_images_are_prepared_as_the_reference_implementations_do(digits):
    from dlpipe.metrics.fid import inception_input

    prepared = np.asarray(inception_input(digits[:2], size=299, low=0.0, high=16.0))
    assert prepared.shape == (2, 299, 299, 3)
    expected = _bilinear(digits[0], 299) / 8.0 - 1.0  # 0..16 → −1..1, grey repeated over RGB
    np.testing.assert_allclose(prepared[0], np.repeat(expected, 3, axis=-1), atol=1e-5)
    assert prepared.min() >= -1.0 - 1e-6 and prepared.max() <= 1.0 + 1e-6
    with pytest.raises(DataError, match=r"N × H × W × 1 or 3, got shape \(2, 8, 8, 2\)"):
        inception_input(np.zeros((2, 8, 8, 2)), size=299, low=0.0, high=1.0)


@pytest.mark.slow
def test_inception_v3_gives_2048_features_and_fid_of_a_set_with_itself_is_0(digits, inception):
    from dlpipe.metrics.generative import fid

    features, probabilities = inception(digits[:6])
    assert features.shape == (6, 2048) and probabilities is None and not inception.probabilities
    assert np.isfinite(features).all() and features.std() > 0
    assert fid(features, features) == pytest.approx(0.0, abs=1e-6)
    # Batches of 4: the same features one image at a time.
    np.testing.assert_allclose(inception(digits[5:6])[0], features[5:6], rtol=1e-5, atol=1e-6)
    assert fid(features[:3], features[3:]) > 0


@pytest.mark.slow
def test_saved_extractor_gives_the_same_features(tmp_path, digits, inception):
    from dlpipe.metrics.fid import EXTRACTOR_FILE, EXTRACTOR_INFO, load_scorer

    described = inception.save(tmp_path)
    assert (tmp_path / EXTRACTOR_FILE).is_file() and (tmp_path / EXTRACTOR_INFO).is_file()
    assert described["prepare"] == {"size": 299, "low": 0.0, "high": 16.0}
    assert described["outputs"] == ["features"] and described["dimensions"] == 2048
    loaded = load_scorer(tmp_path)
    np.testing.assert_array_equal(loaded(digits[:3])[0], inception(digits[:3])[0])


@pytest.mark.slow
def test_a_weights_file_gives_that_network(tmp_path, digits, inception):
    from dlpipe.metrics.fid import inception_v3

    inception.model.save_weights(tmp_path / "inception.weights.h5")
    from_file = inception_v3(tmp_path / "inception.weights.h5", low=0.0, high=16.0, batch_size=4)
    np.testing.assert_array_equal(from_file(digits[:2])[0], inception(digits[:2])[0])
    with pytest.raises(DataError, match="no such InceptionV3 weights file"):
        inception_v3(tmp_path / "missing.h5", low=0.0, high=16.0)


def test_reference_images_are_a_seeded_draw_at_the_same_count(digits):
    from dlpipe.metrics.fid import reference_images

    drawn = reference_images(digits, 50, seed=4)
    assert drawn.shape == (50, 8, 8, 1)
    np.testing.assert_array_equal(drawn, reference_images(digits, 50, seed=4))
    assert not np.array_equal(drawn, reference_images(digits, 50, seed=5))
    rows = {digits[i].tobytes() for i in range(len(digits))}
    assert all(image.tobytes() in rows for image in drawn)
    assert len(reference_images(digits[:10], 50, seed=4)) == 10  # all of them when fewer


GAN_SPEC = """\
version: 1
name: gan-inception
task: generation
seed: 7
data:
  source: {type: npz, path: digits.npz}
  features: [{name: image, type: image}]
  split: {train: 0.8, validation: 0.0, test: 0.2}   # 32 training images, 8 held out
model: {type: gan, latent_size: 4, generator: {type: dcgan, filters: [8]}, discriminator: {type: dcgan, filters: [8]}}
training: {epochs: 1, batch_size: 16, progress: none, tensorboard: false}
evaluation:
  metrics: [fid]
  generation: {samples: 6, grid: 6, feature_extractor: {type: inception_v3, weights: random, batch_size: 8}}
export: {formats: [keras]}
"""


@pytest.mark.slow
def test_a_gan_run_scored_by_inception_v3_writes_fid_its_floor_and_counts(tmp_path, digits, capsys):
    """8 real test images, 6 generated, 6 training images for the floor: FID on 2,048
    dimensions; recomputed from the saved InceptionV3, the same numbers."""
    import json

    from dlpipe.metrics import fid
    from dlpipe.runner import run_spec

    np.savez(tmp_path / "digits.npz", image=digits[:40, :, :, 0])
    (tmp_path / "spec.yaml").write_text(GAN_SPEC)
    run = run_spec(tmp_path / "spec.yaml", out=tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert set(metrics) == {"fid", "fid_first", "fid_reference", "fid_samples", "fid_real_samples"}
    assert (metrics["fid_samples"], metrics["fid_real_samples"]) == (6, 8)
    assert metrics["fid"] > 0 and metrics["fid_reference"] > 0
    extractor = json.loads((run / "evaluation/generation.json").read_text())["feature_extractor"]
    assert extractor["type"] == "inception_v3" and extractor["dimensions"] == 2048
    assert extractor["prepare"] == {"size": 299, "low": 0.0, "high": 16.0}
    assert fid.main([str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["fid", "fid_reference", "fid_samples", "fid_real_samples"]
    assert all(line.endswith("difference 0") for line in lines)


def test_floor_scores_are_what_metrics_json_holds():
    from dlpipe.metrics.fid import Floor

    real = np.zeros((5, 2, 2, 1))
    floor = Floor(scorer=None, real=real, real_features=np.zeros((5, 3)), real_probabilities=None,
                  references=real[:4], value=1.5, count=4, described={})
    evaluations = [{"epoch": 1, "fid": 9.0, "inception_score": 2.0}, {"epoch": 2, "fid": 3.0, "inception_score": 4.0}]
    assert floor.scores(evaluations, ["fid", "inception_score"], 7.0) == {
        "fid": 3.0, "fid_first": 9.0, "fid_reference": 1.5, "fid_samples": 4, "fid_real_samples": 5,
        "inception_score": 4.0, "inception_score_first": 2.0, "inception_score_real": 7.0}
    assert floor.scores(evaluations, ["fid"]) == {"fid": 3.0, "fid_first": 9.0, "fid_reference": 1.5,
                                                  "fid_samples": 4, "fid_real_samples": 5}
    assert floor.describe() == {"fid_reference": 1.5, "real_images": 5, "training_images": 4, "generated_images": 4}


def test_recompute_refuses_a_folder_without_the_run_files_in_one_line(tmp_path, capsys):
    from dlpipe.metrics import fid

    assert fid.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path}: no evaluation/fid_samples.npz (the images a "
                                       "generation run's last FID read)\n")
    np.savez(tmp_path / "samples.npz", real=np.zeros(2))
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "samples.npz").rename(tmp_path / "evaluation" / "fid_samples.npz")
    assert fid.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path}: no feature_extractor.json (a generation run saves "
                                       "its feature extractor there)\n")
