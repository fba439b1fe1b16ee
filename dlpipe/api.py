"""dlpipe's Python API: what the `dlpipe` command does, as functions that return data.

    import dlpipe
    problems = dlpipe.validate("spec.yaml")                  # [] when valid
    spec = dlpipe.load_spec("spec.yaml", overrides={"training.epochs": 3})
    run = dlpipe.run("spec.yaml", overrides={"training.epochs": 3})
    run.metrics["test"]["accuracy"], run.history["val_loss"], run.path
    dlpipe.predict(run, [{"mean radius": 17.99, ...}])        # records, as `dlpipe predict` writes them
    dlpipe.Run.open("runs/breast-cancer-mlp-20261207-101500")

The CLI (dlpipe/cli.py) parses its arguments and calls these. Importing this module imports
no TensorFlow: `run` and `predict` import it when they start working.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlpipe.errors import DlpipeError
from dlpipe.rundir import read_history

Overrides = Mapping[str, Any] | Sequence[str] | None
"""{"training.epochs": 3} (any value YAML can hold), or `--set` strings ["training.epochs=3"]."""


def override_strings(overrides: Overrides) -> list[str]:
    """`--set KEY=VALUE` strings from a mapping of dotted keys to values (JSON is YAML)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError("overrides: expected a mapping {'training.epochs': 3} or a list of 'KEY=VALUE' strings, "
                        f"got the string {overrides!r}")
    return [str(item) for item in overrides]


def load_spec(path: str | Path, overrides: Overrides = None):
    """The validated `Spec` of a spec file; a `SpecError` (every problem, located) if invalid."""
    from dlpipe.spec import load_spec as load

    return load(path, override_strings(overrides))


def validate(path: str | Path, overrides: Overrides = None, *, cache: bool = True) -> list:
    """Every problem of a spec file (`Problem`s: file, line, column, path, message); [] when
    valid. As `dlpipe validate`: a valid spec's data files are looked at cheaply (they exist,
    their headers hold the named columns); an unchanged file's result is remembered, and
    replayed while the data files look the same, unless `cache` is off."""
    from dlpipe.errors import Problem
    from dlpipe.limits import TooLarge, read_spec_bytes
    from dlpipe.validation_cache import Observations, ValidationCache

    sets = tuple(override_strings(overrides))
    spec = str(path)
    store = ValidationCache(enabled=cache)
    try:
        data = read_spec_bytes(spec)
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text does
    except (OSError, UnicodeDecodeError, TooLarge):  # the checker words these errors
        from dlpipe.spec import check_files

        return check_files([spec], sets)
    entry = store.entry(spec, data, sets)
    remembered = store.get(entry)
    if remembered is not None:
        return [Problem(**problem) for problem in remembered]
    import yaml

    from dlpipe.yamlbounds import refusal

    # A YAML bomb is refused before Pydantic loads (the same problem the spec loader reports).
    refused = refusal(text, [getattr(yaml, "CSafeLoader", yaml.SafeLoader), yaml.SafeLoader])
    if refused is not None:
        problems = [Problem(spec, *refused[:2], "", refused[2])]
        store.put(entry, [problem.to_dict() for problem in problems])
        return problems
    from dlpipe.spec import check_text

    observed = Observations()  # what the check saw of the data files: a replay needs the same
    problems = check_text(spec, text, sets, observed=observed)
    store.put(entry, [problem.to_dict() for problem in problems], observed)
    return problems


def run(spec: str | Path | Mapping, overrides: Overrides = None, out: str | Path | None = None, *,
        resume: bool = False, cache: bool = True, allow_imports: Sequence[str] = (),
        command: list[str] | None = None) -> "Run":
    """Run a spec (a file, or a mapping of its keys: relative data paths then resolve against
    the current folder) into `out` (default runs/<name>-<time>) and return the finished `Run`.
    Exactly what `dlpipe run` does (`allow_imports`: its --allow-imports, the modules of the
    spec's model.allow_imports you trust); errors are `DlpipeError`s (one line each)."""
    import tempfile

    from dlpipe.imports import allowed
    from dlpipe.runner import run_spec

    sets = override_strings(overrides)
    command = command or ["dlpipe.run", str(spec) if not isinstance(spec, Mapping) else "<mapping>",
                          *[item for pair in (("--set", s) for s in sets) for item in pair]]
    if isinstance(spec, Mapping):
        import yaml

        with tempfile.TemporaryDirectory(prefix="dlpipe-spec-") as folder, allowed(allow_imports):
            file = Path(folder) / "spec.yaml"
            file.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
            root = run_spec(file, overrides=sets, out=out, command=command, resume=resume, cache=cache,
                            base_dir=Path.cwd())
    else:
        with allowed(allow_imports):
            root = run_spec(spec, overrides=sets, out=out, command=command, resume=resume, cache=cache)
    # Another worker of a multi-worker run writes nothing: the chief's run.json may be elsewhere.
    return Run.open(root) if (Path(root) / "run.json").is_file() else Run(Path(root), {})


def predict(model: "str | Path | Run", rows: "Sequence[Mapping] | str | Path", *, allow_unsafe: bool = False,
            batch_size: int = 256) -> list[dict]:
    """Predictions for raw `rows` (dicts keyed by input or column name, as the training data;
    an image as a file path, base64 text or nested lists), or for every example of a CSV,
    JSONL or image file/folder: one record per example, as `dlpipe predict --out x.jsonl`
    writes them (`prediction` and `probabilities`, or `embedding`)."""
    from dlpipe.prediction import Predictor

    path = model.path if isinstance(model, Run) else model
    predictor = Predictor.open(path, allow_unsafe=allow_unsafe)
    if isinstance(rows, (str, Path)):
        return predictor.predict_file(rows, batch_size=batch_size)
    return predictor.predict(list(rows), batch_size=batch_size)


@dataclass
class Run:
    """A run directory, read back: its status, metrics, history and paths (no TensorFlow)."""

    path: Path
    record: dict = field(repr=False)
    """run.json: status, per-stage seconds, versions, data fingerprint, command."""
    metrics: dict[str, dict] = field(default_factory=dict)
    """metrics.json: {split: {metric: value}}; a supervised run's also holds the baselines it was
    compared with, under "baselines": {split: {baseline: {metric: value}}}."""
    history: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """history.csv by column: {"loss": [...], "val_loss": [...], ...}, one value per epoch."""

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        root = Path(path)
        if not (root / "run.json").is_file():
            raise DlpipeError(f"{root}: not a dlpipe run directory (no run.json)")
        return cls(root, _json(root / "run.json"), _json(root / "metrics.json"), read_history(root / "history.csv"))

    @property
    def status(self) -> str | None:
        return self.record.get("status")

    @property
    def error(self) -> str | None:
        return self.record.get("error")

    @property
    def spec(self) -> dict:
        """The resolved spec.yaml as data (every default filled in)."""
        import yaml

        try:
            return yaml.safe_load((self.path / "spec.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return {}

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    def predict(self, rows, **options) -> list[dict]:
        """`dlpipe.predict(self, rows)`."""
        return predict(self, rows, **options)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
