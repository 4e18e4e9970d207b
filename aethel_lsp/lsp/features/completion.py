"""textDocument/completion: instant local items, plus an AI item resolved lazily.

The list itself never calls the model: Aethel keywords and snippet skeletons (chosen
by where the cursor is: top level, inside an intent, inside a guard/verify block) and
the identifiers of the document.  When `completion.aiItem` is on, one more item,
"AI completion", carries only a reference to the cursor; `completionItem/resolve` runs
the model when the editor focuses it and returns the text as the documentation preview
and as the edit (an `additionalTextEdits` insert at the cursor for clients that can
resolve only those, like VS Code and Neovim).
"""

from __future__ import annotations

import re
from typing import Any

from lsprotocol import types

from aethel_lsp.completion.requests import InlineRequest, SchedulerSettings
from aethel_lsp.completion.scheduler import CompletionScheduler, ModelChoice, scheduler_settings
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.lsp.actions import resolve_model
from aethel_lsp.lsp.open_documents import offset_at, open_document
from aethel_lsp.lsp.session import AethelServer
from aethel_lsp.prompts.context import enclosing_intent

AI_LABEL = "AI completion"
AI_MARKER = "aethel.aiCompletion"
KEYWORDS = ("intent", "atomic_batch", "guard", "solve", "verify", "secret", "external")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIERS = 500
_SCAN_CHARS = 50_000  # identifiers are taken from this much text around the cursor

SNIPPETS: dict[str, tuple[str, str]] = {
    # label: (snippet body, what it is)
    "intent": (
        "intent ${1:name}(${2:account}: ${3:Account}, ${4:amount}: ${5:Balance}) {\n"
        "    guard {\n        ${6:${4:amount} > 0};\n    }\n"
        "    solve {\n        priority: ${7:security};\n    }\n"
        "    verify {\n        ${8:condition};\n    }\n}",
        "intent with guard, solve and verify blocks",
    ),
    "atomic_batch": (
        "atomic_batch ${1:name} {\n    $0\n}",
        "intents that succeed or fail together",
    ),
    "guard": ("guard {\n    ${1:condition};\n}", "preconditions"),
    "solve": ("solve {\n    priority: ${1:security};\n}", "hints for the solver"),
    "verify": ("verify {\n    ${1:condition};\n}", "postconditions"),
    "guard/solve/verify": (
        "guard {\n    ${1:condition};\n}\nsolve {\n    priority: ${2:security};\n}\n"
        "verify {\n    ${3:condition};\n}",
        "the three blocks of an intent",
    ),
}


def register(server: AethelServer) -> None:
    current: list[SchedulerSettings] = [SchedulerSettings(model="")]
    scheduler = CompletionScheduler(
        lambda: server.engine,
        lambda: current[0],
        log=lambda message: server.log(message, types.MessageType.Info),
    )
    choice = ModelChoice()

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=True, trigger_characters=[]),
    )
    def completion(ls: AethelServer, params: types.CompletionParams) -> types.CompletionList:
        document = open_document(ls.workspace, params.text_document.uri)
        if document is None:
            return types.CompletionList(is_incomplete=False, items=[])
        language = document.language_id or ""
        offset = offset_at(document, params.position)
        before = document.source[:offset]
        word = _word_before(before)
        items: list[types.CompletionItem] = []
        if language == "aethel" or params.text_document.uri.endswith(".ae"):
            items.extend(aethel_items(before, snippets=_snippet_support(ls)))
        near = document.source[max(0, offset - _SCAN_CHARS) : offset + _SCAN_CHARS]
        items.extend(identifier_items(near, word, {i.label for i in items}))
        completion_settings = ls.session.settings.completion
        if completion_settings.ai_item and completion_settings.enabled_for(language):
            items.append(ai_item(params, word))
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.COMPLETION_ITEM_RESOLVE)
    async def resolve(ls: AethelServer, item: types.CompletionItem) -> types.CompletionItem:
        data = item.data if isinstance(item.data, dict) else None
        if data is None or data.get("kind") != AI_MARKER:
            return item
        uri = str(data.get("uri", ""))
        document = open_document(ls.workspace, uri)
        if document is None:
            return item
        settings = ls.session.settings
        try:
            model = await choice.get(
                ls.session.model_for("completion"),
                (settings, ls.session.selected_models.get("completion")),
                lambda: resolve_model(ls, "completion"),
            )
        except EngineError as exc:
            item.detail = f"AI completion unavailable: {exc}"
            return item
        current[0] = scheduler_settings(settings, model)
        position = types.Position(line=int(data["line"]), character=int(data["character"]))
        outcome = await scheduler.complete(
            InlineRequest(
                uri=uri,
                language_id=document.language_id or "",
                text=document.source,
                offset=offset_at(document, position),
                invoked=True,
                lane="resolve",
            )
        )
        if not outcome.text:
            item.detail = outcome.message or f"{model} had no suggestion here"
            return item
        return with_ai_text(
            item,
            outcome.text,
            position,
            model,
            document.language_id or "",
            markdown=_markdown_support(ls),
            as_additional_edit=_applies_resolved_edits_after_insert(ls),
        )


def aethel_items(before: str, *, snippets: bool = True) -> list[types.CompletionItem]:
    """Keywords and skeletons that fit where the cursor is (plain text when the client
    cannot expand snippets)."""
    intent = enclosing_intent(before)
    if intent is None:
        wanted = ["intent", "atomic_batch"]
        keywords = ["intent", "atomic_batch"]
    elif intent.block is None:
        wanted = ["guard/solve/verify", "guard", "solve", "verify"]
        keywords = ["guard", "solve", "verify"]
    else:
        wanted = []
        keywords = ["secret", "external"] if intent.block in ("guard", "verify") else []
    items = [
        types.CompletionItem(
            label=label,
            kind=types.CompletionItemKind.Snippet,
            detail=SNIPPETS[label][1],
            insert_text=SNIPPETS[label][0] if snippets else plain_text(SNIPPETS[label][0]),
            insert_text_format=(
                types.InsertTextFormat.Snippet if snippets else types.InsertTextFormat.PlainText
            ),
            sort_text=f"0{label}",
        )
        for label in wanted
    ]
    items.extend(
        types.CompletionItem(
            label=keyword,
            kind=types.CompletionItemKind.Keyword,
            sort_text=f"1{keyword}",
            filter_text=keyword,
            insert_text=keyword,
        )
        for keyword in keywords
        if keyword not in wanted
    )
    return items


def identifier_items(text: str, word: str, taken: set[str]) -> list[types.CompletionItem]:
    """Every identifier of the document except keywords and the word being typed."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text):
        name = match.group(0)
        if name != word and name not in KEYWORDS and name not in taken:
            seen.setdefault(name, None)
            if len(seen) >= _MAX_IDENTIFIERS:
                break
    return [
        types.CompletionItem(
            label=name, kind=types.CompletionItemKind.Variable, sort_text=f"2{name}"
        )
        for name in seen
    ]


def ai_item(params: types.CompletionParams, word: str) -> types.CompletionItem:
    """The lazy AI item: no text yet, only where to generate it."""
    data: dict[str, Any] = {
        "kind": AI_MARKER,
        "uri": params.text_document.uri,
        "line": params.position.line,
        "character": params.position.character,
    }
    return types.CompletionItem(
        label=AI_LABEL,
        kind=types.CompletionItemKind.Text,
        detail="aethel-lsp: ask the model (resolved when selected)",
        filter_text=word or AI_LABEL,
        sort_text="9",
        insert_text=word,
        data=data,
    )


def with_ai_text(
    item: types.CompletionItem,
    text: str,
    position: types.Position,
    model: str,
    language: str,
    *,
    markdown: bool = True,
    as_additional_edit: bool = False,
) -> types.CompletionItem:
    """The resolved AI item: a preview in the documentation, and the text to insert.

    How the text travels depends on the client.  VS Code applies the resolved item's
    `insertText` (its API allows resolving it) but applies `additionalTextEdits` *before*
    the main edit with the cursor moved past them, so an insert at the cursor would be
    partly overwritten: it gets `insertText` = typed word + suggestion.  Neovim inserts
    the word at once and applies only the resolved `additionalTextEdits` (and `command`)
    afterwards: it gets the suggestion as an insert at the cursor.
    """
    item.detail = f"{model} · {len(text.splitlines()) or 1} line(s)"
    item.documentation = (
        types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```{language}\n{text}\n```")
        if markdown
        else text
    )
    if as_additional_edit:
        item.additional_text_edits = [
            types.TextEdit(range=types.Range(start=position, end=position), new_text=text)
        ]
    else:
        item.insert_text = (item.insert_text or "") + text
    return item


_PLACEHOLDER = re.compile(r"\$\{\d+:([^${}]*)\}")
_TABSTOP = re.compile(r"\$\d+")


def plain_text(snippet: str) -> str:
    """A snippet with its placeholders replaced by their default text.

    >>> plain_text("intent ${1:name}(${2:a}: ${3:T}) {${6:${2:a} > 0}; $0}")
    'intent name(a: T) {a > 0; }'
    """
    previous = None
    while previous != snippet:
        previous, snippet = snippet, _PLACEHOLDER.sub(r"\1", snippet)
    return _TABSTOP.sub("", snippet)


def _applies_resolved_edits_after_insert(ls: AethelServer) -> bool:
    """Neovim-like clients: they resolve `additionalTextEdits` *and* `command`, and apply
    them after inserting the item's word (VS Code resolves no `command`)."""
    text = ls.client_capabilities.text_document
    completion = text.completion if text else None
    item = completion.completion_item if completion else None
    support = item.resolve_support if item else None
    properties = set(support.properties) if support else set()
    return {"additionalTextEdits", "command"} <= properties


def _markdown_support(ls: AethelServer) -> bool:
    text = ls.client_capabilities.text_document
    completion = text.completion if text else None
    item = completion.completion_item if completion else None
    formats = item.documentation_format if item else None
    return bool(formats and types.MarkupKind.Markdown in formats)


def _snippet_support(ls: AethelServer) -> bool:
    text = ls.client_capabilities.text_document
    completion = text.completion if text else None
    item = completion.completion_item if completion else None
    return bool(item and item.snippet_support)


def _word_before(before: str) -> str:
    match = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", before)
    return match.group(0) if match else ""
