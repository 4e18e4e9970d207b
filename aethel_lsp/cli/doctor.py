"""`aethel-lsp doctor`, `aethel-lsp inspect` and `aethel-lsp recommend --measure`.

Kept out of `cli.py` (which only registers them) so that `aethel-lsp --help` stays fast.
With `--json`, each prints the same object its LSP command returns
(`aethel.doctor`, `aethel.inspectLast`, `aethel.recommendModels`).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from aethel_lsp.config import ResolvedConfig, Settings, load_config
from aethel_lsp.doctor.checks import run_doctor
from aethel_lsp.engine import (
    EngineConfig,
    UsageStats,
    create_engine,
    parse_ollama_host,
)
from aethel_lsp.engine.inspector import inspect_json, inspector_for
from aethel_lsp.engine.measure import measure_installed, measured_json
from aethel_lsp.engine.types import JsonDict

if TYPE_CHECKING:
    from aethel_lsp.cli.context import CliContext

INSPECT_DEFAULT = 5


def _config(args: argparse.Namespace, ctx: CliContext) -> ResolvedConfig:
    """The settings as the server would resolve them in the workspace `--workspace` (cwd);
    the output learns the configured key variable, so the key never shows."""
    root = Path(getattr(args, "workspace", None) or Path.cwd())
    config = load_config(roots=[root], env=os.environ)
    ctx.out.know_key_env(*config.settings.api_key_envs)
    return config


def _host(args: argparse.Namespace) -> str | None:
    if not args.host:
        return None
    from aethel_lsp.cli.context import CliError

    try:
        return parse_ollama_host(args.host)
    except ValueError as exc:
        raise CliError(f"Invalid host {args.host!r}: {exc}.") from exc


def engine_config(args: argparse.Namespace, settings: Settings) -> EngineConfig:
    """The same engine rule as every other subcommand (`cli.cli_engine_config`)."""
    from aethel_lsp.cli.context import cli_engine_config

    host = _host(args) or parse_ollama_host(settings.host)
    return cli_engine_config(settings, host, args.host, args.engine)


# -- doctor -------------------------------------------------------------------------------


async def doctor(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.engine.recommend import pick_model

    config = _config(args, ctx)
    host = _host(args)
    engine = create_engine(engine_config(args, config.settings))
    stats = UsageStats()
    try:
        report = await run_doctor(
            engine, config, env=os.environ, host_override=host, pick_model=pick_model,
            probe=not args.no_probe, stats=stats,
            on_step=None if args.json else (lambda step: ctx.out.note(f"… {step}")),
        )
    finally:
        await engine.aclose()
        stats.close()
    if args.json:
        ctx.out.json(report.to_json())
    else:
        ctx.out.write_text("\n".join(report.to_lines()) + "\n")
    return 0 if report.ok else 1


# -- inspect ------------------------------------------------------------------------------


def inspect(args: argparse.Namespace, ctx: CliContext) -> int:
    config = _config(args, ctx)
    inspector = inspector_for(config.settings)
    if getattr(args, "clear", False):
        from aethel_lsp.cli.context import CliError

        try:
            inspector.clear()
        except sqlite3.Error as exc:
            raise CliError(f"Could not clear {inspector.path}: {exc}; try again.") from exc
        finally:
            inspector.close()
        if args.json:
            ctx.out.json({"cleared": True, "path": str(inspector.path)})
        else:
            ctx.out.line(f"Deleted every recorded request ({inspector.path}).")
        return 0
    try:
        result = inspect_json(inspector, config.settings.inspector, max(1, args.count))
    finally:
        inspector.close()
    if args.json:
        ctx.out.json(result)
        return 0
    records = result["records"]
    if not records:
        if not config.settings.inspector.enabled:
            ctx.out.line("The inspector is off, so no request has been recorded. Turn it on "
                         "with `inspector.enabled = true` in your config (or the editor "
                         "setting aethel.inspector.enabled), then use the editor.")
        else:
            ctx.out.line(f"No request recorded yet ({inspector.path}).")
        return 0
    for record in reversed(records):  # oldest first, so the newest ends up on screen
        ctx.out.write_text("\n".join(record_lines(record)) + "\n\n")
    ctx.out.note(f"{len(records)} of the last {result['size']} requests, from {result['path']}")
    return 0


TEXT_FIELDS = ("system", "prompt", "suffix")  # shown verbatim, one section each


def record_lines(record: JsonDict) -> list[str]:
    """One recorded request for a terminal: a header, then each part verbatim."""
    metrics = record.get("metrics") or {}
    head = [f"#{record.get('id')}", str(record.get("kind")), str(record.get("model"))]
    if record.get("fimMode"):
        head.append(f"FIM {record['fimMode']}")
    head.append(str(record.get("outcome")))
    if metrics.get("tokensGenerated") is not None:
        head.append(f"{metrics['tokensGenerated']} tokens")
    if metrics.get("tokensPerSecond"):
        head.append(f"{metrics['tokensPerSecond']:.1f} tok/s")
    if metrics.get("timeToFirstTokenMs") is not None:
        head.append(f"first token {metrics['timeToFirstTokenMs']:.0f} ms")
    if record.get("elapsedMs") is not None:
        head.append(f"{record['elapsedMs']:.0f} ms")
    where = record.get("path") or record.get("endpoint")
    lines = ["═══ " + " · ".join(head) + f" · {where} at {record.get('host')}"]
    request = record.get("request") or {}
    for key in TEXT_FIELDS:
        if request.get(key) is not None:
            lines += [f"─── {key} ───", str(request[key])]
    for message in request.get("messages") or []:
        lines += [f"─── message ({message.get('role')}) ───", str(message.get("content"))]
    sent = {k: v for k, v in request.items()
            if k not in (*TEXT_FIELDS, "messages", "model") and v not in (None, {})}
    lines += ["─── other fields sent ───", json.dumps(sent, ensure_ascii=False)]
    if record.get("thinking"):
        lines += ["─── thinking ───", str(record["thinking"])]
    lines += ["─── raw response ───", str(record.get("response", ""))]
    if record.get("result") is not None:
        partial = " (cut at the deadline)" if record.get("partial") else ""
        source = f", {record['resultSource']}" if record.get("resultSource") else ""
        lines += [f"─── result shown{partial}{source} ───", str(record["result"])]
    if record.get("error"):
        lines += ["─── error ───", str(record["error"])]
    return lines


# -- recommend --measure --------------------------------------------------------------------


async def recommend_measured(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.output import rows_table

    config = _config(args, ctx)
    settings = config.settings
    engine = create_engine(engine_config(args, settings))
    stats = UsageStats()
    if not args.json:
        ctx.out.note("Probing every installed model with a 16-token generation…")
    try:
        _models, probes, recommendations = await measure_installed(
            engine, keep_alive=settings.keep_alive_value,
            deadline_ms=float(settings.completion.deadline_ms), stats=stats)
    finally:
        await engine.aclose()
        stats.close()
    if args.json:
        ctx.out.json(measured_json(probes, recommendations))
        return 0
    rows = [(p.model, _n(p.load_ms), _n(p.warm_ttft_ms), _n(p.effective_tokens_per_second),
             "ok" if p.ok else f"failed: {p.error}") for p in probes]
    ctx.out.table(rows_table(("MODEL", "LOAD MS", "FIRST TOKEN MS", "TOK/S", "PROBE"), rows))
    for rec in recommendations:
        use = rec.model or "–"
        verdict = "" if rec.fits or rec.model is None else " (too slow)"
        ctx.out.line(f"{rec.title}: {use}{verdict}")
        ctx.out.line(f"    {rec.reason}")
        if rec.pull:
            ctx.out.line(f"    pull: {rec.pull_reason}")
        if rec.fixed_note:
            ctx.out.line(f"    {rec.fixed_note}")
    return 0


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"
