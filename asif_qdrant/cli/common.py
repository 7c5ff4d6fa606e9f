"""What the commands of the command line share: options, output, errors, opening a model.

Every command prints either text for people or, with ``--json``, one JSON document
(:func:`emit`); an :class:`~asif_qdrant.errors.ASIFError` ends it with exit code 1 and a
one-line message (``--json``: a JSON document ``{"error": ..., "message": ...}``,
:func:`reported_errors`). A model lives in an embedded folder (``--path``, default
``$ASIF_QDRANT_PATH`` or ``./asif-data``) or on a Qdrant server (``--url``, default
``$QDRANT_URL``; its API key comes from ``$QDRANT_API_KEY`` only, never from the command line,
where other users could read it).

Example:
    >>> import click
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @store_options()
    ... def hello(store: StoreOptions) -> None:
    ...     store.emit({"hello": "world"}, "hello world")
    >>> CliRunner().invoke(hello, ["--json"]).output.split()
    ['{', '"hello":', '"world"', '}']
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from asif_qdrant import ASIF
from asif_qdrant.errors import ASIFError
from asif_qdrant.model import DEFAULT_TEMPLATE_STRATEGY, TEMPLATE_STRATEGIES, default_path

__all__ = [
    "EXISTING_FILE",
    "EXISTING_FOLDER",
    "F",
    "ModelOptions",
    "StoreOptions",
    "api_key",
    "choice_option",
    "emit",
    "file_option",
    "folder_option",
    "labels_option",
    "location_options",
    "method_option",
    "model_options",
    "name_option",
    "output_options",
    "query_options",
    "reported_errors",
    "resolve_location",
    "split_labels",
    "stack",
    "store_options",
    "template_options",
    "text_or_image",
]

F = TypeVar("F", bound=Callable[..., Any])


#: A click parameter type: an existing file, given to the command as a :class:`~pathlib.Path`.
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
#: A click parameter type: an existing folder, given to the command as a :class:`~pathlib.Path`.
EXISTING_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


def file_option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """A click option naming an existing file (:data:`EXISTING_FILE`)."""
    return click.option(*param_decls, type=EXISTING_FILE, **attrs)


def folder_option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """A click option naming an existing folder (:data:`EXISTING_FOLDER`)."""
    return click.option(*param_decls, type=EXISTING_FOLDER, **attrs)


def choice_option(*param_decls: str, choices: Sequence[str], **attrs: Any) -> Callable[[F], F]:
    """A click option taking one of ``choices``; its default, if any, is shown in the help."""
    attrs.setdefault("show_default", attrs.get("default") is not None)
    return click.option(*param_decls, type=click.Choice(list(choices)), **attrs)


def stack(*decorators: Callable[[Any], Any]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` as if written one above the other, top first.

    Click lists the options of a command in the order their decorators are written, so
    ``stack(a, b)`` puts ``a``'s option before ``b``'s.
    """

    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def emit(as_json: bool, data: Any, text: str) -> None:
    """Print ``data`` as one JSON document (``as_json``), else ``text``."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
    else:
        click.echo(text)


@contextlib.contextmanager
def reported_errors(as_json: bool) -> Iterator[None]:
    """Turn an :class:`ASIFError` raised inside into exit code 1 and a one-line message.

    With ``as_json`` the message is a JSON document ``{"error": <exception class>,
    "message": <text>}`` on stdout.
    """
    try:
        yield
    except ASIFError as e:
        if as_json:
            click.echo(json.dumps({"error": type(e).__name__, "message": str(e)}))
            sys.exit(1)
        raise click.ClickException(f"{type(e).__name__}: {e}") from e


#: ``--json`` and ``--quiet``: how a command prints.
output_options = stack(
    click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
)

#: ``--path`` and ``--url``: where the model's store is.
location_options = stack(
    click.option(
        "--path",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of the embedded Qdrant engine [default: $ASIF_QDRANT_PATH or ./asif-data].",
    ),
    click.option(
        "--url", default=None, help="Qdrant server URL instead of --path [default: $QDRANT_URL]."
    ),
)

#: ``--name``: the model's name.
name_option = click.option(
    "--name", default="asif", show_default=True, help="Name of the ASIF model."
)


def _given_as(keyword: str, cls: type[StoreOptions], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking the values of ``cls``'s fields as one keyword argument, errors reported."""
    names = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = cls(**{n: kwargs.pop(n) for n in names})
        with reported_errors(values.as_json):
            return fn(*args, **{keyword: values}, **kwargs)

    return wrapper


def store_options(
    *between: Callable[[Any], Any],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--path``, ``--url``, the options ``between``, ``--json`` and ``--quiet``.

    The command receives the values of ``--path``, ``--url``, ``--json`` and ``--quiet`` as
    one keyword argument ``store`` (a :class:`StoreOptions`); an :class:`ASIFError` it raises
    is reported (:func:`reported_errors`).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return stack(location_options, *between, output_options)(
            _given_as("store", StoreOptions, fn)
        )

    return decorate


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options every model command shares, given to it as one :class:`ModelOptions`.

    The options are ``--path``, ``--url``, ``--name``, ``--json`` and ``--quiet``; the
    command receives their values as the keyword argument ``model``, and an
    :class:`ASIFError` it raises is reported (:func:`reported_errors`).
    """
    return stack(location_options, name_option, output_options)(
        _given_as("model", ModelOptions, fn)
    )


#: The zero-shot prompt options (``--template``, ``--template-strategy``).
template_options = stack(
    click.option(
        "--template",
        "templates",
        multiple=True,
        help="Prompt template with {} for the label and optionally {a} for its article: 'a', "
        "'an', or none when the label has one, as 'an animal' (repeatable) [default: the "
        "model's templates, else 'a photo of {a} {}.'].",
    ),
    click.option(
        "--template-strategy",
        type=click.Choice(TEMPLATE_STRATEGIES),
        default=DEFAULT_TEMPLATE_STRATEGY,
        show_default=True,
        help="How several templates of a label combine: 'max' (its best template), "
        "'mean-relative' (the mean of their relative vectors) or 'mean-embedding' (the mean "
        "of their text embeddings).",
    ),
)

#: ``--method``: score with ASIF, CSA (a model built with ``--csa-dim``) or their fusion.
method_option = choice_option(
    "--method",
    choices=["asif", "csa", "hybrid"],
    default="asif",
    help="Score with ASIF, CSA (a model built with --csa-dim) or both fused (hybrid).",
)

#: ``--labels``: comma-separated class names (see :func:`split_labels`).
labels_option = click.option(
    "--labels", required=True, help="Comma-separated class names, e.g. 'cat,dog'."
)


def split_labels(labels: str) -> list[str]:
    """The class names of a ``--labels`` value (comma-separated, blanks dropped)."""
    return [x.strip() for x in labels.split(",") if x.strip()]


def query_options(image_help: str) -> Callable[[F], F]:
    """The arguments ``COLLECTION [QUERY]`` and the option ``--image`` (help ``image_help``).

    See :func:`text_or_image` for the one query they give.
    """
    return stack(
        click.argument("collection"),
        click.argument("query", required=False),
        file_option("--image", help=image_help),
    )


def text_or_image(query: str | None, image: Path | None) -> str | Path:
    """The query of :func:`query_options`: the text ``query`` or the ``image`` path.

    Raises:
        click.UsageError: Both or neither are given.
    """
    if (query is None) == (image is None):
        raise click.UsageError("Give a text QUERY or --image PATH (one of them).")
    return image if image is not None else query  # type: ignore[return-value]


def resolve_location(path: Path | None, url: str | None) -> tuple[Path | None, str | None]:
    """``(folder, None)`` for an embedded store or ``(None, url)`` for a server.

    ``--url`` wins; without ``--path`` or ``--url``, ``$QDRANT_URL`` names a server, else the
    folder is ``$ASIF_QDRANT_PATH`` or ``./asif-data``.
    """
    url = url or (None if path else os.environ.get("QDRANT_URL"))
    if url:
        return None, url
    return path or default_path(), None


def api_key() -> str | None:
    """The server's API key: ``$QDRANT_API_KEY`` (None when unset or empty)."""
    return os.environ.get("QDRANT_API_KEY") or None


@dataclass(frozen=True)
class StoreOptions:
    """The values of :func:`store_options`: where a store is and how the command prints.

    Attributes:
        path: ``--path``, the embedded folder (see :func:`resolve_location`).
        url: ``--url``, the Qdrant server.
        as_json: ``--json``: print one JSON document.
        quiet: ``--quiet``: no progress bars.
    """

    path: Path | None = None
    url: str | None = None
    as_json: bool = False
    quiet: bool = False

    def emit(self, data: Any, text: str) -> None:
        """Print ``data`` (``--json``) or ``text`` (see :func:`emit`)."""
        emit(self.as_json, data, text)


@dataclass(frozen=True)
class ModelOptions(StoreOptions):
    """The values of :func:`model_options`: the :class:`StoreOptions` and the model's name.

    Attributes:
        name: ``--name``, the model's name.
    """

    name: str = "asif"

    def open(
        self,
        *,
        k: int | None = None,
        p: float | None = None,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
        csa_dim: int | None = None,
    ) -> ASIF:
        """Open the model; the keyword arguments are the settings of a new one.

        Returns:
            The model (a context manager: use it in a ``with`` block).
        """
        kwargs: dict[str, Any] = {
            "name": self.name,
            "k": k,
            "p": p,
            "csa_dim": csa_dim,
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "show_progress_bar": not self.quiet,
        }
        folder, url = resolve_location(self.path, self.url)
        if url:
            from qdrant_client import QdrantClient

            return ASIF(client=QdrantClient(url=url, api_key=api_key()), **kwargs)
        return ASIF(path=folder, **kwargs)
