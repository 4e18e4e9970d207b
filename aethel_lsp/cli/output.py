"""How the CLI shows things: JSON for scripts, rich tables and progress bars for people.

Kept apart from `cli.py` so the commands stay a few lines each.  Human output goes to
stdout (data) and stderr (errors, metrics, notes), so `aethel-lsp generate ... > f`
captures only the generated text.  JSON output is exactly the `to_json()` shapes of
the engine types (camelCase), the same the LSP commands return.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TextIO, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from aethel_lsp.engine.redaction import Redactor
from aethel_lsp.engine.types import (
    EngineStatus,
    Metrics,
    ModelInfo,
    PullProgress,
    RunningModel,
    format_usd,
)

PIPE_WIDTH = 160


class RedactingStream:
    """A text stream whose every write loses the known key values (see engine/redaction)."""

    def __init__(self, stream: TextIO, redactor: Callable[[], Redactor]) -> None:
        self.stream = stream
        self.redactor = redactor

    def write(self, text: str) -> int:
        self.stream.write(self.redactor().known(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, getvalue...
        return getattr(self.stream, name)


class Output:
    """Where a command writes; `json_mode` switches every helper to machine output.

    Both streams pass `redactor` (the configured key variable is added once the settings
    are read: `CliContext.settings`), so no output, table or error can show a key.
    """

    def __init__(
        self,
        *,
        json_mode: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.redactor = Redactor.from_env(os.environ)
        self.stdout = cast(TextIO, RedactingStream(stdout or sys.stdout, lambda: self.redactor))
        self.stderr = cast(TextIO, RedactingStream(stderr or sys.stderr, lambda: self.redactor))
        self.console = _console(self.stdout)
        self.err_console = _console(self.stderr)

    def know_key_env(self, *names: str) -> None:
        """Also hide the values of these key variables (the configured `apiKeyEnv`)."""
        self.redactor = Redactor.from_env(os.environ, *names)

    def install_excepthook(self) -> None:
        """An uncaught exception's traceback goes to stderr through the redactor too."""

        def excepthook(
            kind: type[BaseException], value: BaseException, tb: TracebackType | None
        ) -> None:
            self.stderr.write("".join(traceback.format_exception(kind, value, tb)))

        sys.excepthook = excepthook

    # -- primitives -------------------------------------------------------------------
    def json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def json_line(self, value: Any) -> None:
        """One compact JSON object per line (NDJSON), for streamed output like pull."""
        self.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        self.console.print(text, markup=False)

    def markup(self, text: str) -> None:
        self.console.print(text)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr, so stdout stays clean data)."""
        self.err_console.print(text, markup=False, style="dim")

    def error(self, message: str) -> None:
        """One clear line on stderr (newlines folded so scripts can grep it)."""
        flat = " ".join(message.split())
        self.stderr.write(f"error: {flat}\n")
        self.stderr.flush()

    def warning(self, message: str) -> None:
        flat = " ".join(message.split())
        self.stderr.write(f"warning: {flat}\n")
        self.stderr.flush()

    def write_text(self, text: str) -> None:
        """Raw streamed text (tokens), flushed at once."""
        self.stdout.write(text)
        self.stdout.flush()

    def table(self, table: Table) -> None:
        self.console.print(table)


class PlainTable(Table):
    """A table whose string cells are shown as they are, never parsed as rich markup.

    Cells hold what the engine reported (model names, GGUF family and quantization
    strings, server texts): a `[/]` in a model file's metadata must not crash `models`
    with a `MarkupError` nor restyle the output.
    """

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        cells = [Text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, **kwargs)


def _console(stream: TextIO) -> Console:
    """A console for `stream`; wide when piped so tables are not wrapped at 80 columns."""
    console = Console(file=stream, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return console


# -- formatting ---------------------------------------------------------------------------
def human_bytes(value: int | None) -> str:
    """`1536` -> `1.5 KB`, decimal units like `ollama list`.

    >>> human_bytes(986_062_089), human_bytes(None)
    ('986.1 MB', '–')
    """
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - loop always returns


def human_count(value: int | None) -> str:
    """Exact parameter counts, shortened: `1_543_714_304` -> `1.54B`.

    >>> human_count(1_543_714_304), human_count(136_727_040), human_count(None)
    ('1.54B', '136.7M', '–')
    """
    if value is None:
        return "–"
    if value >= 1_000_000_000:
        return f"{value / 1e9:.2f}B"
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    return str(value)


def _or_dash(value: object) -> str:
    return "–" if value is None or value == "" else str(value)


def models_table(models: Sequence[ModelInfo]) -> Table:
    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "PARAMS", "CONTEXT", "FAMILY", "QUANT", "SIZE", "CAPABILITIES"):
        table.add_column(column, no_wrap=column == "NAME")
    for m in models:
        params = human_count(m.parameters) if m.parameters else _or_dash(m.parameter_size)
        table.add_row(
            m.name,
            params,
            _or_dash(m.context_length),
            _or_dash(m.family),
            _or_dash(m.quantization),
            human_bytes(m.size_bytes),
            ", ".join(m.capabilities) or "–",
        )
    return table


def installed_table(models: Sequence[ModelInfo]) -> Table:
    """What `/api/tags` alone tells (the `status` view; `models` adds details from show)."""
    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "PARAMS", "QUANT", "SIZE"):
        table.add_column(column, no_wrap=column == "NAME")
    for m in models:
        params = human_count(m.parameters) if m.parameters else _or_dash(m.parameter_size)
        table.add_row(m.name, params, _or_dash(m.quantization), human_bytes(m.size_bytes))
    return table


def running_table(models: Sequence[RunningModel]) -> Table:
    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "SIZE", "VRAM", "CONTEXT", "UNTIL"):
        table.add_column(column, no_wrap=column == "NAME")
    for m in models:
        table.add_row(
            m.name,
            human_bytes(m.size_bytes),
            human_bytes(m.size_vram),
            _or_dash(m.context_length),
            _or_dash(m.expires_at),
        )
    return table


def model_details(model: ModelInfo) -> list[str]:
    """`show MODEL` for people: one `key: value` per line."""
    params = f"{model.parameters:,}" if model.parameters else _or_dash(model.parameter_size)
    return [
        f"name:          {model.name}",
        f"parameters:    {params}",
        f"context:       {_or_dash(model.context_length)}",
        f"family:        {_or_dash(model.family)}",
        f"quantization:  {_or_dash(model.quantization)}",
        f"size:          {human_bytes(model.size_bytes)}",
        f"capabilities:  {', '.join(model.capabilities) or '–'}",
    ]


def status_summary(status: EngineStatus) -> str:
    """The first line of `status` when an engine answers."""
    version = status.version if status.version not in (None, "", "unknown") else ""
    if status.engine == "openai" and version == "openai-compatible":
        version = ""  # such servers report no version; the backend says only what it is
    elif status.engine == "embedded" and version:
        version = f"(llama.cpp via xllamacpp {version})"  # the library's version, not ours
    name = {"ollama": "Ollama", "openai": "OpenAI-compatible server", "embedded": "Embedded engine",
            "anthropic": "Anthropic Messages API"}
    what = name.get(status.engine, status.engine) + (f" {version}" if version else "")
    loaded = f", {len(status.running)} loaded" if status.running else ""
    count = len(status.models)
    plural = "" if count == 1 else "s"
    where = "in this process" if status.engine == "embedded" else f"at {status.host}"
    return f"{what} is running {where}: {count} model{plural} installed{loaded}."


def providers_lines(providers: list[dict[str, Any]]) -> list[str]:
    """`provider team (openai): http://gpu1:8000/v1 healthy, http://gpu2:8000/v1 unhealthy`."""
    lines = []
    for entry in providers:
        endpoints = ", ".join(f"{e['url']} {e['health']}" for e in entry["endpoints"])
        lines.append(f"provider {entry['name']} ({entry['kind']}): {endpoints}")
    return lines


def metrics_line(metrics: Metrics) -> str:
    """`8 tokens · 0.2 s · 50.0 tok/s · first token 12 ms · load 5 ms · stop`."""
    parts = [metrics.summary()]
    if metrics.time_to_first_token_ms is not None:
        parts.append(f"first token {metrics.time_to_first_token_ms:.0f} ms")
    if metrics.load_ms is not None:
        parts.append(f"load {metrics.load_ms:.0f} ms")
    if metrics.prompt_tokens is not None:
        parts.append(f"{metrics.prompt_tokens} prompt tokens")
    if metrics.done_reason:
        parts.append(metrics.done_reason)
    return " · ".join(parts)


def usage_table(stats: dict[str, dict[str, Any]]) -> Table:
    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    columns = ("MODEL", "REQUESTS", "ERRORS", "CANCELLED", "TOKENS", "TOK/S p50", "TTFT p50 ms",
               "COST")
    for column in columns:
        table.add_column(column, no_wrap=column == "MODEL")
    for name, usage in sorted(stats.items()):
        table.add_row(
            name,
            str(usage.get("requests", 0)),
            str(usage.get("errors", 0)),
            str(usage.get("cancelled", 0)),
            _tokens_cell(usage),
            _or_dash(usage.get("tokensPerSecondP50")),
            _or_dash(usage.get("timeToFirstTokenMsP50")),
            "–" if usage.get("costUsd") is None else format_usd(float(usage["costUsd"])),
        )
    return table


def _tokens_cell(usage: dict[str, Any]) -> str:
    """Counted tokens, and how many requests went uncounted: unknown is never shown as 0."""
    tokens = usage.get("tokensGenerated")
    uncounted = usage.get("uncountedRequests") or 0
    if tokens is None:
        return "unknown"
    return f"{tokens} (+{uncounted} requests unknown)" if uncounted else str(tokens)


def rows_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    for column in headers:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


class PullDisplay:
    """A rich progress bar per layer, plus status lines (manifest, verifying, success)."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=out.err_console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._last_status = ""
        self._started = False

    def __enter__(self) -> PullDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:  # a display never started leaves no blank line behind
            self._progress.stop()

    def update(self, item: PullProgress) -> None:
        if item.digest and item.total:
            task = self._tasks.get(item.digest)
            if task is None:
                if not self._started:  # bars only once there is a layer to show
                    self._progress.start()
                    self._started = True
                task = self._progress.add_task(item.status, total=item.total)
                self._tasks[item.digest] = task
            self._progress.update(task, completed=item.completed or 0, description=item.status)
        elif item.status != self._last_status:
            self._progress.console.print(item.status, markup=False, highlight=False)
        self._last_status = item.status
