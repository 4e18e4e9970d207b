"""Fill-in-the-middle: which way to ask a model for the text at the cursor.

Three modes, best first:

* ``native`` – the model's `/api/show` capabilities include ``insert`` (its Ollama
  template uses ``.Suffix``), so we send ``prompt`` + ``suffix`` and let Ollama apply the
  model's own FIM template.  Nothing here can get that template wrong.
* ``template`` – the model cannot ``insert`` but belongs to a family whose FIM special
  tokens we know; we lay them out ourselves and send the prompt with ``raw: true`` (Ollama
  must not wrap it in a chat template).  Ollama refuses ``suffix`` without ``insert`` even
  in raw mode, so the suffix travels inside the prompt.
* ``continue`` – on an engine with a per-request prompt cache (the embedded llama.cpp
  server), a model without FIM continues the text before the cursor as a raw prompt.
  That prompt only grows at its end while the user types, so the cache reuses all of it
  and a keystroke costs the new tokens alone; the text after the cursor is left to
  post-processing (which also drops a repeat of the line being typed).
* ``chat`` – anything else: a chat model is asked, with instructions, for the missing
  text only.  Slowest and least reliable; post-processing cleans up what it adds.

The choice is a pure function of the model's name and `ModelInfo`, and it comes with a
human reason that the server logs, so "why are my completions bad" has an answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aethel_lsp.engine.types import (
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationOptions,
    KeepAlive,
    ModelInfo,
)


class FimMode(str, enum.Enum):
    NATIVE = "native"
    TEMPLATE = "template"
    CONTINUE = "continue"
    CHAT = "chat"


@dataclass(frozen=True)
class FimTemplate:
    """The special tokens one model family was trained with for fill-in-the-middle.

    `suffix_first` families (Mistral's Codestral) put the text after the cursor before
    the text before it; `stop` are the end-of-middle / end-of-text tokens that a raw
    prompt does not stop on by itself.
    """

    family: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    stop: tuple[str, ...]
    suffix_first: bool = False

    def render(self, prefix: str, suffix: str) -> str:
        if self.suffix_first:
            return f"{self.suffix_token}{suffix}{self.prefix_token}{prefix}"
        return f"{self.prefix_token}{prefix}{self.suffix_token}{suffix}{self.middle_token}"


QWEN_CODER = FimTemplate(
    family="qwen2.5-coder",
    prefix_token="<|fim_prefix|>",
    suffix_token="<|fim_suffix|>",
    middle_token="<|fim_middle|>",
    stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
)
# DeepSeek-Coder's tokens use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK.
DEEPSEEK_CODER = FimTemplate(
    family="deepseek-coder",
    prefix_token="<\uff5cfim\u2581begin\uff5c>",
    suffix_token="<\uff5cfim\u2581hole\uff5c>",
    middle_token="<\uff5cfim\u2581end\uff5c>",
    stop=("<\uff5cend\u2581of\u2581sentence\uff5c>", "<|EOT|>"),
)
# Code Llama's infilling format has significant spaces: "<PRE> {pre} <SUF>{suf} <MID>".
CODELLAMA = FimTemplate(
    family="codellama",
    prefix_token="<PRE> ",
    suffix_token=" <SUF>",
    middle_token=" <MID>",
    stop=("<EOT>",),
)
STARCODER2 = FimTemplate(
    family="starcoder2",
    prefix_token="<fim_prefix>",
    suffix_token="<fim_suffix>",
    middle_token="<fim_middle>",
    stop=("<|endoftext|>", "<file_sep>", "<fim_prefix>"),
)
# Codestral (Mistral) puts the suffix first and has no middle token: "[SUFFIX]s[PREFIX]p".
CODESTRAL = FimTemplate(
    family="codestral",
    prefix_token="[PREFIX]",
    suffix_token="[SUFFIX]",
    middle_token="",
    stop=("</s>", "[SUFFIX]", "[PREFIX]"),
    suffix_first=True,
)

FIM_TEMPLATES: tuple[FimTemplate, ...] = (
    QWEN_CODER,
    DEEPSEEK_CODER,
    CODELLAMA,
    STARCODER2,
    CODESTRAL,
)

# Model-name fragments -> template.  Names are matched before `ModelInfo.family`, because
# Ollama reports the *architecture* as the family ("qwen2" for qwen2.5-coder, "llama" for
# both codellama and deepseek-coder), which is not enough to know the FIM tokens.
_NAME_HINTS: tuple[tuple[str, FimTemplate], ...] = (
    ("qwen2.5-coder", QWEN_CODER),
    ("qwen2.5coder", QWEN_CODER),
    ("qwen3-coder", QWEN_CODER),
    ("deepseek-coder", DEEPSEEK_CODER),
    ("codellama", CODELLAMA),
    ("code-llama", CODELLAMA),
    ("starcoder2", STARCODER2),
    ("codestral", CODESTRAL),
)
# Architecture names that identify a family on their own (no other family shares them).
_FAMILY_HINTS: dict[str, FimTemplate] = {
    "starcoder2": STARCODER2,
}

# Every special token any known family might leak into its answer (post-processing
# strips them).
ALL_SPECIAL_TOKENS: tuple[str, ...] = tuple(
    dict.fromkeys(
        token
        for t in FIM_TEMPLATES
        for token in (
            t.prefix_token.strip(),
            t.suffix_token.strip(),
            t.middle_token.strip(),
            *t.stop,
        )
        if token
    )
)


@dataclass(frozen=True)
class FimPlan:
    """The mode chosen for one model, and why (logged once per model)."""

    model: str
    mode: FimMode
    reason: str
    template: FimTemplate | None = None

    def describe(self) -> str:
        return f"FIM mode for {self.model}: {self.mode.value} ({self.reason})"


def template_for(model: str, info: ModelInfo | None) -> FimTemplate | None:
    """The known FIM template of a model, from its name first, then its family."""
    name = model.lower().rsplit("/", 1)[-1]
    for hint, template in _NAME_HINTS:
        if hint in name:
            return template
    family = (info.family or "").lower() if info is not None else ""
    return _FAMILY_HINTS.get(family)


def choose_mode(model: str, info: ModelInfo | None, *, continuation: bool = False) -> FimPlan:
    """Pick native `suffix`, a raw family template, a raw continuation, or chat for `model`.

    `info` is `None` when `/api/show` failed; we then still try the name-based template,
    since a wrong guess only costs one worse completion, while chat is always slow.
    `continuation` says the engine caches prompts per request (the embedded engine), which
    makes continuing the text before the cursor the fastest way without FIM tokens.
    """
    if info is not None and info.has("insert"):
        return FimPlan(model, FimMode.NATIVE, "its capabilities include 'insert': prompt + suffix")
    template = template_for(model, info)
    caps = ", ".join(info.capabilities) if info is not None and info.capabilities else "none"
    if template is not None:
        return FimPlan(
            model,
            FimMode.TEMPLATE,
            f"no 'insert' capability (capabilities: {caps}); known family "
            f"{template.family}: raw prompt with its FIM tokens",
            template,
        )
    if continuation:
        return FimPlan(
            model,
            FimMode.CONTINUE,
            f"no 'insert' capability (capabilities: {caps}) and no known FIM family: raw "
            "continuation of the text before the cursor (its cached prefix is reused)",
        )
    return FimPlan(
        model,
        FimMode.CHAT,
        f"no 'insert' capability (capabilities: {caps}) and no known FIM family: chat prompt",
    )


def plan_for_empty_prefix(plan: FimPlan) -> FimPlan:
    """A plan that works when there is no text before the cursor (top of a file).

    Ollama answers `/api/generate` with an empty `prompt` by loading the model and
    generating nothing (`done_reason: "load"`), whatever the `suffix`.  The raw family
    template renders a non-empty prompt from an empty prefix; without a known family,
    the chat prompt does. A continuation has nothing to continue, so it asks by chat too.
    """
    if plan.mode is FimMode.CONTINUE:
        return FimPlan(plan.model, FimMode.CHAT,
                       "nothing before the cursor to continue: a chat prompt is used")
    if plan.mode is not FimMode.NATIVE:
        return plan
    template = template_for(plan.model, None)
    if template is not None:
        return FimPlan(
            plan.model,
            FimMode.TEMPLATE,
            f"nothing before the cursor: Ollama ignores an empty prompt, so the raw "
            f"{template.family} FIM template is used",
            template,
        )
    return FimPlan(
        plan.model,
        FimMode.CHAT,
        "nothing before the cursor: Ollama ignores an empty prompt, so a chat prompt is used",
    )


CHAT_SYSTEM_PROMPT = (
    "You are a code completion engine. You are shown a file with the marker <CURSOR>. "
    "Reply with exactly the text to insert at <CURSOR>: no explanation, no Markdown fences, "
    "do not repeat the text before or after the cursor."
)


@dataclass(frozen=True)
class FimPrompt:
    """What to send: the FIM-ready prefix (context included) and the suffix window."""

    prefix: str
    suffix: str
    language_id: str = ""


def build_generate_request(
    plan: FimPlan,
    prompt: FimPrompt,
    options: GenerationOptions,
    keep_alive: KeepAlive,
) -> GenerateRequest:
    """The `/api/generate` request for a native, template or continuation plan."""
    if plan.mode is FimMode.NATIVE:
        return GenerateRequest(
            model=plan.model,
            prompt=prompt.prefix,
            suffix=prompt.suffix,
            options=options,
            keep_alive=keep_alive,
        )
    if plan.mode is FimMode.CONTINUE:
        return GenerateRequest(
            model=plan.model,
            prompt=prompt.prefix,
            raw=True,
            options=options,
            keep_alive=keep_alive,
        )
    if plan.mode is FimMode.TEMPLATE and plan.template is not None:
        stop = tuple(dict.fromkeys((*options.stop, *plan.template.stop)))
        return GenerateRequest(
            model=plan.model,
            prompt=plan.template.render(prompt.prefix, prompt.suffix),
            raw=True,
            options=_with_stop(options, stop),
            keep_alive=keep_alive,
        )
    raise ValueError(f"plan {plan.mode.value} is not a generate plan")


def build_chat_request(
    plan: FimPlan,
    prompt: FimPrompt,
    options: GenerationOptions,
    keep_alive: KeepAlive,
) -> ChatRequest:
    """The `/api/chat` request for a model without FIM: the file with a cursor marker."""
    fence = prompt.language_id or ""
    user = f"```{fence}\n{prompt.prefix}<CURSOR>{prompt.suffix}\n```\nText to insert at <CURSOR>:"
    return ChatRequest(
        model=plan.model,
        messages=(
            ChatMessage("system", CHAT_SYSTEM_PROMPT),
            ChatMessage("user", user),
        ),
        options=options,
        keep_alive=keep_alive,
    )


def _with_stop(options: GenerationOptions, stop: tuple[str, ...]) -> GenerationOptions:
    return GenerationOptions(
        temperature=options.temperature,
        num_predict=options.num_predict,
        num_ctx=options.num_ctx,
        stop=stop,
        seed=options.seed,
        top_p=options.top_p,
    )
