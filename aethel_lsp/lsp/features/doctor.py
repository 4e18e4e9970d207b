"""`aethel.doctor`, `aethel.inspectLast`, `aethel.recommendModels`, and the inspector hook.

- `aethel.doctor` runs the same checks as `aethel-lsp doctor` on the server's own
  settings (every source, workspace included) and engine; the result is
  `{"findings": [...], "summary", "ok", "counts", "engine", "settings", "configFiles",
  "probes", "document"}`.  The report is shown as a Markdown document
  (`window/showDocument`) where the client can show one, else as a message summing it up.
  Argument (optional): `{"probe": false}` skips the timed speed probes.
- `aethel.inspectLast` returns the newest recorded requests (argument `{"count": N}`).
- `aethel.recommendModels` probes the installed models and recommends per use case.
- The request inspector wraps the engine (below the metering) whenever
  `inspector.enabled` is on; it is consulted per request, so the setting applies at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from aethel_lsp.engine.recommend import pick_model
from aethel_lsp.lsp.handlers import Args, UserError, command
from aethel_lsp.lsp.markdown_view import show_markdown
from aethel_lsp.lsp.progress import Progress
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.protocol import CMD_DOCTOR, CMD_INSPECT_LAST, CMD_RECOMMEND_MODELS

# The doctor, the measurements and the inspector are imported when first used (the engine
# is built after `initialize`), so that starting the server does not pay for them.
if TYPE_CHECKING:
    from aethel_lsp.doctor.report import DoctorReport
    from aethel_lsp.engine import Engine
    from aethel_lsp.engine.inspector import Inspector

SHOW_TIMEOUT_S = 5.0
REPORTS_KEPT = 5
INSPECT_DEFAULT = 10


def register(server: AethelServer) -> None:
    ring: list[Inspector] = []

    def inspector() -> Inspector:
        """The ring, configured from the current settings (created on first use)."""
        from aethel_lsp.engine.inspector import Inspector

        settings = server.session.settings
        redactor = server.redactor()  # cached: this runs for every engine request
        if not ring:
            ring.append(Inspector(size=settings.inspector.size, redactor=redactor))
        else:
            ring[0].configure(size=settings.inspector.size, redactor=redactor)
        return ring[0]

    def active_inspector() -> Inspector | None:
        if not server.session.settings.inspector.enabled:
            return None
        return inspector() if server.writable_state_dir() is not None else None

    def wrap(engine: Engine) -> Engine:
        from aethel_lsp.engine.inspector import InspectingEngine

        return InspectingEngine(engine, active_inspector)

    server.engine_wrappers.append(wrap)

    @command(server, CMD_DOCTOR)
    async def doctor(ls: AethelServer, args: Args) -> dict[str, Any]:
        from aethel_lsp.doctor.checks import run_doctor, unwrap

        probe = args.get("probe", True)
        if not isinstance(probe, bool):
            raise UserError("Argument `probe` must be true or false.")
        async with Progress(ls, "aethel-lsp doctor",
                            enabled=ls.session.client.work_done_progress) as progress:
            report = await run_doctor(
                unwrap(ls.engine), ls.session.config, env=ls.session.env,
                selected=ls.session.selected_models, pick_model=pick_model, probe=probe,
                stats=ls.stats, on_step=lambda step: progress.status(step),
            )
            progress.summary = report.summary()
        out = report.to_json()
        out["document"] = await _show_report(ls, report)
        ls.log(report.summary())
        return out

    @command(server, CMD_INSPECT_LAST)
    async def inspect_last(ls: AethelServer, args: Args) -> dict[str, Any]:
        from aethel_lsp.engine.inspector import inspect_json

        count = args.get("count", INSPECT_DEFAULT)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UserError("Argument `count` must be a whole number >= 1.")
        return inspect_json(inspector(), ls.session.settings.inspector, count)

    @command(server, CMD_RECOMMEND_MODELS)
    async def recommend_models(ls: AethelServer, args: Args) -> dict[str, Any]:
        from aethel_lsp.doctor.checks import unwrap
        from aethel_lsp.engine.measure import measure_installed, measured_json

        settings = ls.session.settings
        async with Progress(ls, "Measuring the installed models",
                            enabled=ls.session.client.work_done_progress) as progress:
            progress.status("Probing each installed model with a 16-token generation")
            _models, probes, recommendations = await measure_installed(
                unwrap(ls.engine), keep_alive=settings.keep_alive_value,
                deadline_ms=float(settings.completion.deadline_ms), stats=ls.stats)
            progress.summary = f"{len(probes)} models measured"
        ls.engine_succeeded()
        return measured_json(probes, recommendations)


async def _show_report(ls: AethelServer, report: DoctorReport) -> str | None:
    """The report as a Markdown document where the client can show one, else a message."""
    kind = types.MessageType.Error if not report.ok else (
        types.MessageType.Warning if report.counts()["warning"] else types.MessageType.Info)
    shown = await show_markdown(
        ls, "doctor", "doctor", report.to_markdown(), keep=REPORTS_KEPT, timeout_s=SHOW_TIMEOUT_S
    )
    if shown is None:
        ls.show(_message(report), kind)
    return shown


def _message(report: DoctorReport) -> str:
    """The summary plus every problem with its fix, for clients without documents."""
    lines = [report.summary()]
    for finding in report.findings:
        if finding.severity in ("error", "warning"):
            fix = f" Fix: {finding.fix}" if finding.fix else ""
            lines.append(f"{finding.severity.upper()}: {finding.title}.{fix}")
    return "\n".join(lines)

