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
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from asif_qdrant import ASIF
from asif_qdrant.errors import (
    ASIFError,
    InvalidParameterError,
    ModelNotFoundError,
    redact_credentials,
)
from asif_qdrant.model import DEFAULT_TEMPLATE_STRATEGY, TEMPLATE_STRATEGIES, default_path
from asif_qdrant.retriever.layout import model_names

__all__ = [
    "BUILD_COMMANDS",
    "EXISTING_FILE",
    "EXISTING_FOLDER",
    "FILE_PATH",
    "FOLDER_PATH",
    "VERBOSE",
    "F",
    "ModelOptions",
    "StoreOptions",
    "api_key",
    "choice_option",
    "cli_message",
    "emit",
    "file_option",
    "folder_option",
    "json_error",
    "labels_option",
    "location_options",
    "method_option",
    "model_options",
    "models_in_folder",
    "name_option",
    "number_option",
    "output_options",
    "print_timings",
    "query_options",
    "quiet_third_parties",
    "reported_errors",
    "require_model",
    "resolve_location",
    "split_labels",
    "stack",
    "store_options",
    "template_options",
    "text_or_image",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The key of ``-v`` (``--verbose``) in ``click.Context.meta``.
VERBOSE = "asif_qdrant.verbose"
#: The key of the models a command opened (their load times) in ``click.Context.meta``.
_OPENED = "asif_qdrant.opened"
#: When the command line started (this module is imported before any command runs).
_STARTED = time.perf_counter()


#: A click parameter type: an existing file, given to the command as a :class:`~pathlib.Path`.
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
#: A click parameter type: an existing folder, given to the command as a :class:`~pathlib.Path`.
EXISTING_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)
#: A click parameter type: a file that need not exist yet (one to write), as a Path.
FILE_PATH = click.Path(dir_okay=False, path_type=Path)
#: A click parameter type: a folder that need not exist yet, as a Path.
FOLDER_PATH = click.Path(file_okay=False, path_type=Path)


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


def number_option(
    name: str, kind: click.IntRange | click.FloatRange, default: float, help: str
) -> Callable[[F], F]:
    """A click option ``name`` taking a number in ``kind``'s range; its default is shown."""
    return click.option(name, type=kind, default=default, show_default=True, help=help)


def on_duplicate_option(what: str) -> Callable[[F], F]:
    """``--on-duplicate skip|replace|add``: what adding ``what`` already stored does."""
    return choice_option(
        "--on-duplicate",
        choices=("skip", "replace", "add"),
        default="skip",
        help=f"{what} already stored (same content): skip it, replace it, or add it again.",
    )


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


#: Python advice in library messages, and what the command line says instead.
_CLI_TERMS: tuple[tuple[str, str], ...] = (
    (r"list the anchors with list_anchors\(\)", "list them with `asif-qdrant anchors list`"),
    (
        r"with add_anchors\(\) or add_anchor_embeddings\(\) first",
        "with `asif-qdrant anchors add` first",
    ),
    (r"with ASIF\.index\(\) first", "with `asif-qdrant index` first"),
    (
        r"run asif\.reindex\([^)]*\) with csa_dim set \(or index into it again\) to add "
        r"them, then search with method='csa' or 'hybrid'",
        "index its items again (`asif-qdrant index`) to add them, then search with "
        "--method csa or hybrid",
    ),
    (
        r"index image items with captions \(index\(\.\.\., captions=\[\.\.\.\]\) or "
        r"index_embeddings\(\.\.\., caption_embeddings=\.\.\.\)\) to search it with "
        r"target='caption'",
        "index image items with captions (the Python API's index(..., captions=[...])) to "
        "search it with --target caption",
    ),
    (r"asif\.check_integrity\(repair=True\) \(or 'asif-qdrant repair'\)", "`asif-qdrant repair`"),
)


def cli_message(message: str, command: click.Command | None = None) -> str:
    """A library error ``message`` in command-line terms: commands and flags, not methods.

    Python advice (``list_anchors()``, ``ASIF.index()``...) becomes the command that does it,
    and "The 'k' parameter of ASIF" becomes ``--k`` when ``command`` has that option. The
    library's own messages stay right for Python users.

    Example:
        >>> cli_message("Nothing was deleted; list the anchors with list_anchors().")
        'Nothing was deleted; list them with `asif-qdrant anchors list`.'
    """
    for pattern, replacement in _CLI_TERMS:
        message = re.sub(pattern, replacement, message)
    flags = {o for p in (command.params if command else ()) for o in p.opts if o.startswith("--")}

    def flag(match: re.Match[str]) -> str:
        option = "--" + match.group(1).replace("_", "-")
        return option if option in flags else match.group(0)

    return re.sub(r"The '(\w+)' parameter of [\w.]+", flag, message)


def json_error(error: str, message: str) -> None:
    """Print the JSON error document ``{"error": <kind>, "message": <text>}`` on stdout."""
    click.echo(json.dumps({"error": error, "message": message}, ensure_ascii=False))


@contextlib.contextmanager
def reported_errors(as_json: bool) -> Iterator[None]:
    """Turn an :class:`ASIFError` raised inside into exit code 1 and a one-line message.

    The message is in command-line terms (:func:`cli_message`). With ``as_json`` it is a JSON
    document ``{"error": <exception class>, "message": <text>}`` on stdout.
    """
    try:
        yield
    except ASIFError as e:
        ctx = click.get_current_context(silent=True)
        message = cli_message(str(e), ctx.command if ctx else None)
        if as_json:
            json_error(type(e).__name__, message)
            sys.exit(1)
        raise click.ClickException(f"{type(e).__name__}: {message}") from e


_HUB_BARS = "HF_HUB_DISABLE_PROGRESS_BARS"
#: Environment variables that keep transformers and huggingface_hub quiet if set before import.
_QUIET_ENV = {
    _HUB_BARS: "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
#: The third-party loggers ``--quiet`` turns down to errors.
_QUIET_LOGGERS = ("transformers", "huggingface_hub", "sentence_transformers", "timm", "torch")


@contextlib.contextmanager
def quiet_third_parties(quiet: bool) -> Iterator[None]:
    """While inside, with ``quiet``: no third-party progress bar, log line or warning.

    transformers prints its "Loading weights" bar through its own tqdm switch (set from
    ``$HF_HUB_DISABLE_PROGRESS_BARS`` when it is imported, or by ``disable_progress_bar()``
    later); huggingface_hub has its own switch; both, the libraries' loggers and Python
    warnings raised outside asif_qdrant are silenced, and everything is put back on exit.
    """
    if not quiet:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in _QUIET_ENV}
    loggers = [logging.getLogger(n) for n in _QUIET_LOGGERS]
    saved_levels = [lg.level for lg in loggers]
    switches = _progress_switches()
    had_transformers = "transformers" in sys.modules
    os.environ.update(_QUIET_ENV)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(?!asif_qdrant)")
            yield
    finally:
        for restore in switches:
            restore()
        if not had_transformers and "transformers" in sys.modules and saved_env[_HUB_BARS] is None:
            # Imported while quiet, it read its switch off from the environment: turn it on.
            from transformers.utils import logging as tf_logging

            tf_logging.enable_progress_bar()
        for lg, level in zip(loggers, saved_levels, strict=True):
            lg.setLevel(level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _progress_switches() -> list[Callable[[], None]]:
    """Turn off the progress bars of transformers and huggingface_hub if they are imported.

    Returns:
        The calls that turn them back on (those that were on).
    """
    restore: list[Callable[[], None]] = []
    with contextlib.suppress(ImportError):
        from huggingface_hub import utils as hub

        if not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            restore.append(hub.enable_progress_bars)
    if "transformers" in sys.modules:  # not imported: the environment variables do it
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            restore.append(tf_logging.enable_progress_bar)
    return restore


#: ``--json`` and ``--quiet``: how a command prints.
output_options = stack(
    click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
)

#: ``--path`` and ``--url``: where the model's store is.
location_options = stack(
    click.option(
        "--path",
        type=FOLDER_PATH,
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
        with reported_errors(values.as_json), quiet_third_parties(values.quiet):
            result = fn(*args, **{keyword: values}, **kwargs)
        print_timings()
        return result

    return wrapper


def print_timings() -> None:
    """With ``-v``: one line on stderr, where the command's time went (open, encoders, rest).

    A command prints its result at its end, so the total is the time to the first result.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.meta.get(VERBOSE):
        return
    total = time.perf_counter() - _STARTED
    phases = dict(ctx.meta.get(_OPENED, {}))
    loads = phases.pop("encoders", {})
    parts = [f"{what} {s:.2f} s" for what, s in phases.items()]
    parts += [f"loading the {m} encoder {s:.2f} s" for m, s in loads.items()]
    rest = total - sum(phases.values()) - sum(loads.values())
    line = f"timings: {', '.join([*parts, f'the rest {rest:.2f} s'])}; {total:.2f} s to the result"
    if loads:
        line += " (for repeated queries use `asif-qdrant serve`: it keeps the encoders loaded)"
    click.echo(line, err=True)


def _note_loads(asif: ASIF, quiet: bool) -> ASIF:
    """Say on stderr when ``asif`` loads an encoder (not with ``quiet``) and record the time."""
    ctx = click.get_current_context(silent=True)

    def notice(modality: str, name: str) -> None:
        if not quiet:
            click.echo(
                f"loading the {modality} encoder {name} (first use in this command: several "
                "seconds)...",
                err=True,
            )

    asif.state.load_notice = notice
    if ctx is not None:
        ctx.meta.setdefault(_OPENED, {})["encoders"] = asif.state.load_seconds
    return asif


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

    def where(self) -> str:
        """The store's folder or URL, as messages name it (see :func:`resolve_location`)."""
        folder, url = resolve_location(self.path, self.url)
        return url or str(Path(folder).absolute())


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
        create: bool = False,
        k: int | None = None,
        p: float | None = None,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
        csa_dim: int | None = None,
        classify_spread: float | None = None,
        classify_p: float | None = None,
    ) -> ASIF:
        """Open the model; the keyword arguments are the settings of a new one.

        Args:
            create: Start the model if the store has none of that name (``anchors add``);
                else a store without it is an error and nothing is created.
            k: ``--k`` of a new model.
            p: ``--p`` of a new model.
            image_encoder: ``--image-encoder``.
            text_encoder: ``--text-encoder``.
            csa_dim: ``--csa-dim``.
            classify_spread: ``--classify-spread`` (stored; also changes an existing model).
            classify_p: ``--classify-p`` (likewise).

        Returns:
            The model (a context manager: use it in a ``with`` block).

        Raises:
            ModelNotFoundError: Not ``create`` and the store holds no model of this name.
        """
        kwargs: dict[str, Any] = {
            "name": self.name,
            "k": k,
            "p": p,
            "csa_dim": csa_dim,
            "classify_spread": classify_spread,
            "classify_p": classify_p,
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "show_progress_bar": not self.quiet,
        }
        t0 = time.perf_counter()
        folder, url = resolve_location(self.path, self.url)
        if url:
            from qdrant_client import QdrantClient

            from asif_qdrant.store.remote import public_url

            try:
                client = QdrantClient(url=url, api_key=api_key())
            except Exception as e:  # qdrant-client's own parse errors repeat the whole URL
                raise InvalidParameterError(
                    "--url must be a Qdrant server URL such as http://localhost:6333. Got "
                    f"{public_url(url)!r} ({redact_credentials(str(e))[:200]})."
                ) from None
            if not create:
                from asif_qdrant.store import ClientStore

                require_model(self.name, model_names(ClientStore(client)), self.where())
            asif = ASIF(client=client, **kwargs)
        else:
            assert folder is not None
            if not create:
                require_model(self.name, models_in_folder(folder), self.where())
            asif = ASIF(path=folder, **kwargs)
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta.setdefault(_OPENED, {})["opening the model"] = time.perf_counter() - t0
        return _note_loads(asif, self.quiet)


#: The commands that build a model, named by errors about a store without one.
BUILD_COMMANDS = "`asif-qdrant anchors add`, `asif-qdrant import` or `asif-qdrant demo`"


def models_in_folder(folder: Path) -> list[str] | None:
    """The models in the embedded store ``folder``; None when it is no store (nothing made)."""
    if not (folder / "collections").is_dir():
        return None
    from asif_qdrant.store import EdgeStore

    with EdgeStore(folder) as store:
        return model_names(store)


def require_model(name: str | None, models: list[str] | None, where: str) -> None:
    """Raise unless the store at ``where`` holds the model ``name`` (None: any model).

    Args:
        name: The model asked for (``--name``), or None when any will do.
        models: The models in the store (:func:`~asif_qdrant.retriever.layout.model_names`),
            or None when ``where`` is not a store at all.
        where: The store's folder or URL, for the message.

    Raises:
        ModelNotFoundError: The model is not there; the message names the models that are.
    """
    if models and (name is None or name in models):
        return
    if models is None:
        state = "does not exist" if not Path(where).exists() else "is no asif-qdrant store"
        raise ModelNotFoundError(
            f"There is no ASIF model at {where}: the folder {state}. Give the folder of a model "
            f"with --path (or a server with --url), or build one with {BUILD_COMMANDS}."
        )
    if not models:
        raise ModelNotFoundError(
            f"There is no ASIF model at {where}: the store holds none. Build one with "
            f"{BUILD_COMMANDS}."
        )
    listed = ", ".join(f"'{m}'" for m in models)
    raise ModelNotFoundError(
        f"There is no ASIF model named '{name}' at {where}. The models there: {listed}; "
        f"give one with --name (e.g. --name {models[0]})."
    )
