"""Explaining a trained model: which inputs moved its output, globally and for one example.

    attribution.py   where each feature is attributed inside the model, gradients there
    methods.py       integrated gradients, saliency, permutation importance, SHAP, the deletion check
    stage.py         the explain stage: the methods that fit, run on a run's splits → explanations/

Every method reads the model's raw inputs, as `dlpipe predict` does. Gradient methods
attribute a numerical feature at its normalized value (baseline 0, the training mean), a
categorical or text feature at its one-hot or embedding output (baseline the zero vector),
summed per feature or per token, and an image at its raw pixels (baseline black).
"""
