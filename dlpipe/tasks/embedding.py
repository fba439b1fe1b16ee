"""Task embedding: an autoencoder learns the features through a narrow latent vector; its
encoder, which maps an example to that vector, is the product.

Pipeline: pipelines/embedding.py. A target, if given, only scores the embedding (kNN accuracy).
"""

from __future__ import annotations

from dlpipe.tasks.base import Found, Task
from dlpipe.tasks.common import EVERY_TASK, SUPERVISED_DATA, SUPERVISED_EXPORT, SUPERVISED_TRAINING


def check_embedding(spec) -> Found:
    if spec.model.type != "autoencoder":
        yield (("model", "type"), f"task embedding trains an autoencoder and exports its encoder; "
               f"set model.type to autoencoder, not {spec.model.type}")
    for i, name in enumerate(spec.evaluation.metrics or []):
        if name == "knn_accuracy" and spec.data.target is None:
            yield (("evaluation", "metrics", i), "knn_accuracy scores embeddings by their labels: "
                   "set data.target (the label column), or drop the metric")


TASK = Task(
    name="embedding",
    pipeline="embedding",
    summary="learn an autoencoder on the features alone; exports its encoder (example → vector)",
    target="optional_classes",
    output="embedding",
    default_metrics=("reconstruction_mse", "knn_accuracy"),
    unlabelled_drop=("knn_accuracy",),
    own_loss="the mean squared reconstruction error",
    training_metric="reconstruction_mse",
    objective="reconstruction_mse",
    commands=frozenset({"evaluate", "export", "predict", "tune", "deep", "resume"}),
    honours=(*EVERY_TASK, "backend", *SUPERVISED_DATA, "data.target.name", "data.target.class_names",
             "data.target.on_unknown",
             "prepare", "model", *SUPERVISED_TRAINING, "evaluation.metrics", "evaluation.splits",
             "evaluation.knn_neighbors", *SUPERVISED_EXPORT, "tuning"),
    refusals={"model.head": "task embedding has no head: the encoder's latent vector is the output "
                            "(remove model.head, or use task classification for a head on the latent vector)",
              "model.reconstruction_weight": "task embedding trains on the reconstruction error alone; "
                                             "remove reconstruction_weight",
              "training.loss": "task embedding trains on the mean squared reconstruction error; remove loss"},
    checks=(check_embedding,),
)
