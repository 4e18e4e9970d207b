"""Editor queries over the syntax tree: outline, navigation, hover, folding, highlighting.

Pure functions on `Program` (plus the text where tokens matter); the LSP features
convert offsets and spans to protocol positions.  Identifiers are resolved within one
intent (Aethel has no other scope): a parameter is the definition of its name,
otherwise the first occurrence in the intent is (usually the guard line that pins it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from aethel_lsp.language.ast import (
    Batch,
    Block,
    Intent,
    Name,
    Param,
    Program,
    condition_names,
)
from aethel_lsp.language.formatter import render_param
from aethel_lsp.language.keywords import KEYWORD_DOCS, OLD_PREFIX_DOC, OPERATOR_DOCS
from aethel_lsp.language.lexer import KEYWORDS, tokenize
from aethel_lsp.language.spans import Span

__all__ = [
    "FoldRange",
    "Hover",
    "RenameError",
    "SemanticToken",
    "Symbol",
    "SymbolKind",
    "definition",
    "document_symbols",
    "folding_ranges",
    "hover",
    "intent_at",
    "name_at",
    "references",
    "rename",
    "semantic_tokens",
]


class SymbolKind(Enum):
    BATCH = "batch"
    INTENT = "intent"
    PARAM = "param"
    BLOCK = "block"
    SETTING = "setting"


@dataclass
class Symbol:
    name: str
    kind: SymbolKind
    span: Span  # the whole construct
    selection: Span  # the name (or keyword) to highlight
    detail: str = ""
    children: list[Symbol] = field(default_factory=list)


def document_symbols(program: Program) -> list[Symbol]:
    """Batches > intents > (params, blocks > settings), in source order."""
    out: list[Symbol] = []
    for item in program.items:
        if isinstance(item, Batch):
            name = item.name.name if item.name else "<unnamed>"
            selection = item.name.span if item.name else item.keyword_span
            batch = Symbol(name, SymbolKind.BATCH, item.span, selection, "atomic_batch")
            batch.children = [_intent_symbol(intent) for intent in item.intents]
            out.append(batch)
        else:
            out.append(_intent_symbol(item))
    return out


def _intent_symbol(intent: Intent) -> Symbol:
    selection = intent.name.span if intent.name else intent.keyword_span
    params = ", ".join(render_param(p) for p in intent.params)
    symbol = Symbol(intent.display_name, SymbolKind.INTENT, intent.span, selection, f"({params})")
    for param in intent.params:
        symbol.children.append(
            Symbol(
                param.name.name,
                SymbolKind.PARAM,
                param.span,
                param.name.span,
                param.type.name if param.type else "",
            )
        )
    for block in intent.blocks:
        count = len(block.conditions) + len(block.settings)
        child = Symbol(
            block.kind,
            SymbolKind.BLOCK,
            block.span,
            block.keyword_span,
            f"{count} {'entry' if count == 1 else 'entries'}",
        )
        for setting in block.settings:
            child.children.append(
                Symbol(
                    setting.key.name,
                    SymbolKind.SETTING,
                    setting.span,
                    setting.key.span,
                    setting.value.name if setting.value else "",
                )
            )
        symbol.children.append(child)
    return symbol


# --------------------------------------------------------------------- lookup


def intent_at(program: Program, offset: int) -> Intent | None:
    for intent in program.intents():
        if intent.span.start <= offset <= intent.span.end:
            return intent
    return None


def _intent_names(intent: Intent) -> list[Name]:
    """Every identifier usage in the intent that denotes a value (not types/settings)."""
    names = [p.name for p in intent.params]
    for block in intent.blocks:
        for cond in block.conditions:
            names.extend(condition_names(cond))
    return names


def name_at(program: Program, offset: int) -> tuple[Intent, Name] | None:
    """The value identifier under `offset` (its end counts, for a cursor after it)."""
    intent = intent_at(program, offset)
    if intent is None:
        return None
    for name in _intent_names(intent):
        if name.span.start <= offset <= name.span.end:
            return intent, name
    return None


def _param(intent: Intent, name: str) -> Param | None:
    for param in intent.params:
        if param.name.name == name:
            return param
    return None


def definition(program: Program, offset: int) -> Span | None:
    """The parameter declaring the name under `offset`, else its first use in the intent."""
    found = name_at(program, offset)
    if found is None:
        return None
    intent, name = found
    param = _param(intent, name.name)
    if param is not None:
        return param.name.span
    for candidate in _intent_names(intent):
        if candidate.name == name.name:
            return candidate.span
    return None


def references(program: Program, offset: int, include_declaration: bool = True) -> list[Span]:
    found = name_at(program, offset)
    if found is None:
        return []
    intent, name = found
    spans = [n.span for n in _intent_names(intent) if n.name == name.name]
    if not include_declaration:
        param = _param(intent, name.name)
        if param is not None:
            spans = [s for s in spans if s != param.name.span]
    spans.sort(key=lambda s: s.start)
    return spans


class RenameError(ValueError):
    """The rename cannot be done; the message says why (shown to the user)."""


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def rename(program: Program, offset: int, new_name: str) -> list[tuple[Span, str]]:
    """Edits renaming the identifier under `offset` within its intent.

    The `old_` convention is kept: renaming `balance` also renames `old_balance` to
    `old_<new>` (and renaming `old_balance` to `old_funds` renames `balance` to
    `funds`), so snapshots stay paired with their state variable.
    """
    found = name_at(program, offset)
    if found is None:
        raise RenameError("Only names used in an intent (parameters and values) can be renamed.")
    if not _IDENT_RE.match(new_name) or new_name in KEYWORDS:
        raise RenameError(f"`{new_name}` is not a valid Aethel name (letters, digits, `_`).")
    intent, name = found
    renames = {name.name: new_name}
    if name.name.startswith("old_") and new_name.startswith("old_"):
        renames[name.name[4:]] = new_name[4:]
    elif not name.name.startswith("old_"):
        renames[f"old_{name.name}"] = f"old_{new_name}"
    names = _intent_names(intent)
    existing = {n.name for n in names}
    for old, new in renames.items():
        if old in existing and new in existing and old != new:
            raise RenameError(f"`{new}` is already used in intent `{intent.display_name}`.")
    return [(n.span, renames[n.name]) for n in names if n.name in renames]


# --------------------------------------------------------------------- hover


@dataclass
class Hover:
    markdown: str
    span: Span


def hover(text: str, program: Program, offset: int) -> Hover | None:
    """Keyword/operator docs, or what a name is (parameter, state variable, snapshot)."""
    tokens = tokenize(text)
    for kind, start, end in zip(tokens.kinds, tokens.starts, tokens.ends, strict=False):
        if start > offset:
            break
        if start <= offset < end or (offset == end and kind != "eof"):
            span = Span(start, end, program.index)
            if kind in KEYWORD_DOCS:
                return Hover(KEYWORD_DOCS[kind], span)
            if kind in OPERATOR_DOCS:
                return Hover(OPERATOR_DOCS[kind], span)
            if kind == "ident":
                return _hover_name(program, offset, text[start:end], span)
    return None


def _hover_name(program: Program, offset: int, word: str, span: Span) -> Hover | None:
    found = name_at(program, offset)
    if found is None:
        intent = intent_at(program, offset)
        if intent is not None:
            block = _block_at(intent, offset)
            if block is not None and block.kind == "solve":
                return Hover(f"`{word}`: a `solve` hint (no logic; used for code generation)", span)
        return None
    intent, name = found
    param = _param(intent, name.name)
    lines: list[str] = []
    if param is not None:
        lines.append(f"**parameter** `{render_param(param)}` of intent `{intent.display_name}`")
        if param.secret:
            lines.append("`secret`: its value must stay private.")
        if param.external:
            lines.append("`external`: supplied by an oracle.")
    else:
        lines.append(f"**{name.name}**: an integer unknown of intent `{intent.display_name}`")
    names = {n.name for n in _intent_names(intent)}
    if f"old_{name.name}" in names:
        lines.append(
            f"State variable: `guard` reads its value before the intent, `verify` after; "
            f"`old_{name.name}` is the snapshot."
        )
    if name.name.startswith("old_") and name.name[4:]:
        base = name.name[4:]
        lines.append(OLD_PREFIX_DOC.format(name=base))
    uses = sum(1 for n in _intent_names(intent) if n.name == name.name)
    lines.append(f"{uses} use{'s' if uses != 1 else ''} in this intent.")
    return Hover("\n\n".join(lines), name.span)


def _block_at(intent: Intent, offset: int) -> Block | None:
    for block in intent.blocks:
        if block.span.start <= offset <= block.span.end:
            return block
    return None


# --------------------------------------------------------------------- folding


@dataclass(frozen=True)
class FoldRange:
    start_line: int
    end_line: int
    kind: str  # "region" | "comment"


def folding_ranges(program: Program) -> list[FoldRange]:
    """Batches, intents, multi-line parameter lists, blocks, and runs of comment lines."""
    out: list[FoldRange] = []

    def add(span: Span, kind: str = "region") -> None:
        start, end = span.start_line, span.end_line
        if end > start:
            out.append(FoldRange(start, end, kind))

    for item in program.items:
        add(item.span)
        intents = item.intents if isinstance(item, Batch) else [item]
        for intent in intents:
            if isinstance(item, Batch):
                add(intent.span)
            for block in intent.blocks:
                add(block.span)
    run_start = run_end = -1
    for comment in program.comments:
        line = comment.span.start_line
        if line == run_end + 1 and run_start >= 0:
            run_end = line
            continue
        if run_end > run_start >= 0:
            out.append(FoldRange(run_start, run_end, "comment"))
        run_start = run_end = line
    if run_end > run_start >= 0:
        out.append(FoldRange(run_start, run_end, "comment"))
    out.sort(key=lambda r: (r.start_line, -r.end_line))
    return out


# --------------------------------------------------------------------- semantic tokens

TOKEN_TYPES: tuple[str, ...] = (
    "keyword",
    "comment",
    "number",
    "operator",
    "parameter",
    "variable",
    "type",
    "function",
    "namespace",
    "property",
    "enumMember",
)
TOKEN_MODIFIERS: tuple[str, ...] = ("declaration", "readonly")


@dataclass(frozen=True)
class SemanticToken:
    start: int  # offset
    length: int  # code points
    type: str
    modifiers: tuple[str, ...] = ()


def semantic_tokens(text: str, program: Program) -> list[SemanticToken]:
    """One token per lexeme, classified with the tree (params, types, hints, names)."""
    roles: dict[int, tuple[str, tuple[str, ...]]] = {}
    for item in program.items:
        if isinstance(item, Batch):
            if item.name:
                roles[item.name.span.start] = ("namespace", ("declaration",))
            intents = item.intents
        else:
            intents = [item]
        for intent in intents:
            if intent.name:
                roles[intent.name.span.start] = ("function", ("declaration",))
            param_names = {p.name.name for p in intent.params}
            for param in intent.params:
                roles[param.name.span.start] = ("parameter", ("declaration",))
                if param.type:
                    roles[param.type.span.start] = ("type", ())
            for block in intent.blocks:
                if not block.is_known:
                    roles[block.keyword_span.start] = ("keyword", ())
                for setting in block.settings:
                    roles[setting.key.span.start] = ("property", ())
                    if setting.value:
                        roles[setting.value.span.start] = ("enumMember", ())
                for cond in block.conditions:
                    for name in condition_names(cond):
                        if name.name in param_names:
                            roles[name.span.start] = ("parameter", ())
                        elif name.name.startswith("old_"):
                            roles[name.span.start] = ("variable", ("readonly",))
    tokens = tokenize(text)
    out: list[SemanticToken] = []
    for start, end in tokens.comments:
        out.append(SemanticToken(start, end - start, "comment"))
    for kind, start, end in zip(tokens.kinds, tokens.starts, tokens.ends, strict=False):
        if kind == "eof":
            break
        if kind == "ident":
            role, mods = roles.get(start, ("variable", ()))
            out.append(SemanticToken(start, end - start, role, mods))
        elif kind == "number":
            out.append(SemanticToken(start, end - start, "number"))
        elif kind[0].isalpha():
            out.append(SemanticToken(start, end - start, "keyword"))
        elif kind in OPERATOR_DOCS or kind in ("==>", "+", "-", "*"):
            out.append(SemanticToken(start, end - start, "operator"))
    out.sort(key=lambda t: t.start)
    return out
