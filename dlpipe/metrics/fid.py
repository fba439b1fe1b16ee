"""FID as the field defines it, with its floor, recomputable from outside the run.

Three pieces every generation pipeline (the GAN's, a diffusion model's) shares:

- **Extractors** (`Scorer`, metrics/scorer.py): images → (features, class probabilities or None), in fixed
  batches. `inception_v3` is the network FID was defined with (Heusel et al., 2017): Keras'
  InceptionV3 without its top, the 2,048 numbers of its global average pool. Images are
  prepared as the reference implementations (TTUR's TensorFlow graph, pytorch-fid) do:
  grey images repeated over 3 channels, resized to 299 × 299 bilinearly (half-pixel
  centres, no antialiasing: pytorch-fid's `interpolate(..., align_corners=False)`), and
  scaled from the data's value range to −1..1 (what InceptionV3's `preprocess_input` does
  to 0..255). Weights: `imagenet` (Keras downloads them once, 87 MB, into
  ~/.keras/models/; only these make FIDs comparable with published ones), a local weights
  file, or `random` (for tests: such an FID compares with nothing outside its run). The
  small classifier a run trains itself is a `Scorer` too (metrics/generative.py).
- **The floor** (`reference_images`, `fid_reference`): FID depends on the sample count
  (two samples of one distribution score about 6 at n = 359 and about 0.05 at n = 50,000,
  64 dimensions). Beside every FID a run writes `fid_reference`: the FID of real images
  against real images, with the same extractor and the same counts — `count` training
  images (a seeded draw without replacement) against the same held-out test images the
  generated ones are compared with. It is what a generator that drew exactly the training
  images would score: an FID near it cannot be improved at this n.
- **Recomputation** (`save`, `load_scorer`, `recompute`): a run saves its extractor
  (feature_extractor.keras, with feature_extractor.json: outputs and preparation) and the
  images its last FID read (evaluation/fid_samples.npz: real, generated, reference), so

      python -m dlpipe.metrics.fid RUN_DIR

  recomputes `fid` and `fid_reference` from those files alone and compares them with the
  run's metrics.json (exit 1 when they differ).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dlpipe.errors import DataError, DlpipeError
from dlpipe.metrics.scorer import EXTRACTOR_FILE, EXTRACTOR_INFO, Scorer, inception_input  # noqa: F401

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048
SAMPLES_FILE = ("evaluation", "fid_samples.npz")


def inception_v3(weights: str | Path | None, *, low: float, high: float, seed: int = 0,
                 batch_size: int = 32) -> Scorer:
    """InceptionV3's pooled features. `weights`: "imagenet" (downloaded by Keras when not
    cached), "random" (seeded initialisation: tests), or the path of a weights file of
    InceptionV3 without its top layers (Keras' `..._notop.h5`)."""
    import keras

    shape = (INCEPTION_SIZE, INCEPTION_SIZE, 3)
    if weights == "random":
        keras.utils.set_random_seed(seed)
        source = None
    elif weights == "imagenet":
        source = "imagenet"
    else:
        path = Path(weights)
        if not path.is_file():
            raise DataError(f"{path}: no such InceptionV3 weights file")
        source = str(path)
    try:
        network = keras.applications.InceptionV3(include_top=False, weights=source, pooling="avg",
                                                 input_shape=shape)
    except ValueError as err:
        raise DataError(f"{weights}: not InceptionV3 weights without the top layers: {_first_line(err)}") from None
    except Exception as err:  # noqa: BLE001  the download fails in urllib, http or Keras' own wrapper
        if weights != "imagenet":
            raise DataError(f"{weights}: cannot load InceptionV3 weights: {_first_line(err)}") from None
        raise DataError("cannot download InceptionV3's ImageNet weights (offline?): "
                        f"{_first_line(err)}; download them once where a network is reachable (Keras keeps "
                        "them in ~/.keras/models/), or give feature_extractor.path: a local weights file") from None
    return Scorer(network, batch_size=batch_size, prepare={"size": INCEPTION_SIZE, "low": float(low),
                                                           "high": float(high)},
                  info={"type": "inception_v3", "weights": str(weights), "layer": "avg_pool",
                        "dimensions": INCEPTION_FEATURES})


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# The floor --------------------------------------------------------------------------------


def reference_images(train_images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` training images (all of them if there are fewer), drawn without replacement
    with the run's seed: the real side of `fid_reference`."""
    rng = np.random.default_rng([seed, 21])
    n = min(count, len(train_images))
    return train_images[np.sort(rng.choice(len(train_images), size=n, replace=False))]


def fid_reference(scorer: Scorer, real_features: np.ndarray, references: np.ndarray) -> float:
    """FID of real images against the held-out real images (features `real_features`)."""
    from dlpipe.metrics.generative import fid

    return fid(real_features, scorer(references)[0])


class Floor:
    """A generation pipeline's FID bookkeeping, in three calls:

        floor = Floor.measure(scorer, run_dir, real, train_images, count, seed)   # features stage
        ... floor.real_features is what every evaluation's FID compares with ...
        scores = floor.scores(evaluations, wanted, inception_score_real)          # metrics.json "test"
        floor.save_samples(run_dir, generated)                                    # the last FID's images

    `measure` saves the extractor into the run directory, extracts the held-out real images'
    features (and class probabilities, for the Inception Score of real images) and computes
    fid_reference with `count` training images."""

    def __init__(self, scorer: Scorer, real: np.ndarray, real_features: np.ndarray,
                 real_probabilities: np.ndarray | None, references: np.ndarray, value: float, count: int,
                 described: dict):
        self.scorer, self.real, self.real_features = scorer, real, real_features
        self.real_probabilities = real_probabilities  # None for an extractor without classes
        self.references, self.value, self.count, self.described = references, value, count, described

    @classmethod
    def measure(cls, scorer: Scorer, run_dir: Path, real: np.ndarray, train_images: np.ndarray, count: int,
                seed: int) -> "Floor":
        described = scorer.save(run_dir)
        real_features, real_probabilities = scorer(real)
        references = reference_images(train_images, count, seed)
        value = fid_reference(scorer, real_features, references)
        print(f"[dlpipe] fid_reference {value:.3f}: {len(references)} training images against the {len(real)} "
              "test images (the floor of FID at these counts)", file=sys.stderr, flush=True)
        return cls(scorer, real, real_features, real_probabilities, references, value, count, described)

    def describe(self) -> dict:
        """For evaluation/generation.json."""
        return {"fid_reference": self.value, "real_images": int(len(self.real)),
                "training_images": int(len(self.references)), "generated_images": int(self.count)}

    def scores(self, evaluations: list[dict], wanted, inception_score_real: float | None = None) -> dict:
        """metrics.json's numbers: fid, fid_first, fid_reference, fid_samples, fid_real_samples
        (when `fid` is wanted), and the Inception Scores where the evaluations have them."""
        first, last = evaluations[0], evaluations[-1]
        scores = {}
        if "fid" in wanted:
            scores.update(fid=last["fid"], fid_first=first["fid"], fid_reference=self.value,
                          fid_samples=int(self.count), fid_real_samples=int(len(self.real)))
        if "inception_score" in wanted and "inception_score" in last:
            scores.update(inception_score=last["inception_score"], inception_score_first=first["inception_score"])
            if inception_score_real is not None:
                scores["inception_score_real"] = inception_score_real
        return scores

    def save_samples(self, run_dir: Path, generated: np.ndarray) -> Path:
        return save_samples(run_dir, self.real, generated[:self.count], self.references)


def save_samples(run_dir: Path, real: np.ndarray, generated: np.ndarray, reference: np.ndarray) -> Path:
    """evaluation/fid_samples.npz: the images the run's last FID and fid_reference read."""
    from dlpipe.rundir import atomic_path

    path = Path(run_dir).joinpath(*SAMPLES_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, real=np.asarray(real), generated=np.asarray(generated),
                     reference=np.asarray(reference))
    return path


# Recomputation from the run directory ------------------------------------------------------


def load_scorer(run_dir: Path) -> Scorer:
    """The extractor a run saved (`Scorer.save`), loaded in safe mode."""
    from dlpipe.modelfile import load_keras_model

    run_dir = Path(run_dir)
    info_path = run_dir / EXTRACTOR_INFO
    if not info_path.is_file():
        raise DlpipeError(f"{run_dir}: no {EXTRACTOR_INFO} (a generation run saves its feature extractor there)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        batch_size, prepare = int(info["batch_size"]), info.get("prepare")
    except (ValueError, KeyError, TypeError) as err:
        raise DlpipeError(f"{info_path}: unreadable ({err})") from None
    model = load_keras_model(run_dir / info.get("file", EXTRACTOR_FILE))
    return Scorer(model, batch_size=batch_size, prepare=prepare, info=info)


def recompute(run_dir: Path) -> dict[str, float]:
    """fid and fid_reference from the run's saved extractor and images alone."""
    from dlpipe.metrics.generative import fid

    run_dir = Path(run_dir)
    path = run_dir.joinpath(*SAMPLES_FILE)
    if not path.is_file():
        raise DlpipeError(f"{run_dir}: no {'/'.join(SAMPLES_FILE)} (the images a generation run's last FID read)")
    scorer = load_scorer(run_dir)
    with np.load(path, allow_pickle=False) as arrays:
        real, generated, reference = arrays["real"], arrays["generated"], arrays["reference"]
    real_features = scorer(real)[0]
    return {"fid": fid(real_features, scorer(generated)[0]),
            "fid_reference": fid(real_features, scorer(reference)[0]),
            "fid_samples": int(len(generated)), "fid_real_samples": int(len(real))}


def main(argv: list[str] | None = None) -> int:
    """`python -m dlpipe.metrics.fid RUN_DIR [--tolerance T]`: recompute and compare."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlpipe.metrics.fid",
                                     description="Recompute a generation run's FID and fid_reference from "
                                                 "its saved feature extractor and images; compare with "
                                                 "metrics.json.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest difference allowed, relative to the value (default 1e-9)")
    args = parser.parse_args(argv)
    try:
        values = recompute(args.run_dir)
    except DlpipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        recorded = json.loads((args.run_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    except (OSError, ValueError, KeyError):
        recorded = {}
    same = True
    for name, value in values.items():
        saved = recorded.get(name)
        if saved is None:
            print(f"{name} {value!r} (not in metrics.json)")
            continue
        difference = abs(value - saved)
        ok = difference <= args.tolerance * max(1.0, abs(saved))
        same = same and ok
        print(f"{name} {value!r}  metrics.json {saved!r}  difference {difference:.3g}{'' if ok else '  DIFFERS'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
