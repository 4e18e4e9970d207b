"""Start the REAL aethel-lsp server process with pytest-lsp, against the fake Ollama.

`start_server(...)` gives a `Harness`: the pytest-lsp client (initialized with real
editor-like capabilities), the fake Ollama, the isolated environment and workspace,
and what the client received (applied edits, `aethel/status` notifications).  Each
test gets its own process, state directory and config directory (no real user file is
ever read or written).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import isolated_environ
from tests.fakes.ollama import FakeOllama

# The real entry point, exactly as editors start it (`aethel-lsp` == `python -m aethel_lsp`).
SERVER_COMMAND = [sys.executable, "-m", "aethel_lsp"]


def full_capabilities(
    *, progress: bool = True, show_document: bool = True, watch: bool = True
) -> types.ClientCapabilities:
    """Capabilities of a modern editor (VS Code-like): every feature we use."""
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(
            work_done_progress=progress,
            show_document=types.ShowDocumentClientCapabilities(support=show_document),
        ),
        workspace=types.WorkspaceClientCapabilities(
            configuration=True,
            apply_edit=True,
            did_change_configuration=types.DidChangeConfigurationClientCapabilities(
                dynamic_registration=True
            ),
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                dynamic_registration=watch, relative_pattern_support=True
            ),
            workspace_folders=True,
        ),
        text_document=types.TextDocumentClientCapabilities(
            code_action=types.CodeActionClientCapabilities(
                resolve_support=types.ClientCodeActionResolveOptions(properties=["command"]),
                data_support=True,
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(
                        value_set=[
                            types.CodeActionKind.QuickFix,
                            types.CodeActionKind.RefactorRewrite,
                            types.CodeActionKind.Source,
                        ]
                    )
                ),
            ),
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(),
        ),
    )


@dataclass
class Harness:
    client: LanguageClient
    fake: FakeOllama | None
    root: Path
    env: dict[str, str]
    init_result: types.InitializeResult
    applied: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[types.Registration] = field(default_factory=list)

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def open(self, name: str, text: str, language_id: str = "python") -> str:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language_id, version=1, text=text
                )
            )
        )
        return uri

    async def command(self, name: str, args: dict[str, Any] | None = None) -> Any:
        return await asyncio.wait_for(
            self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command=name, arguments=[args] if args is not None else None
                )
            ),
            30,
        )

    def progress_for_title(self, title: str) -> list[list[Any]]:
        return [
            reports
            for reports in self.client.progress_reports.values()
            if reports
            and isinstance(reports[0], types.WorkDoneProgressBegin)
            and reports[0].title == title
        ]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.01)
        raise AssertionError(f"condition not met within {timeout} s")

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_session(), 10)
        finally:
            if self.fake is not None:
                self.fake.stop()


async def start_server(
    base: Path,
    fake: FakeOllama | None,
    *,
    host: str | None = None,
    capabilities: types.ClientCapabilities | None = None,
    init_options: Any = None,
    editor_settings: Any = None,
    user_config: str | None = None,
    workspace_files: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Harness:
    """Start the server; settings point `host` at the fake unless told otherwise."""
    root = base / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (workspace_files or {}).items():
        (root / name).write_text(text, encoding="utf-8")
    extra = dict(extra_env or {})
    if host is None and fake is not None and "OLLAMA_HOST" not in extra:
        extra["OLLAMA_HOST"] = fake.url
    env = isolated_environ(base / "env", extra)
    if user_config is not None:
        path = Path(env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(user_config, encoding="utf-8")
    config = ClientServerConfig(server_command=SERVER_COMMAND, server_env=env)
    client = await config.start()
    assert isinstance(client, LanguageClient)
    applied: list[types.ApplyWorkspaceEditParams] = []
    statuses: list[dict[str, Any]] = []
    registrations: list[types.Registration] = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(
        _client: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        applied.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    @client.feature("aethel/status")
    def on_status(_client: LanguageClient, params: Any) -> None:
        statuses.append(params._asdict() if hasattr(params, "_asdict") else dict(params))

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def on_register(_client: LanguageClient, params: types.RegistrationParams) -> None:
        registrations.extend(params.registrations)

    if editor_settings is not None:
        client.set_configuration(editor_settings, section="aethel")
    result = await asyncio.wait_for(
        client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities or full_capabilities(),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
                initialization_options=init_options,
            )
        ),
        20,
    )
    harness = Harness(client, fake, root, env, result, applied, statuses, registrations)
    # The `initialized` handler publishes a status, then probes the engine in the
    # background and publishes the outcome (with a message): wait for that, so tests
    # start from a settled server.
    await harness.wait_for(lambda: any(s.get("message") for s in statuses), timeout=10)
    return harness
