"""`aethel.distillContract`: best-of-N contract generation in the editor.

The distiller (`aethel_lsp.distill`, LSP-free) does the work; this module reads the
arguments, shows "3/6 checked, 2 valid" as work-done progress (cancellable: every
candidate's stream is closed), and applies the best contract like "Generate Aethel
contract" does, with a provenance header when `distill.provenance` is on.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from aethel_lsp.config.providers import provider_name
from aethel_lsp.config.schema import MAX_DISTILL_CANDIDATES
from aethel_lsp.distill.candidate import Candidate
from aethel_lsp.distill.run import (
    DescriptionTooLong,
    DistillOptions,
    DistillResult,
    distill,
    ensure_fits,
)
from aethel_lsp.lsp import actions, documents
from aethel_lsp.lsp.handlers import Args, UserError
from aethel_lsp.lsp.progress import Progress
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.protocol import TITLE_DISTILL_CONTRACT

CHECKS = "parser, conservation, division by zero, overflow, consistency, satisfiable guard"


def _candidates(args: Args, default: int) -> int:
    raw = args.get("candidates")
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_DISTILL_CANDIDATES:
        raise UserError(f"`candidates` must be a whole number from 1 to {MAX_DISTILL_CANDIDATES}.")
    return raw


def _models(args: Args) -> tuple[str, ...] | None:
    raw = args.get("models")
    if raw is None:
        return None
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(m, str) and m.strip() for m in raw)):
        raise UserError("`models` must be a non-empty list of model names.")
    return tuple(m.strip() for m in raw)


def _with_default_range(ls: AethelServer, args: Args) -> Args:
    """`range` is optional (issue 17): without one, the contract goes at the document's end."""
    if args.get("range") is not None:
        return args
    end = documents.full_range(documents.get_document(ls, actions.require_uri(args))).end
    point = {"line": end.line, "character": end.character}
    return {**args, "range": {"start": point, "end": point}}


async def distill_contract(ls: AethelServer, args: Args) -> dict[str, Any]:
    args = _with_default_range(ls, args)
    target = actions.contract_target(ls, args)
    uri = actions.require_uri(args)
    where = actions.edit_target(documents.get_document(ls, uri), uri, target.range)
    settings = ls.session.settings
    count = _candidates(args, settings.distill.candidates)
    models = _models(args) or settings.distill.models or (await actions.resolve_model(ls, "chat"),)
    options = DistillOptions.from_settings(settings, models, count)
    try:
        ensure_fits(target.description, target.draft, options)  # before progress begins
    except DescriptionTooLong as exc:
        raise UserError(str(exc)) from exc
    result = await _run(ls, target.description, target.draft, options)
    best = result.best
    if best is not None and (best.valid or settings.generation.apply_invalid):
        code = with_provenance(best, count) if settings.distill.provenance else best.text
        await actions.apply_edit(
            ls, where,
            actions.contract_text(code, best.errors, target),
            TITLE_DISTILL_CONTRACT.format(n=count),
        )
    if not result.valid:
        ls.show(f"No candidate contract passed the checker: {result.explanation}",
                types.MessageType.Warning)
    return result.to_json()


async def _run(
    ls: AethelServer, description: str, draft: str, options: DistillOptions
) -> DistillResult:
    ls.session.busy += 1
    ls.publish_status()
    try:
        title = TITLE_DISTILL_CONTRACT.format(n=options.candidates)
        async with Progress(ls, title, enabled=ls.session.client.work_done_progress) as progress:
            providers = ls.session.settings.providers
            result = await distill(
                ls.engine, description, options, draft=draft,
                provider_of=lambda model: provider_name(model, providers),
                on_event=lambda event: progress.status(event.message, event.percentage),
            )
            valid = sum(c.valid for c in result.candidates)
            progress.summary = f"{valid}/{len(result.candidates)} valid" + (
                f" · chose {result.best.label}" if result.valid and result.best else "")
    finally:
        ls.session.busy -= 1
        ls.publish_status()
    return result


def with_provenance(best: Candidate, asked: int) -> str:
    """The contract with a header naming who wrote it and what it passed."""
    header = (f"# aethel-lsp: best of {asked} candidates, written by {best.model} "
              f"({best.provider}); passed: {CHECKS}\n")
    return header + best.text
