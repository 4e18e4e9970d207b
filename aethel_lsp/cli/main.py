"""`aethel-lsp`: serve LSP (stdio by default, `--tcp` for TCP), or run a subcommand.

Subcommands are rows of `SUBCOMMANDS`; adding one is an additive edit: write
`def _mycmd(args, ctx) -> int` (sync or async; or put it in its own module and use
`lazy("aethel_lsp.cli.mycmd", "run")`), then append
`Subcommand("mycmd", "one-line help", _mycmd, arguments=_mycmd_arguments)`.
Every subcommand automatically gets `--host`, `--engine` and `--json`.

Conventions: exit 0 on success, 1 when the engine or the command fails (one line
`error: ...` on stderr), 2 for bad usage (argparse), 130 on Ctrl-C.  With `--json`
stdout carries exactly the camelCase `to_json()` shapes the LSP commands return.
Host precedence: `--host` > user config file > `OLLAMA_HOST` > http://127.0.0.1:11434.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aethel_lsp import __version__
from aethel_lsp.cli.context import CliContext, CliError, CliUsageError

if TYPE_CHECKING:  # rich (cli_output) and the engine load only when a subcommand runs
    from aethel_lsp.cli.output import Output
    from aethel_lsp.engine import (
        Chunk,
        Engine,
        EngineError,
        EngineStatus,
        GenerateResult,
        UsageStats,
    )

CommandResult = int | Awaitable[int]
Runner = Callable[[argparse.Namespace, "CliContext"], CommandResult]


@dataclass(frozen=True)
class Subcommand:
    """One row of the command table."""

    name: str
    help: str
    run: Runner
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


def lazy(module: str, attribute: str = "run") -> Runner:
    """A runner imported only when its subcommand runs (keeps `aethel-lsp --help` fast)."""

    def run(args: argparse.Namespace, ctx: CliContext) -> CommandResult:
        target = getattr(importlib.import_module(module), attribute)
        return cast(CommandResult, target(args, ctx))

    return run


# ---------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------
def _provider_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", help="a provider of the config ([providers.NAME]); "
                                           "'local' is the configured engine")


async def _status(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import installed_table, providers_lines, status_summary
    from aethel_lsp.engine import EngineError
    from aethel_lsp.engine.factory import unbuilt_status

    try:
        engine = ctx.provider_engine(args.provider) if args.provider else ctx.engine
        status = await _status_with_details(engine)
    except EngineError as exc:  # no engine to ask (e.g. a missing embedded.modelPath)
        status = unbuilt_status(ctx.engine_config(), exc)
    try:
        providers = await _providers_json(ctx, args.provider)
    except EngineError:  # no engine built, so no providers behind it
        providers = []
    if args.json:
        ctx.out.json({**status.to_json(), "providers": providers})
    if not args.json:
        for line in providers_lines(providers):
            ctx.out.note(line)
    if not status.available:
        ctx.out.error(status.error or _offline_message(status.host))
        return 1
    if not args.json:
        ctx.out.line(status_summary(status))
        if status.reason and status.engine != "ollama":
            ctx.out.note(status.reason)
        if status.models:
            ctx.out.table(installed_table(status.models))
    return 0


async def _providers_json(ctx: CliContext, only: str | None) -> list[dict[str, Any]]:
    """Each configured provider with its endpoints' health (checked now)."""
    from aethel_lsp.engine.providers.router import router_of

    router = router_of(ctx.engine)
    if router is None:
        return []
    entries = await router.providers_json()
    return [e for e in entries if only in (None, "local") or e["name"] == only]


async def _status_with_details(engine: Engine) -> EngineStatus:
    """`status()` with each model enriched by `show`, so `status --json` carries the same
    model objects as `models` (exact parameters, context length) instead of nulls; the
    plain listing is kept when details cannot be read."""
    import dataclasses

    from aethel_lsp.engine import EngineError

    status = await engine.status()
    if not status.available or not status.models:
        return status
    try:
        detailed = await engine.list_models_detailed()
    except EngineError:
        return status
    return dataclasses.replace(status, models=tuple(detailed))


def _offline_message(host: str) -> str:
    return (
        f"Ollama is not running at {host}. Start it with `ollama serve` "
        "(or pass --host / set OLLAMA_HOST if it runs elsewhere)."
    )


async def _models(args: argparse.Namespace, ctx: CliContext) -> int:
    import dataclasses

    from aethel_lsp.cli.output import models_table

    if args.provider and args.provider != "local":  # named as they are chosen: provider/model
        listed = await ctx.provider_engine(args.provider).list_models_detailed()
        models = [dataclasses.replace(m, name=f"{args.provider}/{m.name}") for m in listed]
    else:
        models = await ctx.engine.list_models_detailed()
    if args.json:
        ctx.out.json([m.to_json() for m in models])
    elif models:
        ctx.out.table(models_table(models))
    else:
        ctx.out.line(f"No models installed. Install one: {_install_hint(ctx)}.")
    return 0


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name, e.g. qwen2.5-coder:1.5b")


async def _show(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import model_details
    from aethel_lsp.engine.base import show_with_listing

    model = await show_with_listing(ctx.engine, args.model)
    if args.json:
        ctx.out.json(model.to_json())
    else:
        for line in model_details(model):
            ctx.out.line(line)
    return 0


async def _ps(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import running_table
    from aethel_lsp.engine.errors import LoadedModelsUnknown

    try:
        running = await ctx.engine.running()
    except LoadedModelsUnknown as exc:
        if args.json:  # `[]` would claim that nothing is loaded
            raise CliError(str(exc)) from exc
        ctx.out.line(str(exc))
        return 0
    if args.json:
        ctx.out.json([m.to_json() for m in running])
    elif running:
        ctx.out.table(running_table(running))
    else:
        ctx.out.line("No model is loaded.")
    return 0


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default="",
                        help="model to download, e.g. qwen2.5-coder:1.5b; none: the embedded "
                        "engine's SmolLM2-135M; hf:OWNER/REPO/FILE.gguf: a GGUF from Hugging "
                        "Face for the embedded engine")


async def _pull(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.pull import show_pull

    if not args.model or args.model.startswith("hf:"):  # the embedded engine's model dir
        from aethel_lsp.engine.embedded import embedded_pull
        from aethel_lsp.engine.model_fetch import DEFAULT_MODEL
        from aethel_lsp.paths import models_dir

        await show_pull(ctx, embedded_pull(args.model))
        if not args.json:
            ctx.out.line(f"Pulled {args.model or DEFAULT_MODEL.name} into {models_dir()}.")
        return 0
    await show_pull(ctx, ctx.engine.pull(args.model))
    if not args.json:
        ctx.out.line(f"Pulled {args.model}.")
    return 0


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the prompt ('-' reads it from stdin)")
    parser.add_argument("--model", "-m", help="model to use (default: config, else best installed)")
    parser.add_argument("--system", help="system prompt")
    parser.add_argument("--temperature", type=_temperature, help="sampling temperature (>= 0)")
    parser.add_argument("--max-tokens", type=_positive_int, help="stop after this many tokens")
    parser.add_argument("--no-stream", action="store_true", help="print the answer when complete")
    _provider_argument(parser)


def _temperature(text: str) -> float:
    """A sampling temperature: finite (JSON cannot carry `nan`/`inf`) and not negative."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0 (0 = deterministic)")
    return value


def _positive_int(text: str) -> int:
    """A count or a budget: only > 0 means something (Ollama reads -1 as "unbounded")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return value


def _existing_dir(text: str) -> str:
    """A workspace folder: a typo must not silently mean "no workspace config"."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return text


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return value


def _bind_address(text: str) -> str:
    """An IP address to listen on (a name would be resolved to who knows which interface)."""
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address (e.g. 127.0.0.1 or ::1)"
        ) from None
    return text.strip("[]")


def _read_prompt(source: str) -> str:
    prompt = sys.stdin.read() if source == "-" else source
    if not prompt.strip():
        where = "stdin was empty" if source == "-" else "the prompt is empty"
        raise CliUsageError(f"Nothing to generate from: {where}. Pass a prompt (or pipe one "
                            "into `aethel-lsp generate -`).")
    return prompt


async def _generate(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.pull import fetch_embedded_model_if_needed
    from aethel_lsp.engine import GenerateRequest, GenerationOptions, collect
    from aethel_lsp.engine.providers.limits import report_waits

    prompt = _read_prompt(args.prompt)
    if args.provider and args.provider != "local":
        model = _provider_model(ctx, args.provider, args.model)
    else:
        await fetch_embedded_model_if_needed(ctx)
        model = await _choose_model(ctx, args.model)
    options = GenerationOptions(temperature=args.temperature, num_predict=args.max_tokens)
    request = GenerateRequest(model=model, prompt=prompt, system=args.system, options=options)
    with report_waits(ctx.out.note):  # "waiting for rate limit (n s)", on stderr
        if args.json or args.no_stream:
            result = await ctx.engine.generate(request)
        else:
            stream = _echo(ctx, ctx.engine.stream_generate(request))
            async with contextlib.aclosing(stream) as chunks:
                result = await collect(chunks, model)
            ctx.out.write_text("\n")
    _print_result(ctx, result, streamed=not (args.json or args.no_stream))
    return 0


async def _echo(ctx: CliContext, chunks: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
    """Pass chunks through, writing their text to the terminal as they arrive."""
    from aethel_lsp.engine import closing_stream

    async with contextlib.aclosing(closing_stream(chunks)) as items:
        async for chunk in items:
            if chunk.text:
                ctx.out.write_text(chunk.text)
            yield chunk


def _print_result(ctx: CliContext, result: GenerateResult, *, streamed: bool) -> None:
    from aethel_lsp.cli.output import metrics_line

    if ctx.args.json:
        ctx.out.json(result.to_json())
        return
    if not streamed:
        ctx.out.write_text(result.text.rstrip("\n") + "\n")
    for note in result.metrics.fallback_from:
        ctx.out.note(f"{note.provider} did not serve: {note.reason}")
    ctx.out.note(f"{result.metrics.model} · {metrics_line(result.metrics)}")


def _provider_model(ctx: CliContext, provider: str, explicit: str | None) -> str:
    """`--provider NAME [--model M]` as the `NAME/M` the router routes."""
    ctx.provider_engine(provider)  # an unknown provider is a clear error here
    if explicit:
        return explicit if explicit.startswith(f"{provider}/") else f"{provider}/{explicit}"
    settings = ctx.settings.providers.get(provider)
    if settings is not None and settings.model:
        return f"{provider}/{settings.model}"
    raise CliError(f"Which model of provider {provider!r}? Pass --model (see `aethel-lsp models "
                   f"--provider {provider}`) or set `model` under [providers.{provider}].")


async def _choose_model(ctx: CliContext, explicit: str | None) -> str:
    """`--model`, else the configured model, else the model the language server would
    pick (`pick_model`), so the CLI and the editor answer with the same model."""
    if explicit:
        return explicit
    if ctx.settings.model:
        return ctx.settings.model
    from aethel_lsp.engine import EngineError
    from aethel_lsp.engine.recommend import SMALL_CODE_MODEL, pick_model

    try:
        installed = await ctx.engine.list_models_detailed()
    except EngineError as exc:
        if not _local_falls_back(ctx, exc):
            raise
        # The local leg fails the same way and the chain moves on with each provider's
        # own `model`; the name only has to be one the local engine would be asked for.
        return SMALL_CODE_MODEL
    picked = pick_model(installed, "chat")
    if picked:
        return picked
    raise CliError(
        f"No model that can generate text is installed. Install one ({_install_hint(ctx)}), "
        "or pass --model."
    )


def _local_falls_back(ctx: CliContext, exc: EngineError) -> bool:
    """The local engine cannot even list its models, but `fallback` goes on after it."""
    from aethel_lsp.config.providers import LOCAL
    from aethel_lsp.engine.providers.router import UNAVAILABLE, router_of

    router = router_of(ctx.engine)
    if router is None or not isinstance(exc, UNAVAILABLE):
        return False
    chain = router.config.fallback
    return LOCAL in chain and chain.index(LOCAL) < len(chain) - 1


def _install_hint(ctx: CliContext) -> str:
    """`aethel-lsp pull` where the engine downloads models (Ollama); else what to do."""
    from aethel_lsp.engine.recommend import SMALL_CODE_MODEL, install_advice

    if ctx.engine.kind == "ollama":
        return f"`aethel-lsp pull {SMALL_CODE_MODEL}`"
    return install_advice(ctx.engine.kind, SMALL_CODE_MODEL)


def _recommend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measure", action="store_true",
                        help="probe each installed model and recommend for this machine")
    parser.add_argument("--workspace", type=_existing_dir,
                        help="workspace whose config applies (default: cwd)")


async def _recommend(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import rows_table
    from aethel_lsp.engine.recommend import recommend_installed

    if getattr(args, "measure", False):
        from aethel_lsp.cli.doctor import recommend_measured

        return await recommend_measured(args, ctx)

    recommendations = await recommend_installed(ctx.engine)
    if args.json:
        ctx.out.json([r.to_json() for r in recommendations])
        return 0
    rows = [
        (r.use_case, r.recommended, "yes" if r.recommended_installed else "no", r.model or "–")
        for r in recommendations
    ]
    ctx.out.table(rows_table(("USE CASE", "RECOMMENDED", "INSTALLED", "USE NOW"), rows))
    for r in recommendations:
        ctx.out.line(f"{r.use_case}: {r.reason}")
    return 0


def _stats(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import usage_table
    from aethel_lsp.engine.stats import UsageStats
    from aethel_lsp.engine.types import format_usd

    if args.model and not args.clear:
        raise CliUsageError("--model only applies with --clear (`aethel-lsp stats --clear "
                            f"--model {args.model}`); `aethel-lsp stats` shows every model.")
    stats = UsageStats()
    if args.clear:
        return _clear_stats(ctx, stats, args.model)
    usage = stats.to_json()
    total = stats.total_cost_usd()
    if stats.notice:
        ctx.out.warning(stats.notice)
    if args.json:
        ctx.out.json({**usage, "totalCostUsd": None if total is None else round(total, 6)})
    elif usage:
        ctx.out.table(usage_table(usage))
        if total is not None:
            ctx.out.line(f"Total cost: {format_usd(total)}")
        ctx.out.note(f"from {stats.path}")
    else:
        ctx.out.line(f"No generations recorded yet ({stats.path}).")
    return 0


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clear", action="store_true",
                        help="delete the recorded statistics (all, or one --model's)")
    parser.add_argument("--model", "-m", help="with --clear: only this model's rows")


def _clear_stats(ctx: CliContext, stats: UsageStats, model: str | None) -> int:
    import sqlite3

    try:
        gone = stats.clear(model)
    except sqlite3.Error as exc:
        raise CliError(f"Could not clear {stats.path}: {exc}; try again.") from exc
    if ctx.args.json:
        ctx.out.json({"cleared": True, "model": model, "generations": gone,
                      "path": str(stats.path)})
    else:
        whose = f" of {model}" if model else ""
        plural = "" if gone == 1 else "s"
        probes = "its" if model else "all"
        ctx.out.line(f"Deleted {gone} recorded generation{plural}{whose} and {probes} speed "
                     f"measurements from {stats.path}.")
    return 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model for every scenario (default: best installed)")


async def _demo(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.demo import run_demo

    return await run_demo(args, ctx)


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-probe", action="store_true", help="skip the timed speed probes")
    parser.add_argument("--workspace", type=_existing_dir,
                        help="workspace whose config applies (default: cwd)")


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--count", type=_positive_int, default=5,
                        help="how many (newest last)")
    parser.add_argument("--clear", action="store_true", help="delete every recorded request")
    parser.add_argument("--workspace", type=_existing_dir,
                        help="workspace whose config applies (default: cwd)")


def _distill_arguments(parser: argparse.ArgumentParser) -> None:
    from aethel_lsp.cli.distill import arguments

    arguments(parser)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="Aethel files, or directories of .ae files"
    )
    parser.add_argument("--timeout-ms", type=_positive_int, help="time limit per solver query (ms)")
    parser.add_argument("--intent-budget-ms", type=_positive_int, help="solver time per intent")
    parser.add_argument("--file-budget-ms", type=_positive_int, help="solver time per file")
    parser.add_argument(
        "--strict", action="store_true", help='"not proven" (solver unknown, budget) fails'
    )
    parser.add_argument(
        "--verify-implied",
        action="store_true",
        help="also require each verify line that is not a state update to follow from the guard",
    )
    parser.add_argument(
        "--symbolic-overflow",
        action="store_true",
        help="also require arithmetic on unknowns to stay within signed 64 bits",
    )


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("status", "is the engine running? version, models, loaded models, providers",
               _status, _provider_argument),
    Subcommand("models", "installed models with parameters, context and capabilities", _models,
               _provider_argument),
    Subcommand("show", "details of one model", _show, _show_arguments),
    Subcommand("ps", "models loaded in memory", _ps),
    Subcommand("pull", "download a model, with a progress bar", _pull, _pull_arguments),
    Subcommand("generate", "generate text from a prompt, streamed", _generate, _generate_arguments),
    Subcommand("recommend", "which installed model to use for what (--measure: on this machine)",
               _recommend, _recommend_arguments),
    Subcommand("stats", "usage statistics recorded across runs", _stats, _stats_arguments),
    Subcommand("demo", "the four demo scenarios, end to end", _demo, _demo_arguments),
    Subcommand(
        "check",
        "Aethel diagnostics for files; exit 1 on errors",
        lazy("aethel_lsp.cli.check"),
        _check_arguments,
    ),
    Subcommand(
        "doctor",
        "diagnose the setup: engine, models, FIM, speed, memory, config; exit 1 on errors",
        lazy("aethel_lsp.cli.doctor", "doctor"),
        _doctor_arguments,
    ),
    Subcommand(
        "distill",
        "best of N: several candidate contracts, checked, ranked, the best printed",
        lazy("aethel_lsp.cli.distill"),
        _distill_arguments,
    ),
    Subcommand(
        "inspect",
        "the last requests sent to the engine (needs inspector.enabled)",
        lazy("aethel_lsp.cli.doctor", "inspect"),
        _inspect_arguments,
    ),
]


# ---------------------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------------------
def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--host",
        help="Ollama host (any OLLAMA_HOST form); overrides the config file and OLLAMA_HOST",
    )
    common.add_argument(
        "--engine",
        choices=("auto", "ollama", "openai", "embedded"),
        help="engine to use (default: config; with --host, `ollama` unless config says openai)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return common


def build_parser(subcommands: Sequence[Subcommand] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aethel-lsp",
        description="A language server that brings a local LLM into every editor. "
        "Without a subcommand it serves LSP over stdio.",
        epilog="Options of one command: `aethel-lsp COMMAND --help`. Docs: docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"aethel-lsp {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP over stdio (default)")
    parser.add_argument("--tcp", action="store_true", help="serve LSP over TCP instead of stdio")
    parser.add_argument("--bind", default="127.0.0.1", type=_bind_address,
                        help="IP address for --tcp")
    parser.add_argument("--port", type=_port, default=2087, help="port for --tcp")
    parser.add_argument(
        "--token-file",
        help="with --tcp: a file holding a secret the client must send as "
        "initializationOptions.token",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_options()
    for command in subcommands if subcommands is not None else SUBCOMMANDS:
        p = sub.add_parser(command.name, help=command.help, parents=[common])
        if command.arguments is not None:
            command.arguments(p)
        p.set_defaults(_subcommand=command)
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run the language server until the client exits."""
    try:
        from aethel_lsp.lsp.server import (  # the one arrow from cli/ to lsp/
            create_server,
            install_stderr_log,
            serve_tcp,
        )
    except ImportError as exc:
        print(f"error: the language server is not available ({exc}).", file=sys.stderr)
        return 1
    if args.token_file and not args.tcp:
        print("error: --token-file only applies to --tcp.", file=sys.stderr)
        return 2
    token = _read_token(args.token_file) if args.token_file else None
    if args.token_file and token is None:
        return 2
    server = create_server()
    install_stderr_log(server.redact)
    if args.tcp:
        try:
            return serve_tcp(server, args.bind, args.port, token,
                             on_listening=lambda: _announce_tcp(args.bind, args.port, token))
        except OSError as exc:  # port busy, address not on this machine, no permission
            reason = exc.strerror or str(exc)
            print(f"error: cannot serve LSP on {args.bind}:{args.port}: {reason}.",
                  file=sys.stderr)
            return 2
    else:
        if sys.stdin.isatty():  # a person typed `aethel-lsp`: say why nothing happens
            print("aethel-lsp: serving LSP on stdin/stdout, for an editor to talk to. "
                  "Press Ctrl-D to stop; `aethel-lsp --help` lists the commands "
                  "(status, generate, demo, ...).", file=sys.stderr)
        server.start_io()
    return 0


def _announce_tcp(bind: str, port: int, token: str | None) -> None:
    """Said once the port is bound: a busy port gets only its `error:` line."""
    print(f"aethel-lsp: serving LSP on {bind}:{port}, one client at a time (Ctrl-C stops).",
          file=sys.stderr)
    if not _is_loopback_ip(bind):
        print(f"aethel-lsp: warning: {bind} is reachable from other machines; "
              "anyone who can reach it can read your code through the server.",
              file=sys.stderr)
    if token is None:
        print("aethel-lsp: warning: any process on this machine can connect to this port "
              "and read your code through the server; prefer stdio (the default), or "
              "pass --token-file.", file=sys.stderr)


def _is_loopback_ip(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address).is_loopback  # --bind was checked by _bind_address


def _read_token(path: str) -> str | None:
    """The shared secret of `--token-file` (surrounding whitespace ignored), or None + error."""
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        # never str(exc) of a decode error: it quotes the file's bytes
        reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else (
            exc.strerror or exc.__class__.__name__)
        print(f"error: cannot read --token-file {path}: {reason}. Point it at a readable "
              "UTF-8 file holding the secret, e.g. one written by "
              "`python -c 'import secrets; print(secrets.token_hex(24))' > FILE`.",
              file=sys.stderr)
        return None
    if len(token) < 16:
        print(f"error: the token in {path} is too short: use at least 16 characters, e.g. "
              "`python -c 'import secrets; print(secrets.token_hex(24))' > FILE`.",
              file=sys.stderr)
        return None
    return token


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Subcommand | None = getattr(args, "_subcommand", None)
    if command is None:
        return serve(args)
    from aethel_lsp.cli.output import Output

    out = Output(json_mode=args.json)
    out.install_excepthook()
    try:
        return asyncio.run(_run(command, args, out))
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130


async def _run(command: Subcommand, args: argparse.Namespace, out: Output) -> int:
    from aethel_lsp.engine import EngineError

    ctx = CliContext(args, out)
    try:
        result = command.run(args, ctx)
        if inspect.isawaitable(result):
            result = await result
        return int(result)
    except CliUsageError as exc:
        out.error(str(exc))
        return 2
    except (EngineError, CliError) as exc:
        out.error(str(exc))
        return 1
    finally:
        await ctx.aclose()


if __name__ == "__main__":
    raise SystemExit(main())
