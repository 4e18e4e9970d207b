"""textDocument/codeAction: the AI actions, listed instantly, never calling the model.

Each action runs an `aethel.*` command with its argument object, so the work happens
only when the user picks it, streamed as progress by the command.  Clients that can
resolve the `command` property get lazy actions (`data`, filled in by
codeAction/resolve); others get the command at once.  The titles contain the words of
`protocol.TITLE_*` so users can filter on them.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from aethel_lsp.lsp.open_documents import open_document
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.protocol import (
    ALL_COMMANDS,
    CMD_DISTILL_CONTRACT,
    CMD_DOCUMENT_SELECTION,
    CMD_EXPLAIN_SELECTION,
    CMD_FIX_WITH_AI,
    CMD_GENERATE_CONTRACT,
    CMD_IMPROVE_SELECTION,
    TITLE_DISTILL_CONTRACT,
    TITLE_DOCUMENT,
    TITLE_EXPLAIN,
    TITLE_FIX,
    TITLE_GENERATE_CONTRACT,
    TITLE_IMPROVE,
)

KINDS = [
    types.CodeActionKind.QuickFix,
    types.CodeActionKind.RefactorRewrite,
    types.CodeActionKind.Source,
]
PREFIX = "AI: "
# Diagnostics that describe the report rather than the code ("… and 812 more problems"):
# nothing for a model to fix there.
NOT_FIXABLE_CODES = frozenset({"too-many-problems"})


def register(server: AethelServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=KINDS, resolve_provider=True),
    )
    def code_actions(
        ls: AethelServer, params: types.CodeActionParams
    ) -> list[types.CodeAction | types.Command]:
        return list_actions(ls, params)

    @server.feature(types.CODE_ACTION_RESOLVE)
    def resolve_action(ls: AethelServer, action: types.CodeAction) -> types.CodeAction:
        """Fill in the command of a lazy action (still no model call: that is the command)."""
        data = action.data
        if action.command is None and isinstance(data, dict):
            name, args = data.get("command"), data.get("arguments")
            if isinstance(name, str) and name in ALL_COMMANDS and isinstance(args, list):
                action.command = types.Command(title=action.title, command=name, arguments=args)
        return action


def _range_json(rng: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }


def _is_aethel(ls: AethelServer, uri: str) -> bool:
    document = open_document(ls.workspace, uri)
    if document is not None and document.language_id:
        return bool(document.language_id == "aethel")
    return uri.endswith(".ae")


def list_actions(
    ls: AethelServer, params: types.CodeActionParams
) -> list[types.CodeAction | types.Command]:
    """Bookkeeping over settings and the request: no engine call (a few `stat`s at most)."""
    ls.ensure_fresh_config()
    enabled = ls.session.settings.actions
    uri = params.text_document.uri
    base = {"uri": uri, "range": _range_json(params.range)}
    has_selection = params.range.start != params.range.end
    only = params.context.only
    offered: list[tuple[str, str, str, str, dict[str, Any]]] = []

    where = "" if _is_aethel(ls, uri) else " block"
    contract_kind = (
        types.CodeActionKind.RefactorRewrite if has_selection else types.CodeActionKind.Source
    )
    best_of = TITLE_DISTILL_CONTRACT.format(n=ls.session.settings.distill.candidates)
    for name, title, cmd in (
        ("generateContract", TITLE_GENERATE_CONTRACT, CMD_GENERATE_CONTRACT),
        ("distillContract", best_of, CMD_DISTILL_CONTRACT),
    ):
        if enabled.is_enabled(name):
            offered.append((name, f"{PREFIX}{title}{where}", cmd, contract_kind, base))
    if has_selection:
        for name, title, cmd in (
            ("explain", TITLE_EXPLAIN, CMD_EXPLAIN_SELECTION),
            ("improve", TITLE_IMPROVE, CMD_IMPROVE_SELECTION),
            ("document", TITLE_DOCUMENT, CMD_DOCUMENT_SELECTION),
        ):
            if enabled.is_enabled(name):
                offered.append(
                    (name, f"{PREFIX}{title}", cmd, types.CodeActionKind.RefactorRewrite, base)
                )
    if enabled.is_enabled("fix"):
        for diagnostic in params.context.diagnostics:
            if diagnostic.code in NOT_FIXABLE_CODES:
                continue
            args = {
                "uri": uri,
                "range": _range_json(diagnostic.range),
                "diagnostics": [
                    {"message": diagnostic.message, "range": _range_json(diagnostic.range)}
                ],
            }
            short = diagnostic.message.splitlines()[0][:60] if diagnostic.message else ""
            offered.append(
                (
                    "fix",
                    f"{TITLE_FIX}: {short}",
                    CMD_FIX_WITH_AI,
                    types.CodeActionKind.QuickFix,
                    args,
                )
            )

    result: list[types.CodeAction | types.Command] = []
    if ls.session.client.code_action_literals and _wants(only, types.CodeActionKind.QuickFix):
        result.extend(mechanical_fixes(uri, params.context.diagnostics))
    for _name, title, cmd, kind, args in offered:
        if only and not any(kind == k or kind.startswith(f"{k}.") for k in only):
            continue
        command = types.Command(title=title, command=cmd, arguments=[args])
        lazy = ls.session.client.code_action_resolve
        if ls.session.client.code_action_literals:
            fixes = [d for d in params.context.diagnostics if _range_json(d.range) == args["range"]]
            result.append(
                types.CodeAction(
                    title=title,
                    kind=kind,
                    command=None if lazy else command,
                    data={"command": cmd, "arguments": [args]} if lazy else None,
                    diagnostics=fixes[:1] if cmd == CMD_FIX_WITH_AI else None,
                )
            )
        else:
            result.append(command)
    return result


def _wants(only: Any, kind: str) -> bool:
    return not only or any(kind == k or kind.startswith(f"{k}.") for k in only)


def mechanical_fixes(uri: str, diagnostics: Any) -> list[types.CodeAction]:
    """Quick fixes that need no model: the repair the Aethel parser attached to a
    diagnostic (`data["fix"]`: `=` -> `==`, `//` -> `#`, a missing `;` ...).

    Offered before the AI fix and marked preferred, because they are exact and instant.
    """
    actions: list[types.CodeAction] = []
    for diagnostic in diagnostics:
        fix = _fix_of(diagnostic)
        if fix is None:
            continue
        title, edit_range, new_text = fix
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                is_preferred=True,
                edit=types.WorkspaceEdit(
                    changes={uri: [types.TextEdit(range=edit_range, new_text=new_text)]}
                ),
            )
        )
    return actions


def _fix_of(diagnostic: types.Diagnostic) -> tuple[str, types.Range, str] | None:
    """Read `data["fix"]` defensively: it comes back from the client as plain JSON."""
    data = diagnostic.data
    fix = data.get("fix") if isinstance(data, dict) else None
    if not isinstance(fix, dict):
        return None
    title, new_text, rng = fix.get("title"), fix.get("newText"), fix.get("range")
    if not isinstance(title, str) or not isinstance(new_text, str) or not isinstance(rng, dict):
        return None
    try:
        start, end = rng["start"], rng["end"]
        edit_range = types.Range(
            start=types.Position(line=int(start["line"]), character=int(start["character"])),
            end=types.Position(line=int(end["line"]), character=int(end["character"])),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return title, edit_range, new_text
