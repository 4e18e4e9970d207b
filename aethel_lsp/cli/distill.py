"""`aethel-lsp distill DESCRIPTION`: best-of-N contract generation on the command line.

Prints the ranked candidates with their verdicts (stderr) and the best contract (stdout);
`--json` prints the same object as the LSP command `aethel.distillContract`. Exit 0 when
the best candidate is valid, 1 when none is (the explanation on stderr either way).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from aethel_lsp.config.schema import MAX_DISTILL_CANDIDATES

if TYPE_CHECKING:  # the distiller (checker, engine) loads only when the command runs
    from aethel_lsp.cli.context import CliContext
    from aethel_lsp.distill.run import DistillEvent



def model_list(text: str) -> tuple[str, ...]:
    """`--models a,b`: comma-separated names, none empty."""
    models = tuple(m.strip() for m in text.split(","))
    if not all(models):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of models")
    return models


def candidate_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_DISTILL_CANDIDATES:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 1 to {MAX_DISTILL_CANDIDATES}")
    return value


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("description", help="what the contract should do")
    parser.add_argument("--models", type=model_list,
                        help="comma-separated models to ask (default: distill.models, "
                             "else the configured or best installed model)")
    parser.add_argument("--candidates", "-n", type=candidate_count,
                        help="how many candidates (default: distill.candidates, 4)")


async def run(args: argparse.Namespace, ctx: CliContext) -> int:
    from aethel_lsp.cli.context import CliUsageError
    from aethel_lsp.config.providers import provider_name
    from aethel_lsp.distill.run import (
        DescriptionTooLong,
        DistillOptions,
        candidates_text,
        distill,
        ensure_fits,
    )
    from aethel_lsp.engine.recommend import pick_model

    description = args.description.strip()
    if not description:
        raise CliUsageError("Describe the contract: the description is empty.")
    settings = ctx.settings
    models = args.models or settings.distill.models
    if not models:
        chosen = settings.model or pick_model(await ctx.engine.list_models_detailed(), "chat")
        if not chosen:
            raise CliUsageError("No model to ask: pass --models, or install one.")
        models = (chosen,)
    options = DistillOptions.from_settings(settings, models, args.candidates)

    try:
        ensure_fits(description, "", options)
    except DescriptionTooLong as exc:
        raise CliUsageError(str(exc)) from exc

    def progress(event: DistillEvent) -> None:
        if not ctx.out.json_mode:
            ctx.out.note(event.message)

    result = await distill(ctx.engine, description, options, on_event=progress,
                           provider_of=lambda model: provider_name(model, settings.providers))
    if args.json:
        ctx.out.json(result.to_json())
    else:
        ctx.out.note(candidates_text(result.candidates))
        if result.best is not None and result.best.valid:
            ctx.out.write_text(result.best.text.rstrip("\n") + "\n")
    if not result.valid:
        ctx.out.error(result.explanation)
        return 1
    if not args.json:
        ctx.out.note(result.explanation)
    return 0
