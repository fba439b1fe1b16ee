"""The import rules between dlpipe's parts, read from the source (no import runs):

- the module import graph of dlpipe/ and pipelines/ has no circle, counting imports at
  module level and inside functions alike (a function-level import only hides a circle
  until the function runs), dlpipe/spec/ included;
- exporters import no training code, training imports no architecture (a task's own loss
  comes through its `loss_factory` name, a GAN's input names are passed in);
- every `.keras` file is loaded by dlpipe/modelfile.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """dlpipe/spec/checks.py → dlpipe.spec.checks; pipelines/x.py → dlpipe.pipelines.x (as installed)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "pipelines":
        parts = ["dlpipe", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for folder in ("dlpipe", "pipelines") for path in sorted((ROOT / folder).rglob("*.py"))}


def imported(module: str, path: Path, known=MODULES) -> dict[str, int]:
    """dlpipe modules `module` imports anywhere in its file → the line of the first such
    import. `from package import name` counts as importing package.name where that is a
    module, else the package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [owner(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else owner(base)
                       for alias in node.names]
        for target in targets:
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imported(module, path) for module, path in MODULES.items()}


def find_cycle(graph: dict[str, dict]) -> list[str] | None:
    """One circle of the graph (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return path[path.index(following):] + [following]
            elif not state.get(following) and following in graph:
                state[following] = 1
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def test_the_graph_sees_module_and_function_level_imports():
    assert "dlpipe.registry" in GRAPH["dlpipe.spec.spec"]  # module level
    assert "dlpipe.training.fit" in GRAPH["dlpipe.pipelines.supervised"]  # inside run()
    assert "dlpipe.spec.checks" in GRAPH["dlpipe.spec.search"]  # inside a helper
    assert "dlpipe.pipelines.detection" in GRAPH  # pipelines/ under its installed name


def test_the_cycle_search_can_fail():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"a": 1}, "a": {"b": 1}, "b": {"a": 1}}) == ["a", "b", "a"]


def test_the_import_graph_has_no_circle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " → ".join(
        f"{module} ({MODULES[module].relative_to(ROOT)}:{GRAPH[module][following]})"
        for module, following in zip(cycle, cycle[1:])) + f" → {cycle[-1]}"


@pytest.mark.parametrize("importer, forbidden, allowed", [
    # Exporters write and verify a trained model; what they share with training (the GAN's
    # fixed latent vectors) lives with the GAN's architecture.
    ("dlpipe.exporters", "dlpipe.training", ()),
    # Training runs any model: a task's loss comes by its registered name (Task.loss_factory),
    # a GAN's input names are passed to AdversarialModel by the pipeline.
    ("dlpipe.training", "dlpipe.architectures", ()),
])
def test_stages_do_not_reach_into_each_other(importer, forbidden, allowed):
    offenders = [f"{MODULES[module].relative_to(ROOT)}:{line}: imports {target}"
                 for module, targets in GRAPH.items() if module == importer or module.startswith(importer + ".")
                 for target, line in targets.items()
                 if (target == forbidden or target.startswith(forbidden + ".")) and target not in allowed]
    assert not offenders, "\n".join(offenders)


def _loads_a_keras_file(node: ast.AST) -> bool:
    """`keras.saving.load_model(...)`, `keras.models.load_model(...)`, `saving.load_model(...)`."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load_model"
            and isinstance(node.func.value, (ast.Attribute, ast.Name))
            and (getattr(node.func.value, "attr", None) or getattr(node.func.value, "id", None)) in ("saving", "models"))


def test_every_keras_file_is_loaded_by_the_one_loader():
    offenders = [f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}"
                 for module, path in MODULES.items() if module != "dlpipe.modelfile"
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if _loads_a_keras_file(node)]
    assert not offenders, "load .keras files with dlpipe.modelfile.load_keras_model:\n" + "\n".join(offenders)
    assert _loads_a_keras_file(ast.parse("keras.saving.load_model(p, safe_mode=True)", mode="eval").body)
    assert _loads_a_keras_file(ast.parse("keras.models.load_model(p)", mode="eval").body)
    assert not _loads_a_keras_file(ast.parse("stagecache.load_model(run_dir, spec)", mode="eval").body)
