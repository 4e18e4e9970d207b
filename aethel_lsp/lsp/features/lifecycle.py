"""Initialize, settings from every source, reload on change, and the first status.

Sources and precedence are in docs/configuration.md.  Files are re-read when the
editor reports a change (`workspace/didChangeWatchedFiles`, registered dynamically
when the client can), and also whenever their modification time differs from what we
read last (`ensure_fresh_config`), so clients without file watching still pick up a
saved `aethel.toml` on the next request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from aethel_lsp.engine.factory import import_backends
from aethel_lsp.lsp.session import AethelServer, ClientFeatures
from aethel_lsp.protocol import CONFIG_SECTION, REQUEST_BOOKKEEPING

WATCH_ID = "aethel-config-files"
CONFIG_CHANGE_ID = "aethel-config-change"


def register(server: AethelServer) -> None:
    @server.feature(types.INITIALIZE)
    def on_initialize(ls: AethelServer, params: types.InitializeParams) -> None:
        session = ls.session
        session.client = ClientFeatures.from_capabilities(params.capabilities)
        session.roots = workspace_roots(params)
        session.init_options = unwrap_section(params.initialization_options)
        ls.reload_config()

    @server.feature(types.INITIALIZED)
    async def on_initialized(ls: AethelServer, params: types.InitializedParams) -> None:
        await pull_editor_settings(ls)
        ls.reload_config(publish=True)
        await register_watchers(ls)
        ls.publish_status(force=True)
        ls.spawn(check_engine(ls), "engine status check")

    @server.feature(types.SHUTDOWN)
    async def on_shutdown(ls: AethelServer, *args: object) -> None:
        """Close the engine's connections (pygls cancels the requests still running)."""
        await ls.close_engine()

    @server.feature(REQUEST_BOOKKEEPING)
    def bookkeeping(ls: AethelServer, *args: object) -> dict[str, int]:
        """Sizes of the maps a long session could grow (the soak benchmark reads them)."""
        return ls.bookkeeping()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_config_change(
        ls: AethelServer, params: types.DidChangeConfigurationParams
    ) -> None:
        pushed = params.settings
        if isinstance(pushed, dict) and CONFIG_SECTION in pushed:
            ls.session.editor_settings = pushed[CONFIG_SECTION]
        else:
            await pull_editor_settings(ls)
        ls.reload_config(publish=True)
        ls.log("Settings reloaded (workspace/didChangeConfiguration).")

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def on_folders_changed(ls: AethelServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        """pygls updates its folder list first; the first folder with a config wins."""
        paths = (to_fs_path(folder.uri) for folder in ls.workspace.folders.values())
        ls.session.roots = [Path(p) for p in paths if p]
        ls.reload_config(publish=True)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def on_files_changed(ls: AethelServer, params: types.DidChangeWatchedFilesParams) -> None:
        watched = {p.resolve() for p in ls.config_file_paths()}
        for change in params.changes:
            path = to_fs_path(change.uri)
            if path and Path(path).resolve() in watched:
                ls.reload_config(publish=True)
                ls.log(f"Settings reloaded: {path} changed.")
                return


async def check_engine(ls: AethelServer) -> None:
    """The first engine status check, after `initialize` has been answered.

    The backends (httpx) are imported on a worker thread first: they are not needed to
    answer `initialize`, and importing them on the event loop would hold up the
    editor's first requests.
    """
    await asyncio.to_thread(import_backends)
    await ls.refresh_engine_state()


def unwrap_section(options: object) -> object:
    """Accept both `{...settings}` and `{"aethel": {...settings}}` from clients."""
    if isinstance(options, dict) and set(options) == {CONFIG_SECTION}:
        return options[CONFIG_SECTION]
    return options


def workspace_roots(params: types.InitializeParams) -> list[Path]:
    """Workspace folders, else rootUri, else rootPath (older clients)."""
    uris = [f.uri for f in params.workspace_folders or []]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    roots = [Path(p) for p in (to_fs_path(u) for u in uris) if p]
    if not roots and params.root_path:
        roots = [Path(params.root_path)]
    return roots


async def pull_editor_settings(ls: AethelServer) -> None:
    """workspace/configuration, section `aethel` (when the client supports it)."""
    if not ls.session.client.configuration:
        return
    try:
        result = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=CONFIG_SECTION)])
            ),
            timeout=5.0,
        )
    except Exception as exc:  # a client that fails here must not break startup
        ls.log(f"Could not read the editor settings (workspace/configuration): {exc}")
        return
    ls.session.editor_settings = result[0] if result else None


async def register_watchers(ls: AethelServer) -> None:
    """Ask the client to tell us when a config file changes (dynamic registration)."""
    registrations: list[types.Registration] = []
    client = ls.session.client
    if client.watched_files_dynamic:
        watchers: list[types.FileSystemWatcher] = [
            types.FileSystemWatcher(glob_pattern="**/aethel.toml"),
            types.FileSystemWatcher(glob_pattern="**/pyproject.toml"),
        ]
        user_file = ls.config_file_paths()[0]
        watchers.append(
            types.FileSystemWatcher(
                glob_pattern=types.RelativePattern(
                    base_uri=user_file.parent.as_uri(), pattern=user_file.name
                )
            )
        )
        registrations.append(
            types.Registration(
                id=WATCH_ID,
                method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers),
            )
        )
    if client.configuration_dynamic:
        registrations.append(
            types.Registration(
                id=CONFIG_CHANGE_ID,
                method=types.WORKSPACE_DID_CHANGE_CONFIGURATION,
                register_options=types.DidChangeConfigurationRegistrationOptions(
                    section=CONFIG_SECTION
                ),
            )
        )
    if not registrations:
        return
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(
                types.RegistrationParams(registrations=registrations)
            ),
            timeout=5.0,
        )
    except Exception as exc:
        ls.log(
            f"The editor refused to watch the config files ({exc}); "
            "they are re-read on the next request instead."
        )
