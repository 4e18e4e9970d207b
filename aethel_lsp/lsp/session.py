"""Per-server state and the `AethelServer` class every feature receives.

A `Session` holds what one editor connection knows: the resolved settings, the
client's capabilities (resolved once into flat booleans), the engine built from the
settings, the usage statistics, the model chosen per task, and the state reported
in `aethel/status`.  Features read it through `ls.session`; they never keep state of
their own that another feature needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from aethel_lsp import __version__
from aethel_lsp.config import ConfigIssue, ResolvedConfig, Settings, config_files, load_config
from aethel_lsp.engine import (
    Engine,
    EngineConfig,
    EngineError,
    EngineOffline,
    EngineStatus,
    EngineTimeout,
    Metrics,
    NoEngineAvailable,
    create_engine,
)
from aethel_lsp.engine.metered import MeteredEngine
from aethel_lsp.engine.redaction import Redactor
from aethel_lsp.engine.stats import UsageStats
from aethel_lsp.lsp.rpc import MIB, AethelProtocol, run_stdio
from aethel_lsp.paths import state_dir
from aethel_lsp.protocol import NOTIFY_STATUS, SERVER_NAME

log = logging.getLogger(__name__)

Task = Literal["chat", "completion"]
TASKS: tuple[Task, ...] = ("chat", "completion")
State = Literal["ready", "busy", "offline", "error"]

_LOG_LEVELS = {"error": 1, "warning": 2, "info": 3, "debug": 4}
_MESSAGE_LEVEL = {
    types.MessageType.Error: 1,
    types.MessageType.Warning: 2,
    types.MessageType.Info: 3,
    types.MessageType.Log: 4,
    types.MessageType.Debug: 4,
}


@dataclass(frozen=True)
class ClientFeatures:
    """What the connected editor supports, read once from its capabilities."""

    work_done_progress: bool = False
    show_document: bool = False
    apply_edit: bool = False
    document_changes: bool = False  # versioned edits (TextDocumentEdit)
    configuration: bool = False
    configuration_dynamic: bool = False
    watched_files_dynamic: bool = False
    code_action_literals: bool = False
    code_action_resolve: bool = False

    @classmethod
    def from_capabilities(cls, caps: types.ClientCapabilities | None) -> ClientFeatures:
        if caps is None:
            return cls()
        window = caps.window
        workspace = caps.workspace
        text = caps.text_document
        code_action = text.code_action if text else None
        resolve = code_action.resolve_support if code_action else None
        return cls(
            work_done_progress=bool(window and window.work_done_progress),
            show_document=bool(window and window.show_document and window.show_document.support),
            apply_edit=bool(workspace and workspace.apply_edit),
            document_changes=bool(
                workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes
            ),
            configuration=bool(workspace and workspace.configuration),
            configuration_dynamic=bool(
                workspace
                and workspace.did_change_configuration
                and workspace.did_change_configuration.dynamic_registration
            ),
            watched_files_dynamic=bool(
                workspace
                and workspace.did_change_watched_files
                and workspace.did_change_watched_files.dynamic_registration
            ),
            code_action_literals=bool(code_action and code_action.code_action_literal_support),
            code_action_resolve=bool(resolve and "command" in resolve.properties),
        )


@dataclass(frozen=True)
class StatusSnapshot:
    """The payload of `aethel/status` (public: editors' status bars read it)."""

    state: State
    engine: str
    host: str
    model: str
    tokens_per_second: float | None
    message: str
    cost_usd: float | None = None  # the last generation's cost (None: free or unknown)
    provider: str = "local"  # who served the last generation

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "engine": self.engine,
            "host": self.host,
            "model": self.model,
            "tokensPerSecond": self.tokens_per_second,
            "message": self.message,
            "costUsd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "provider": self.provider,
        }


@dataclass
class Session:
    """Everything the server knows about one editor connection."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    config: ResolvedConfig = field(default_factory=lambda: load_config(roots=[], env={}))
    client: ClientFeatures = ClientFeatures()
    roots: list[Path] = field(default_factory=list)
    init_options: Any = None
    editor_settings: Any = None
    selected_models: dict[str, str] = field(default_factory=dict)  # task -> model
    shown_issues: set[str] = field(default_factory=set)  # messages already shown once
    issue_files: set[Path] = field(default_factory=set)  # files with published diagnostics
    busy: int = 0
    engine_state: State = "ready"  # last known: ready / offline / error
    engine_message: str = ""
    last_tokens_per_second: float | None = None
    last_cost_usd: float | None = None
    last_provider: str = "local"
    last_metrics: Metrics | None = None
    auto_model: str = ""  # the model picked for actions when none is configured
    ready_message: str = ""  # what aethel/status says while the engine serves
    serving_engine: str = ""  # the backend actually serving (auto may switch)
    serving_host: str = ""  # normalized host of that backend
    last_status: StatusSnapshot | None = None

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def reload(self) -> ResolvedConfig:
        """Re-read every source; the caller publishes the issues and the status."""
        self.config = load_config(
            roots=self.roots,
            init_options=self.init_options,
            editor=self.editor_settings,
            env=self.env,
        )
        return self.config

    def model_for(self, task: Task) -> str:
        """The model chosen for `task`: `aethel.selectModel`, else the settings."""
        selected = self.selected_models.get(task)
        if selected:
            return selected
        return self.settings.completion_model if task == "completion" else self.settings.model

    def status(self) -> StatusSnapshot:
        state: State = "busy" if self.busy > 0 else self.engine_state
        return StatusSnapshot(
            state=state,
            engine=self.serving_engine or self.settings.engine,
            host=self.serving_host or self.settings.host,
            model=self.model_for("chat") or self.auto_model,
            tokens_per_second=self.last_tokens_per_second,
            message=self.engine_message if state != "busy" else "Generating…",
            cost_usd=self.last_cost_usd,
            provider=self.last_provider,
        )


class AethelServer(LanguageServer):
    """The aethel-lsp language server; features are attached by `server.create_server()`."""

    protocol: AethelProtocol  # what `protocol_cls` below makes it

    def __init__(self) -> None:
        super().__init__(SERVER_NAME, __version__, protocol_cls=AethelProtocol)
        self.session = Session()
        self._config_stamp: tuple[tuple[str, float], ...] = ()
        self._background: set[asyncio.Task[Any]] = set()
        self._engine: MeteredEngine | None = None
        self._stats: UsageStats | None = None
        self._engine_config: EngineConfig | None = None
        self._state_checked = False
        self._state_warned = False
        self._state_dir: Path | None = None
        # Features may wrap the engine (e.g. the request inspector): applied innermost first,
        # below the metering, each time the engine is (re)built.
        self.engine_wrappers: list[Callable[[Engine], Engine]] = []
        self._redactor: tuple[tuple[str, ...], Redactor] | None = None
        self.protocol.redactor_source = self.redactor

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdio (our framing, see `rpc.py`); exits with the code LSP asks for
        (1 after `exit` without `shutdown`, or when the input is not LSP)."""
        code = run_stdio(self, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)
        if code:
            sys.exit(code)

    def bookkeeping(self) -> dict[str, int]:
        """How many entries the long-lived maps hold (pygls' and ours)."""
        sizes = self.protocol.bookkeeping_sizes()
        return {
            "requestFutures": sizes["request_futures"],
            "resultTypes": sizes["result_types"],
            "progressTokens": sizes["progress_tokens"],
            "openDocuments": len(self.workspace.text_documents),
            "backgroundTasks": len(self._background),
        }

    # -- configuration ------------------------------------------------------------------

    def config_file_paths(self) -> list[Path]:
        """The user config file first, then each workspace root's candidates."""
        return config_files(self.session.roots, self.session.env)

    def _config_signature(self) -> tuple[tuple[str, float], ...]:
        stamps: list[tuple[str, float]] = []
        for path in self.config_file_paths():
            try:
                stamps.append((str(path), path.stat().st_mtime))
            except OSError:
                stamps.append((str(path), -1.0))
        return tuple(stamps)

    def reload_config(self, *, publish: bool = False) -> None:
        """Re-read every source; with `publish`, show new issues and the new status."""
        self._config_stamp = self._config_signature()
        config = self.session.reload()
        self.protocol.max_message_bytes = config.settings.max_message_mb * MIB
        if publish:
            self.publish_config_issues(config.issues)
            if self._engine is not None and engine_config(config.settings) != self._engine_config:
                # A new host or backend: say at once whether it serves.
                self.spawn(self.refresh_engine_state(), "engine status check")
            self.publish_status()

    def ensure_fresh_config(self) -> None:
        """Reload when a config file changed on disk (cheap: a few `stat` calls).

        Covers clients that cannot watch files: the next request sees the new values.
        """
        if self._config_signature() != self._config_stamp:
            self.reload_config(publish=True)
            self.log("Settings reloaded: a config file changed on disk.")

    # -- background work ------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference and logging failures."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._background.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                self.log(f"{what} failed: {finished.exception()}", types.MessageType.Warning)

        task.add_done_callback(done)
        return task

    # -- the engine ------------------------------------------------------------------------

    @property
    def stats(self) -> UsageStats | None:
        """Usage statistics, persisted in the state directory (shared with the CLI);
        None when that directory cannot be written (every feature still works).

        Write-behind: recording a generation queues the row for a writer thread, so no
        SQLite commit runs on the event loop; reads wait for queued rows first.
        """
        if self._stats is None and self.writable_state_dir() is not None:
            try:
                self._stats = UsageStats(background=True)
            except (OSError, sqlite3.Error) as exc:
                self._state_unwritable(state_dir(), exc)
        return self._stats

    def writable_state_dir(self) -> Path | None:
        """The state directory, or None when it cannot be written: then usage
        statistics, the request inspector and explanation/report files are off, and the
        user is told once (checked once per server)."""
        if self._state_checked:
            return self._state_dir
        self._state_checked = True
        folder = state_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            self._state_unwritable(folder, exc)
        else:
            self._state_dir = folder
        return self._state_dir

    def _state_unwritable(self, folder: Path, exc: BaseException) -> None:
        self._state_checked, self._state_dir = True, None
        message = (
            f"aethel-lsp cannot write its state directory {folder} ({exc}): usage "
            "statistics, the request inspector and explanation files are off; everything "
            "else works. Fix the directory's permissions or set AETHEL_LSP_STATE_DIR."
        )
        if not self._state_warned:
            self._state_warned = True
            self.show(message, types.MessageType.Warning)
            self.log(message, types.MessageType.Warning)

    @property
    def engine(self) -> MeteredEngine:
        """The engine for the current settings, rebuilt when engine settings change.

        Built lazily: creating it does no I/O, so an offline Ollama costs nothing until
        a request needs it, and a later request just works once Ollama is back.
        """
        wanted = engine_config(self.session.settings)
        if self._engine is None or wanted != self._engine_config:
            old = self._engine
            # The embedded engine's model load and long first prompts, in the server's log.
            inner = create_engine(wanted, progress=lambda step: self.log(step.describe()),
                                  stats=self.stats)
            for wrap in self.engine_wrappers:
                inner = wrap(inner)
            self._engine = MeteredEngine(inner, self.stats, self.redactor)
            self._engine_config = wanted
            self._note_engine()
            if old is not None:
                self.spawn(old.aclose(), "closing the previous engine")
        return self._engine

    async def close_engine(self) -> None:
        """Close the engine's connections, then write the queued usage statistics."""
        engine, self._engine, self._engine_config = self._engine, None, None
        if engine is not None:
            try:
                await asyncio.wait_for(engine.aclose(), 2.0)
            except Exception as exc:  # closing must never fail a shutdown
                log.info("closing the engine failed: %s", exc)
        if self._stats is not None:
            try:  # off the loop: the writer may be waiting on another process's lock
                await asyncio.wait_for(asyncio.to_thread(self._stats.close), 5.0)
            except Exception as exc:
                log.info("writing the usage statistics failed: %s", exc)

    def _note_engine(self) -> None:
        """Remember which backend serves, and where (for aethel/status)."""
        if self._engine is not None:
            self.session.serving_engine = str(self._engine.kind)
            self.session.serving_host = self._engine.host

    async def refresh_engine_state(self) -> EngineStatus | None:
        """Ask the engine whether it serves, and publish the answer in aethel/status."""
        try:
            status = await self.engine.status()
        except EngineError as exc:
            self.engine_failed(exc)
            return None
        self.session.serving_engine = status.engine
        self.session.serving_host = status.host
        if status.available:
            version = f" {status.version}" if status.version else ""
            why = f" ({status.reason})" if status.reason else ""
            self.session.ready_message = f"{status.engine}{version} at {status.host}{why}"
            self.set_engine_state("ready", self.session.ready_message)
        else:
            self.set_engine_state("offline" if status.offline else "error", status.error or "")
        return status

    def engine_failed(self, exc: EngineError) -> None:
        """Reflect an engine failure in aethel/status (offline vs. error)."""
        offline = isinstance(exc, (EngineOffline, NoEngineAvailable)) or (
            isinstance(exc, EngineTimeout) and exc.phase == "connect"
        )
        self._note_engine()
        self.set_engine_state("offline" if offline else "error", str(exc))
        self.log(str(exc), types.MessageType.Warning)

    def engine_succeeded(self, tokens_per_second: float | None = None,
                         metrics: Metrics | None = None) -> None:
        if tokens_per_second:
            self.session.last_tokens_per_second = tokens_per_second
        if metrics is not None:
            self.session.last_cost_usd = metrics.cost_usd
            self.session.last_provider = metrics.provider or "local"
        self._note_engine()
        self.set_engine_state("ready", self.session.ready_message)

    # -- messages to the user ---------------------------------------------------------

    def redactor(self) -> Redactor:
        """Knows the current key values: the configured key variable and the well-known ones.

        Every message the protocol sends passes it (`rpc.AethelProtocol`), so a key an
        upstream echoes can reach no progress, message, log or error.
        """
        names = self.session.settings.api_key_envs
        if self._redactor is None or self._redactor[0] != names:
            self._redactor = (names, Redactor.from_env(self.session.env, *names))
        return self._redactor[1]

    def redact(self, text: str) -> str:
        """Remove every known key value from `text` (for what does not go over LSP)."""
        return self.redactor().known(text)

    def log(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """window/logMessage, filtered by the `logLevel` setting."""
        wanted = _LOG_LEVELS.get(self.session.settings.log_level, 3)
        text = self.redact(message)
        log.log(logging.WARNING if kind <= types.MessageType.Warning else logging.INFO, text)
        if _MESSAGE_LEVEL.get(kind, 3) <= wanted:
            self.window_log_message(types.LogMessageParams(type=kind, message=text))

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=self.redact(message)))

    # -- aethel/status ------------------------------------------------------------------

    def publish_status(self, *, force: bool = False) -> None:
        """Send `aethel/status` when (and only when) something in it changed."""
        snapshot = self.session.status()
        if snapshot == self.session.last_status and not force:
            return
        self.session.last_status = snapshot
        payload = snapshot.to_json()
        payload["message"] = self.redact(payload["message"])
        self.protocol.notify(NOTIFY_STATUS, payload)

    def set_engine_state(self, state: State, message: str = "") -> None:
        self.session.engine_state = state
        self.session.engine_message = message
        self.publish_status()

    # -- configuration issues -----------------------------------------------------------

    def publish_config_issues(self, issues: tuple[ConfigIssue, ...]) -> None:
        """One message per new issue, a log line, and diagnostics on the TOML lines."""
        by_file: dict[Path, list[types.Diagnostic]] = {}
        # Forget issues that are gone, so one that comes back is shown again.
        self.session.shown_issues &= {issue.message for issue in issues}
        for issue in issues:
            text = issue.message
            if text not in self.session.shown_issues:
                self.session.shown_issues.add(text)
                kind = (
                    types.MessageType.Error
                    if issue.severity == "error"
                    else types.MessageType.Warning
                )
                self.show(f"aethel-lsp: {text}", kind)
                self.log(text, kind)
            if issue.path is not None:
                by_file.setdefault(issue.path, []).append(_issue_diagnostic(issue))
        for path in self.session.issue_files - set(by_file):
            by_file[path] = []  # clear diagnostics of files that are fine now
        for path, diagnostics in by_file.items():
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=path.as_uri(), diagnostics=diagnostics)
            )
        self.session.issue_files = {p for p, d in by_file.items() if d}


def engine_config(settings: Settings) -> EngineConfig:
    """The engine part of the settings (compared to decide when to rebuild the engine)."""
    return EngineConfig.from_settings(settings)


def _issue_diagnostic(issue: ConfigIssue) -> types.Diagnostic:
    line = max(0, (issue.line or 1) - 1)
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=line, character=0),
            end=types.Position(line=line + 1, character=0),
        ),
        message=issue.message,
        severity=(
            types.DiagnosticSeverity.Error
            if issue.severity == "error"
            else types.DiagnosticSeverity.Warning
        ),
        source=SERVER_NAME,
        code=issue.key,
    )
