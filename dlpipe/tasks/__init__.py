"""Tasks: one module each, one registered `Task` per module (see base.py).

    tasks.get("classification")       the Task object (its facts, its pipeline's hooks)
    tasks.names()                     every task name, without importing a task module
    tasks.require(name, "evaluate")   a one-line DlpipeError when the task lacks the command
"""

from __future__ import annotations

from pathlib import Path

from dlpipe import registry
from dlpipe.errors import DlpipeError
from dlpipe.tasks.base import COMMAND_NAMES, COMMANDS, Found, Task

__all__ = ["COMMANDS", "Found", "Task", "get", "names", "require"]


def names() -> tuple[str, ...]:
    return registry.names("task")


def get(name: str) -> Task:
    return registry.load("task", name)


def require(name: str, command: str, where: str | Path | None = None) -> Task:
    """The task, when it supports `command`; otherwise one line saying what it does not do."""
    task = get(name)
    if not task.supports(command):
        prefix = f"{where}: " if where is not None else ""
        able = [get(other).name for other in names() if get(other).supports(command)]
        raise DlpipeError(f"{prefix}{COMMAND_NAMES[command]} does not support the {name} task yet "
                          f"(it supports {', '.join(able) or 'no task'})")
    return task
