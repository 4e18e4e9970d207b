"""The AI action commands: explain, generate contract (one, or best of N), improve,
document, fix with AI.

Thin: each handler hands its argument object to `aethel_lsp.lsp.actions`.  Arguments
arrive as one object in `arguments[0]`, e.g. `{"uri": ..., "range": ...}`.
"""

from __future__ import annotations

from typing import Any

from aethel_lsp.lsp import actions
from aethel_lsp.lsp.handlers import Args, command
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.protocol import (
    CMD_DISTILL_CONTRACT,
    CMD_DOCUMENT_SELECTION,
    CMD_EXPLAIN_SELECTION,
    CMD_FIX_WITH_AI,
    CMD_GENERATE_CONTRACT,
    CMD_IMPROVE_SELECTION,
)


def register(server: AethelServer) -> None:
    @command(server, CMD_EXPLAIN_SELECTION)
    async def explain_selection(ls: AethelServer, args: Args) -> dict[str, Any]:
        return await actions.explain(ls, args)

    @command(server, CMD_GENERATE_CONTRACT)
    async def generate_contract(ls: AethelServer, args: Args) -> dict[str, Any]:
        return await actions.generate_contract(ls, args)

    @command(server, CMD_IMPROVE_SELECTION)
    async def improve_selection(ls: AethelServer, args: Args) -> dict[str, Any]:
        return await actions.improve(ls, args)

    @command(server, CMD_DOCUMENT_SELECTION)
    async def document_selection(ls: AethelServer, args: Args) -> dict[str, Any]:
        return await actions.document(ls, args)

    @command(server, CMD_FIX_WITH_AI)
    async def fix_with_ai(ls: AethelServer, args: Args) -> dict[str, Any]:
        return await actions.fix(ls, args)

    @command(server, CMD_DISTILL_CONTRACT)
    async def distill_contract(ls: AethelServer, args: Args) -> dict[str, Any]:
        from aethel_lsp.lsp import distill_action  # the distiller loads at its first use

        return await distill_action.distill_contract(ls, args)
