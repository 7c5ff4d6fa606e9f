"""What a task returns (:class:`Table`, :class:`TaskResult`) and the task registry.

:func:`register_task` adds a :class:`Task` to :data:`TASKS` (report order: registration order).

Example:
    >>> from asif_qdrant_evaluation.registry import Table
    >>> Table("t", ["a"], [[0.25]]).markdown().splitlines()[-1]
    '| 0.250 |'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asif_qdrant_evaluation.context import EvalContext

__all__ = ["TASKS", "Table", "Task", "TaskResult", "register_task"]


@dataclass
class Table:
    """A table of a task's result.

    Attributes:
        title: One line saying what it shows.
        columns: Column headers.
        rows: Rows of cells (floats are formatted with ``digits``).
        note: A line printed under the table.
        digits: Decimals of float cells.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    digits: int = 3

    def _cell(self, x: Any) -> str:
        if isinstance(x, float):
            return "n/a" if x != x else f"{x:.{self.digits}f}"
        return str(x)

    def markdown(self) -> str:
        """The table in GitHub Markdown.

        Example:
            >>> print(Table("t", ["a", "b"], [["x", 0.5]]).markdown())
            **t**
            <BLANKLINE>
            | a | b |
            |---|---|
            | x | 0.500 |
        """
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        for row in self.rows:
            lines.append("| " + " | ".join(self._cell(x) for x in row) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


@dataclass
class TaskResult:
    """What one task measured.

    Attributes:
        name: The task's registry name (set by :meth:`Task.measure`).
        title: Its heading (likewise).
        summary: A paragraph saying what was measured and what it shows.
        tables: The tables.
        figures: Every figure, JSON-ready.
        plots: Files of plots written into the output folder.
        notes: Extra lines (subsampling, checks).
        seconds: Wall time of the task.
        skipped: Why the task did not run, when it did not.
    """

    name: str = ""
    title: str = ""
    summary: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "tables": [t.as_dict() for t in self.tables],
            "figures": self.figures,
            "plots": self.plots,
            "notes": self.notes,
            "seconds": self.seconds,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Task:
    """A named evaluation task.

    Attributes:
        name: Registry name (``--task NAME``).
        title: Heading in the report.
        description: One line for ``--help`` and ``--list``.
        run: The function doing the work.
        needs: Assets it cannot run without (keys of :meth:`Assets.available`).
    """

    name: str
    title: str
    description: str
    run: Callable[[EvalContext], TaskResult]
    needs: tuple[str, ...] = ()

    def measure(self, ctx: EvalContext) -> TaskResult:
        """Run the task; the result carries the task's name and title."""
        result = self.run(ctx)
        result.name, result.title = self.name, self.title
        return result


#: Tasks by name, in report order; :func:`register_task` adds to it.
TASKS: dict[str, Task] = {}


def register_task(
    name: str, title: str, description: str, *, needs: Sequence[str] = ()
) -> Callable[[Callable[[EvalContext], TaskResult]], Callable[[EvalContext], TaskResult]]:
    """Decorator: register a task function under ``name``.

    Example:
        >>> @register_task("example-task", "Example", "does nothing")
        ... def _example(ctx):
        ...     return TaskResult("example-task", "Example")
        >>> TASKS["example-task"].description
        'does nothing'
        >>> del TASKS["example-task"]
    """

    def deco(fn: Callable[[EvalContext], TaskResult]) -> Callable[[EvalContext], TaskResult]:
        TASKS[name] = Task(name, title, description, fn, tuple(needs))
        return fn

    return deco
