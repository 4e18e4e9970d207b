"""What every subcommand shares: `CliContext` (output, settings, engine) and `CliError`.

Kept apart from `main` (the subcommand table) so that subcommand modules can import it
without an import cycle through the table that lazily imports them.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # rich (output) and the engine load only when a subcommand runs
    from aethel_lsp.cli.output import Output
    from aethel_lsp.config import Settings
    from aethel_lsp.engine import Engine, EngineConfig


class CliContext:
    """What every subcommand needs: output, resolved settings, and an engine on demand."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.out)
            self.out.know_key_env(*self._settings.api_key_envs)
        return self._settings

    @property
    def host(self) -> str:
        """`--host` > user config > `OLLAMA_HOST` > default, normalized like Ollama does."""
        from aethel_lsp.engine import parse_ollama_host

        raw = self.args.host or self.settings.host
        try:
            return parse_ollama_host(raw)
        except ValueError as exc:
            raise CliError(f"Invalid host {raw!r}: {exc}.") from exc

    def engine_config(self) -> EngineConfig:
        return cli_engine_config(self.settings, self.host, self.args.host, self.args.engine)

    @property
    def engine(self) -> Engine:
        """The configured engine, metered so `aethel-lsp stats` counts CLI generations too."""
        if self._engine is None:
            from aethel_lsp.engine import create_engine
            from aethel_lsp.engine.metered import MeteredEngine
            from aethel_lsp.engine.stats import UsageStats

            stats = UsageStats()
            engine = create_engine(self.engine_config(), progress=self._embedded_progress,
                                   stats=stats)
            if self.settings.inspector.enabled:  # record what the CLI sends (aethel-lsp inspect)
                from aethel_lsp.engine.inspector import inspecting

                engine = inspecting(engine, self.settings)
            self._engine = MeteredEngine(engine, stats, lambda: self.out.redactor)
        return self._engine

    def _embedded_progress(self, progress: Any) -> None:
        """The embedded engine's long first steps (model load, first long prompt)."""
        if not self.out.json_mode:
            self.out.note(str(progress.describe()))

    def provider_engine(self, name: str) -> Engine:
        """`--provider NAME`: that provider's engine ("local" = the configured engine)."""
        from aethel_lsp.engine import EngineError
        from aethel_lsp.engine.providers.router import router_of

        router = router_of(self.engine)
        if router is None:
            if name == "local":
                return self.engine
            raise CliError(f"There is no provider named {name!r}: no providers are configured "
                           "(define them under [providers.NAME] in "
                           "~/.config/aethel-lsp/config.toml).")
        try:
            return router.provider(name)
        except EngineError as exc:
            raise CliError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()


class CliError(Exception):
    """A failure of the command itself (not of the engine), shown as one line."""


class CliUsageError(CliError):
    """Bad input on the command line found after parsing (exit 2, like argparse's)."""


def cli_engine_config(
    settings: Settings, host: str, host_arg: str | None, engine_arg: str | None
) -> EngineConfig:
    """The engine a CLI command talks to: the settings', with `--engine` / `--host` on top.

    An explicit `--host` names an Ollama, unless the engine is (or is configured as) an
    OpenAI-compatible server, whose base URL it then is.  One rule for every subcommand.
    """
    import dataclasses

    from aethel_lsp.engine import EngineChoice, EngineConfig

    kind = cast(EngineChoice, engine_arg or settings.engine)  # argparse's choices
    if host_arg and not engine_arg and kind != "openai":
        kind = "ollama"
    base_url = settings.openai.base_url
    if kind == "openai" and host_arg:
        base_url = host_arg
    if kind == "openai" and not base_url:
        raise CliError(
            'engine = "openai" needs the server\'s base URL: pass --host URL '
            "(e.g. --host http://127.0.0.1:8000/v1) or set `openai.baseUrl` in "
            "~/.config/aethel-lsp/config.toml."
        )
    return dataclasses.replace(
        EngineConfig.from_settings(settings), kind=kind, host=host, openai_base_url=base_url
    )


def load_settings(out: Output) -> Settings:
    """The user's settings (user config file over `OLLAMA_HOST` over defaults).

    Problems in the config file are warnings: the CLI still runs with the defaults.
    """
    from aethel_lsp.config import load_config

    resolved = load_config(roots=[], env=os.environ)
    for issue in resolved.issues:
        # compiler style `file:line: message`; the message need not name the file again
        message = issue.message.replace(f" in {issue.path}", "") if issue.path else issue.message
        out.warning(f"{issue.where()}: {message}")
    return resolved.settings
