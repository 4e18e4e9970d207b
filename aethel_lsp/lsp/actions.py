"""The AI actions behind the `aethel.*` commands: explain, improve, document, fix, generate.

Each action validates its arguments (`documents.selection`), builds a prompt
(`prompts.actions`), streams the generation as work-done progress (`progress`), and
returns the command's result shape (camelCase, see docs/commands.md).  Edits go
through `workspace/applyEdit`; the explanation is shown with `window/showDocument`
(a Markdown file in the state directory) or, where the client cannot show documents,
as a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from aethel_lsp.config import Settings
from aethel_lsp.engine import (
    ChatMessage,
    ChatRequest,
    Engine,
    EngineError,
    GenerateResult,
    GenerationOptions,
    ModelNotFound,
)
from aethel_lsp.engine.recommend import SMALL_CODE_MODEL as SUGGESTED_MODEL
from aethel_lsp.engine.recommend import install_advice, pick_model
from aethel_lsp.language import Diagnostic, Severity
from aethel_lsp.language.checker import analyze_in_thread
from aethel_lsp.language.grammar_prompt import extract_aethel
from aethel_lsp.lsp import documents
from aethel_lsp.lsp.handlers import Args, UserError, require_str
from aethel_lsp.lsp.markdown_view import show_markdown
from aethel_lsp.lsp.open_documents import offset_at, open_document
from aethel_lsp.lsp.progress import Progress, stream_into
from aethel_lsp.lsp.session import AethelServer, Task
from aethel_lsp.prompts import actions as prompts
from aethel_lsp.prompts.context import estimate_tokens

APPLY_TIMEOUT_S = 30.0
SHOW_TIMEOUT_S = 10.0
EXPLANATIONS_KEPT = 20


# -- generation ------------------------------------------------------------------------


async def resolve_model(ls: AethelServer, task: Task) -> str:
    """The model for `task`; when none is configured, the best installed one."""
    chosen = ls.session.model_for(task)
    if chosen:
        return chosen
    engine = ls.engine
    models = await engine.list_models_detailed()
    best = pick_model(models, task)
    if best is None and any(m.is_remote for m in models):
        raise ModelNotFound(
            f"Only cloud models are installed at {engine.host}; aethel-lsp does not send "
            f"your code off this machine unless you choose it: set `model` to a cloud model "
            f"to use one, or install a local one: {install_advice(engine.kind, SUGGESTED_MODEL)}.",
            model="",
            host=engine.host,
        )
    if best is None:
        raise ModelNotFound(
            f"No model is installed at {engine.host}: install one "
            f"({install_advice(engine.kind, SUGGESTED_MODEL)}), or set `model` in the settings.",
            model="",
            host=engine.host,
        )
    if task == "chat" and ls.session.auto_model != best:
        ls.session.auto_model = best  # status bars show the model really used
        ls.publish_status()
    return best


def ensure_fits(
    prompt: prompts.ActionPrompt, code: str, settings: Settings, model_context: int | None = None
) -> None:
    """Refuse a prompt the context window cannot hold, before any engine request.

    Ollama would silently keep only the end of it (or answer 400): the model would then
    explain, or rewrite as an edit, code it never saw.  The window is `contextSize` (what
    we ask for, num_ctx), or the model's own when that is smaller (`model_context`: e.g.
    the embedded engine's); the answer's budget (`maxTokens`, at most half) is kept free.
    """
    context = settings.context_size
    limited_by_model = model_context is not None and 0 < model_context < context
    if limited_by_model and model_context is not None:
        context = model_context
    reserve = min(settings.max_tokens, context // 2)
    available = context - reserve
    needed = estimate_tokens(prompt.system) + estimate_tokens(prompt.user)
    if needed <= available:
        return
    lines = max(1, code.count("\n") + 1)
    fitting = max(1, int(lines * available / needed))
    remedy = "use a model with a longer context" if limited_by_model else "raise `contextSize`"
    raise UserError(
        f"The selection is too large for the model's context: about {needed:,} tokens, "
        f"and the context is {context:,} tokens ({reserve:,} kept for the answer). "
        f"Select less (at most ~{fitting:,} lines) or {remedy}."
    )


async def model_context(ls: AethelServer, model: str) -> int | None:
    """The model's context length as the engine reports it (cached `show`), if it can."""
    try:
        return (await ls.engine.show(model)).context_length
    except EngineError:
        return None  # the generation itself will report what is wrong


async def generate(
    ls: AethelServer,
    *,
    title: str,
    prompt: prompts.ActionPrompt,
    task: Task = "chat",
    code: str = "",
) -> GenerateResult:
    """One streamed chat generation, shown as work-done progress; updates aethel/status."""
    settings = ls.session.settings
    ensure_fits(prompt, code, settings)  # before any engine request
    model = await resolve_model(ls, task)
    ensure_fits(prompt, code, settings, await model_context(ls, model))
    request = ChatRequest(
        model=model,
        messages=(ChatMessage("system", prompt.system), ChatMessage("user", prompt.user)),
        options=GenerationOptions(
            temperature=settings.temperature,
            num_predict=settings.max_tokens,
            num_ctx=settings.context_size,
        ),
        keep_alive=settings.keep_alive_value,
    )
    engine: Engine = ls.engine
    ls.session.busy += 1
    ls.publish_status()
    try:
        async with Progress(
            ls,
            title,
            enabled=ls.session.client.work_done_progress,
            budget=settings.max_tokens,
        ) as progress:
            result = await stream_into(progress, engine.stream_chat(request), model)
    except asyncio.CancelledError:
        ls.session.busy -= 1
        ls.publish_status()
        raise
    except BaseException:
        ls.session.busy -= 1  # the command wrapper publishes the failure
        raise
    ls.session.busy -= 1
    ls.session.last_metrics = result.metrics
    ls.engine_succeeded(result.metrics.tokens_per_second, result.metrics)
    ls.log(f"{title}: {result.metrics.summary()} ({model})")
    return result


# -- edits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EditTarget:
    """Where an edit goes, as the document was when the prompt was built.

    The user may type while the model writes; the edit must then neither land on the
    wrong text nor overwrite what was just typed (see `locate`).
    """

    uri: str
    version: int | None
    source: str  # the whole document then
    start: int  # offsets of the target range in `source`
    end: int

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]


def edit_target(document: TextDocument, uri: str, rng: types.Range) -> EditTarget:
    """Capture `rng` of `document` now (call before the generation starts)."""
    start = offset_at(document, rng.start)
    end = max(start, offset_at(document, rng.end))
    return EditTarget(uri, document.version, document.source, start, end)


def locate(target: EditTarget, current: str) -> tuple[int, int] | None:
    """The target's offsets in the document's `current` text, or None when its text is
    gone (edited, deleted).

    The anchor is the target text itself, or, for an insertion point, the whole lines
    around it; of several matches the one nearest the original place wins.

    >>> t = EditTarget("u", 1, "a = 1\\nb = 2\\n", 6, 11)
    >>> locate(t, "# new\\na = 1\\nb = 2\\n"), locate(t, "a = 1\\nb = 3\\n")
    ((12, 17), None)
    """
    if current == target.source:
        return target.start, target.end
    anchor_start, anchor_end = target.start, target.end
    if anchor_start == anchor_end:
        anchor_start = target.source.rfind("\n", 0, anchor_start) + 1
        line_end = target.source.find("\n", anchor_end)
        anchor_end = len(target.source) if line_end < 0 else line_end
    anchor = target.source[anchor_start:anchor_end]
    if not anchor:
        return None
    best: int | None = None
    found = current.find(anchor)
    while found >= 0:
        if best is None or abs(found - anchor_start) < abs(best - anchor_start):
            best = found
        found = current.find(anchor, found + 1)
    if best is None:
        return None
    shift = best - anchor_start
    return target.start + shift, target.end + shift


async def apply_edit(ls: AethelServer, target: EditTarget, text: str, label: str) -> bool:
    """workspace/applyEdit, versioned; False when the client cannot or will not apply it,
    or when the target text changed meanwhile (then the user gets the text to paste)."""
    if not ls.session.client.apply_edit:
        return False
    current = open_document(ls.workspace, target.uri)
    if current is None:  # closed while the model was answering
        ls.log(
            f"Not editing {target.uri}: it is no longer open in the editor.",
            types.MessageType.Warning,
        )
        return False
    version = target.version
    rng: types.Range | None = None
    if current.version == target.version:
        rng = _client_range(current, target.start, target.end)
    else:
        place = locate(target, current.source)
        if place is not None:
            rng = _client_range(current, *place)
            version = current.version
    if rng is None:
        ls.show(
            f"{label}: the code changed while the model was writing, so nothing was "
            "replaced (your edits are kept). The suggestion, to paste if you want it:\n\n"
            + text,
            types.MessageType.Warning,
        )
        return False
    edit = _workspace_edit(ls, target.uri, version, rng, text)
    try:
        result = await asyncio.wait_for(
            ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=label)),
            APPLY_TIMEOUT_S,
        )
    except (asyncio.TimeoutError, Exception) as exc:
        ls.log(f"The editor did not apply the edit ({exc}).", types.MessageType.Warning)
        return False
    if not result.applied:
        reason = result.failure_reason or "no reason given"
        ls.log(f"The editor refused the edit: {reason}.", types.MessageType.Warning)
    return bool(result.applied)


def _client_range(document: TextDocument, start: int, end: int) -> types.Range:
    return types.Range(start=_client_position(document, start), end=_client_position(document, end))


def _client_position(document: TextDocument, offset: int) -> types.Position:
    """The position of `offset` in the client's units (pygls' own fails on empty text)."""
    source = document.source
    offset = max(0, min(offset, len(source)))
    line_start = source.rfind("\n", 0, offset) + 1
    units = document.position_codec.client_num_units(source[line_start:offset])
    return types.Position(line=source.count("\n", 0, offset), character=units)


def _workspace_edit(
    ls: AethelServer, uri: str, version: int | None, rng: types.Range, text: str
) -> types.WorkspaceEdit:
    """A TextDocumentEdit naming the version the edit was computed for, where the client
    supports it (it then refuses the edit if the document moved on since)."""
    edit = types.TextEdit(range=rng, new_text=text)
    if not ls.session.client.document_changes:
        return types.WorkspaceEdit(changes={uri: [edit]})
    identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(text_document=identifier, edits=[edit])]
    )


def keep_line_ending(original: str, replacement: str) -> str:
    """Keep the selection's trailing newline (models drop or add one at will)."""
    body = replacement.rstrip("\n")
    return body + "\n" if original.endswith("\n") else body


# -- explain ---------------------------------------------------------------------------


async def explain(ls: AethelServer, args: Args) -> dict[str, Any]:
    chosen = documents.selection(ls, args)
    result = await generate(
        ls,
        title="Explaining selection",
        prompt=prompts.explain(chosen.text, chosen.language),
        code=chosen.text,
    )
    shown = await show_explanation(ls, chosen, result)
    return {"text": result.text, "metrics": result.metrics.to_json(), "document": shown}


async def show_explanation(
    ls: AethelServer, chosen: documents.Selection, result: GenerateResult
) -> str | None:
    """A Markdown document where the client can show one, else a message."""
    where = f"{chosen.uri} lines {chosen.range.start.line + 1}-{chosen.range.end.line + 1}"
    text = (
        f"# Explanation\n\n_{where}_\n\n{result.text.strip()}\n\n---\n"
        f"_{result.metrics.model} · {result.metrics.summary()}_\n"
    )
    shown = await show_markdown(
        ls, "explanations", "explain", text, keep=EXPLANATIONS_KEPT, timeout_s=SHOW_TIMEOUT_S
    )
    if shown is None:
        ls.show(result.text, types.MessageType.Info)
    return shown


# -- improve / document / fix --------------------------------------------------------


@dataclass(frozen=True)
class Rewrite:
    title: str  # progress title
    label: str  # edit label
    build: Callable[[documents.Selection, Args], prompts.ActionPrompt]


async def rewrite(
    ls: AethelServer, args: Args, how: Rewrite, *, expand: bool = False
) -> dict[str, Any]:
    """Generate a replacement for the selection and apply it as an edit."""
    chosen = documents.selection(ls, args, allow_empty=expand, editable=True)
    if expand and chosen.empty:
        chosen = whole_lines(ls, args)
    target = edit_target(chosen.document, chosen.uri, chosen.range)
    result = await generate(ls, title=how.title, prompt=how.build(chosen, args), code=target.text)
    code = keep_line_ending(target.text, prompts.extract_code(result.text))
    if not code.strip():
        raise UserError("The model returned no code; nothing was changed. Try again.")
    if chosen.language == "aethel":
        return await _rewrite_checked(ls, chosen, how, code, result, target)
    applied = await apply_edit(ls, target, code, how.label)
    return {"text": code, "applied": applied, "metrics": result.metrics.to_json()}


async def _rewrite_checked(
    ls: AethelServer, chosen: documents.Selection, how: Rewrite, code: str,
    result: GenerateResult, target: EditTarget,
) -> dict[str, Any]:
    """An Aethel rewrite lands only when the document it makes passes the checker (or
    `generation.applyInvalid`): the same repair rounds as a generated contract."""
    settings = ls.session.settings
    source, first_line = target.source, chosen.range.start.line  # as the prompt saw it
    attempts = 1
    while True:
        after = source[: target.start] + code + source[target.end :]
        last_line = first_line + code.count("\n")
        problems = [d for d in await check_aethel(after)  # in the rewritten lines only
                    if d.range.start.line <= last_line and d.range.end.line >= first_line]
        if not problems or attempts > settings.generation.repair_rounds:
            break
        attempts += 1
        listed = [describe(d) for d in problems]
        prompt = prompts.fix(code, "aethel", [f"the checker still reports: {p}" for p in listed])
        result = await generate(ls, title=f"{how.title} (checker round {attempts - 1})",
                                prompt=prompt, code=code)
        code = keep_line_ending(target.text, prompts.extract_code(result.text)) or code
    valid = not problems
    applied = False
    if valid or settings.generation.apply_invalid:
        applied = await apply_edit(ls, target, code, how.label)
    if not valid:
        listed_text = "; ".join(describe(d) for d in problems[:5])
        verb, advice = (
            ("applied anyway", "Fix the reported lines.") if applied else
            ("not applied", "Set `generation.applyInvalid = true` to insert it anyway.")
        )
        ls.show(f"{how.label}: the Aethel checker rejects the result after {attempts} "
                f"attempt(s), so it was {verb}: {listed_text}. {advice}",
                types.MessageType.Warning)
    return {"text": code, "applied": applied, "metrics": result.metrics.to_json(),
            "valid": valid, "attempts": attempts,
            "diagnostics": [d.to_json() for d in problems]}


def whole_lines(ls: AethelServer, args: Args) -> documents.Selection:
    """The full lines a (possibly empty) diagnostic range touches."""
    rng = documents.parse_range(args.get("range"))
    end_line = rng.end.line + 1
    expanded = dict(args)
    expanded["range"] = {
        "start": {"line": rng.start.line, "character": 0},
        "end": {"line": end_line, "character": 0},
    }
    return documents.selection(ls, expanded)


IMPROVE = Rewrite(
    "Improving selection",
    "Improve selection",
    lambda s, _a: prompts.improve(s.text, s.language),
)
DOCUMENT = Rewrite(
    "Adding documentation",
    "Add documentation",
    lambda s, _a: prompts.document(s.text, s.language),
)


def _problems(args: Args) -> list[str]:
    """Diagnostic messages from `diagnostics` (LSP objects or strings) or `message`."""
    found: list[str] = []
    raw = args.get("diagnostics")
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, dict) and isinstance(item.get("message"), str):
                line = item.get("range", {}).get("start", {}).get("line")
                prefix = f"line {line + 1}: " if isinstance(line, int) else ""
                found.append(prefix + item["message"])
    message = args.get("message")
    if isinstance(message, str) and message:
        found.append(message)
    return found


FIX = Rewrite(
    "Fixing with AI",
    "Fix with AI",
    lambda s, a: prompts.fix(s.text, s.language, _problems(a)),
)


async def improve(ls: AethelServer, args: Args) -> dict[str, Any]:
    return await rewrite(ls, args, IMPROVE)


async def document(ls: AethelServer, args: Args) -> dict[str, Any]:
    return await rewrite(ls, args, DOCUMENT)


async def fix(ls: AethelServer, args: Args) -> dict[str, Any]:
    return await rewrite(ls, args, FIX, expand=True)


# -- generate contract ---------------------------------------------------------------


async def check_aethel(text: str) -> list[Diagnostic]:
    """Errors in generated Aethel: syntax, then the z3 checker (conservation, overflow,
    consistency, vacuous guards).  Runs on a worker thread so other requests go on; a
    cancelled action stops the checker at its next query."""
    analysis = await analyze_in_thread(text)
    return [d for d in analysis.diagnostics if d.severity == Severity.ERROR]


def describe(d: Diagnostic) -> str:
    return f"line {d.range.start.line + 1}: {d.message}"


@dataclass(frozen=True)
class ContractTarget:
    """Where the contract goes and what it should do."""

    range: types.Range
    description: str
    draft: str
    fenced: bool  # insert as a ```aethel block (the document is not Aethel)
    after_last_line: bool = False  # inserted at the end of a last line without a newline


def contract_target(ls: AethelServer, args: Args) -> ContractTarget:
    chosen = documents.selection(ls, args, allow_empty=True, editable=True)
    description = require_str(args, "description", optional=True).strip()
    fenced = chosen.language != "aethel"
    if not chosen.empty:
        lines = chosen.text.strip().splitlines()
        comments = [prompts.description_from_comment(line) for line in lines]
        if all(comments):
            end = chosen.range.end
            last = (
                end.line - 1
                if end.character == 0 and end.line > chosen.range.start.line
                else end.line
            )
            joined = " ".join(c for c in comments if c)
            return _after(chosen.document, last, description or joined, fenced)
        return ContractTarget(chosen.range, description or chosen.text.strip(), "", fenced)
    line_no = chosen.range.start.line
    doc_lines = chosen.document.lines
    line = doc_lines[line_no] if line_no < len(doc_lines) else ""
    from_comment = prompts.description_from_comment(line)
    if from_comment:
        return _after(chosen.document, line_no, description or from_comment, fenced)
    if not chosen.document.source.strip():
        return ContractTarget(documents.full_range(chosen.document), description, "", fenced)
    if description:
        point = types.Range(start=chosen.range.start, end=chosen.range.start)
        return ContractTarget(point, description, "", fenced)
    raise UserError(
        "Describe the contract first: write a comment line such as "
        "`# transfer with a 1% fee to the treasury` and run the action on it, select a "
        "description, or pass `description`."
    )


def _after(document: TextDocument, line: int, description: str,
           fenced: bool) -> ContractTarget:
    """Insert after `line`: at the start of the next line, or, on a last line without a
    newline, at its end behind a newline (a position past the end of the document would
    be clamped by the editor onto the comment line itself)."""
    lines = document.lines
    if line + 1 < len(lines) or (lines and lines[-1].endswith("\n")):
        point = types.Position(line=line + 1, character=0)
        return ContractTarget(types.Range(start=point, end=point), description, "", fenced)
    last = lines[line] if line < len(lines) else ""
    point = types.Position(line=line, character=document.position_codec.client_num_units(last))
    return ContractTarget(types.Range(start=point, end=point), description, "", fenced,
                          after_last_line=True)


async def generate_contract(ls: AethelServer, args: Args) -> dict[str, Any]:
    target = contract_target(ls, args)
    uri = require_uri(args)
    where = edit_target(documents.get_document(ls, uri), uri, target.range)
    settings = ls.session.settings
    rounds = settings.generation.repair_rounds
    prompt = prompts.generate_contract(target.description, target.draft)
    attempts = 0
    metrics: list[dict[str, Any]] = []
    code = ""
    problems: list[Diagnostic] = []
    while True:
        attempts += 1
        title = (
            "Generating Aethel contract"
            if attempts == 1
            else (f"Repairing Aethel contract (round {attempts - 1})")
        )
        result = await generate(ls, title=title, prompt=prompt, code=target.description)
        metrics.append(result.metrics.to_json())
        code = extract_aethel(result.text).rstrip("\n")
        problems = await check_aethel(code)
        if not problems or attempts > rounds:
            break
        prompt = prompts.repair_contract(target.description, code, [describe(d) for d in problems])
    valid = not problems
    applied = False
    if valid or settings.generation.apply_invalid:
        applied = await apply_edit(
            ls,
            where,
            contract_text(code, problems, target),
            "Generate Aethel contract",
        )
    if not valid:
        listed = "; ".join(describe(d) for d in problems[:5])
        outcome, advice = (
            ("was applied with its problems marked", "Fix the marked lines, or edit the "
             "description and try again.") if applied else
            ("was not applied", "Edit the description and try again, or set "
             "`generation.applyInvalid = true` to insert it anyway.")
        )
        ls.show(
            f"The generated Aethel contract still has {len(problems)} problem(s) after "
            f"{attempts} attempt(s) and {outcome}: {listed}. {advice}",
            types.MessageType.Warning,
        )
    return {
        "text": code,
        "valid": valid,
        "attempts": attempts,
        "diagnostics": [d.to_json() for d in problems],
        "applied": applied,
        "metrics": metrics[-1],
        "attemptMetrics": metrics,
    }


def require_uri(args: Args) -> str:
    return require_str(args, "uri")


def contract_text(code: str, problems: Sequence[Diagnostic], target: ContractTarget) -> str:
    """The text to insert: marked when invalid, fenced outside Aethel files."""
    body = code.rstrip("\n") + "\n"
    if problems:
        marks = "".join(f"# aethel-lsp: INVALID, {describe(d)}\n" for d in problems)
        body = marks + body
    if target.fenced:
        body = f"```aethel\n{body}```\n"
    return "\n" + body if target.after_last_line else body
