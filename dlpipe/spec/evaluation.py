"""The `evaluation` section: which metrics, on which splits."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, WithJsonSchema

from dlpipe import registry
from dlpipe.errors import did_you_mean
from dlpipe.spec.base import ByType, PositiveInt, StrictModel, unknown_name
from dlpipe.spec.paths import AnyPath, FilePath

METRIC_NAMES = tuple(
    name for kind in registry.kinds() if kind.startswith("metric:") for name in registry.names(kind)
)


def _check_metric(name: str) -> str:
    if name not in METRIC_NAMES:
        hint = did_you_mean(name, METRIC_NAMES) or f"; choose from {', '.join(METRIC_NAMES)}"
        raise unknown_name("metric", name, hint)
    return name


Metric = Annotated[str, AfterValidator(_check_metric),
                   WithJsonSchema({"type": "string", "enum": list(METRIC_NAMES)})]


class ClassifierFeatures(StrictModel):
    """A small CNN classifier trained inside the pipeline, before the generative model (a GAN
    or a diffusion model), on the training split's images and the labels in column `labels`
    (the model itself may ignore them). FID
    compares its penultimate (dense) layer; the Inception Score reads its softmax. It is
    trained with the spec's seed, so FIDs of two runs with the same seed and data are comparable."""

    type: Literal["classifier"]
    """Picks this extractor: a classifier trained in the pipeline."""
    labels: str
    """The column of class labels (integers or names) that trains the classifier."""
    epochs: Annotated[int, Field(gt=0, le=200)] = 15
    """Epochs the feature classifier trains for."""
    units: Annotated[int, Field(gt=1, le=1024)] = 64
    """Width of the penultimate layer: the dimension of the FID features."""


class RunFeatures(StrictModel):
    """The classifier of an earlier `dlpipe run` (task classification) on the same kind of
    images: its `model.keras`. FID compares the output of `layer`; the Inception Score reads
    the model's class probabilities."""

    type: Literal["run"]
    """Picks this extractor: the classifier of an earlier run."""
    path: AnyPath
    """The run directory (or its model.keras); a relative path is resolved against the spec's folder."""
    layer: str | None = None
    """The layer whose output are the features; default: the layer before the output layer."""


class InceptionFeatures(StrictModel):
    """InceptionV3, the network FID was defined with: the 2,048 numbers of its average pool
    (no top, so no class probabilities: list only `fid` in evaluation.metrics). Images are
    prepared as the reference implementations do: grey repeated over 3 channels, resized to
    299 × 299 bilinearly, the data's value range scaled to −1..1. About 6 GFLOPs an image:
    on a CPU, expect tens of images a second. The run saves the network, so that its FID
    can be recomputed (feature_extractor.keras: about 90 MB in each run directory)."""

    type: Literal["inception_v3"]
    """Picks this extractor: Keras' InceptionV3."""
    weights: Literal["imagenet", "random"] | None = None
    """imagenet (the default without `path`): the ImageNet weights, downloaded by Keras on
    first use (87 MB, kept in ~/.keras/models/); only these give FIDs comparable with
    published ones. random: a seeded random network (tests; such an FID compares with
    nothing outside its run)."""
    path: FilePath | None = None
    """A local file of InceptionV3 weights without the top layers (Keras'
    `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`, or a `.weights.h5`), used
    instead of downloading; a relative path is resolved against the spec's folder."""
    batch_size: Annotated[int, Field(gt=0, le=1024)] = 32
    """Images per forward pass of the extractor."""


FeatureExtractor = Annotated[Union[ClassifierFeatures, RunFeatures, InceptionFeatures], ByType()]


class GenerationEvaluation(StrictModel):
    """FID and Inception Score of generated images during and after training (a GAN or a diffusion model)."""

    every: Annotated[int, Field(gt=0)] = 5
    """Evaluate after every this many epochs (and after the last)."""
    samples: Annotated[int, Field(gt=1, le=50_000)] | None = None
    """Generated images per evaluation; default: as many as the held-out real images. FID
    depends on this count: metrics.json holds it (`fid_samples`, `fid_real_samples`) and
    `fid_reference`, the FID of as many real training images against the same held-out
    images with the same extractor: the floor of an FID at these counts."""
    feature_extractor: FeatureExtractor
    """The network whose features FID compares. FID values depend on it: compare only FIDs
    measured with the same extractor."""
    grid: Annotated[int, Field(gt=0, le=256)] = 40
    """Generated images drawn in each sample grid (plots/samples_epoch_NNN.png), from one
    fixed set of latent vectors, so grids of different epochs show the same draws."""


ExplainMethod = Literal["integrated_gradients", "saliency", "permutation", "shap"]
RowPosition = Annotated[int, Field(ge=0, le=1_000_000)]


class Explain(StrictModel):
    """Explain the trained model at the end of the run (`dlpipe explain RUN` does the same
    afterwards): global importance per feature and local explanations of chosen test rows,
    written to explanations/ (a JSON file per method) and shown in report.html. Every method
    reads the model's raw inputs; normalization and lookups inside the model stay inside
    (categorical and text features are attributed at their one-hot or embedding output and
    summed per feature or per token)."""

    methods: list[ExplainMethod] | None = None
    """Default: integrated_gradients, plus saliency for an image model and permutation for
    tabular inputs (one value per feature). shap (a kernel explainer on a background sample)
    needs the `explain` extra: `pip install 'dlpipe[explain]'`."""
    rows: Annotated[list[RowPosition], Field(min_length=1, max_length=100)] | Annotated[int, Field(gt=0, le=100)] = 3
    """Local explanations: a count (the first N rows of the test split) or the positions of
    test rows, e.g. [0, 7, 12]."""
    examples: Annotated[int, Field(gt=0, le=10_000)] = 100
    """Test rows (the first ones) whose mean absolute attribution is each feature's global
    importance (integrated gradients, saliency, shap)."""
    steps: Annotated[int, Field(ge=2, le=4096)] = 64
    """Integrated gradients: steps of the path from the baseline (trapezoid rule). An example
    whose attributions miss f(x) − f(baseline) by more than `tolerance` of it is computed
    again with twice the steps, up to 64 × steps; explanations/integrated_gradients.json
    gives the steps and the error of each example."""
    tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.01
    """Integrated gradients: the completeness error allowed, relative to |f(x) − f(baseline)|."""
    repeats: Annotated[int, Field(gt=0, le=100)] = 5
    """Permutation importance: shuffles of each feature on the validation split; the
    importance is the mean loss increase, the spread its standard deviation."""
    background: Annotated[int, Field(gt=0, le=1000)] = 50
    """SHAP: training rows drawn (seeded) as the background sample the explainer replaces
    features with."""


class Evaluation(StrictModel):
    metrics: list[Metric] | None = None
    """Names as in metrics.json; by default accuracy and f1_macro for classification,
    mae, mse, rmse and r2 for regression, map_50 and map for detection, reconstruction_mse
    and (with a target) knn_accuracy for embedding, fid and inception_score for generation.
    precision, recall and f1 score the positive class (the second of two classes); for more
    classes, or multi-label targets, use their _macro, _micro or _weighted averages."""
    splits: list[Literal["validation", "test"]] = ["validation", "test"]
    """The splits scored into metrics.json (the training split never is)."""
    baselines: bool = True
    """Classification, regression and forecasting: also fit plain predictors on the training
    split and score them on the same splits with the same metrics — the trivial one (majority
    class, mean, last value and seasonal naive), a linear model (logistic or ridge regression)
    and scikit-learn's HistGradientBoosting — into metrics.json under `baselines` and the
    report, so a run says whether the network beat them. `false` skips them."""
    knn_neighbors: PositiveInt = 5
    """Embedding task: neighbours that vote in knn_accuracy (a k-nearest-neighbours
    classifier fitted on the training split's embeddings and labels, scored on each split)."""
    generation: GenerationEvaluation | None = None
    """Task generation: how the generated images are scored (required there). They are
    compared with the held-out real images of the test split, never the training split."""
    explain: Explain | None = None
    """Explain the model after the run (classification and regression): which methods, which
    rows. Absent: no explanations (run `dlpipe explain RUN` any time later)."""
