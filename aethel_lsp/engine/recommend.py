"""Which model to use for what: the earlier engine's defaults, then the best installed one.

For each use case we say whether its recommended model is installed; if not, we pick
the best installed model for that use case from what the engine tells us (capabilities
and exact parameter counts) and say why, so the user sees the reasoning, not a guess.
Ollama "cloud" models (listed with a `remote_host`) are picked only when no local model
can generate: aethel-lsp is a local assistant, and a cloud model sends the user's code
to another machine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aethel_lsp.engine.base import Engine
from aethel_lsp.engine.types import EngineKind, JsonDict, ModelInfo

CODE_MARKERS = ("coder", "code", "starcoder", "codestral", "codegemma", "devstral", "granite-code")
B = 1_000_000_000


@dataclass(frozen=True)
class UseCase:
    """A use case, its default model (from the earlier engine) and what "best" means."""

    name: str
    default: str
    description: str
    wants_code: bool
    ideal_parameters: float | None  # None = as large as possible / as small as possible
    prefer_large: bool = False
    avoid_code: bool = False  # general chat: a code-tuned model is a last resort


# The one table of model advice: `recommend`, the doctor, `generate`'s default and the docs
# all follow it. Every tag exists in Ollama's library (checked 2026-12); sizes are Ollama's.
SMALL_CODE_MODEL = "qwen2.5-coder:1.5b"  # the default advice: small, fast on a CPU, FIM
TINY_CODE_MODEL = "qwen2.5-coder:0.5b"
USE_CASES: tuple[UseCase, ...] = (
    UseCase("coding", SMALL_CODE_MODEL, "everyday code tasks and inline completion", True,
            1.5 * B),
    UseCase("general", "llama3.2:3b", "explanations and general questions", False, 3 * B,
            avoid_code=True),
    UseCase("fast", TINY_CODE_MODEL, "quick answers on modest hardware", True, None),
    UseCase("powerful", "llama3.3:70b", "the hardest questions, given the hardware", False,
            None, prefer_large=True),
    UseCase("code_large", "qwen2.5-coder:32b", "large code generation and refactoring", True,
            None, prefer_large=True),
)
CODING = USE_CASES[0]


@dataclass(frozen=True)
class Recommendation:
    """The answer for one use case."""

    use_case: str
    description: str
    recommended: str
    recommended_installed: bool
    model: str | None  # what to use now: the recommended one if installed, else the best pick
    reason: str

    def to_json(self) -> JsonDict:
        return {
            "useCase": self.use_case,
            "description": self.description,
            "recommended": self.recommended,
            "recommendedInstalled": self.recommended_installed,
            "model": self.model,
            "reason": self.reason,
        }


def normalize_name(name: str) -> str:
    """`llama3` and `llama3:latest` are the same model.

    >>> normalize_name("Llama3"), normalize_name("llama3:8b")
    ('llama3:latest', 'llama3:8b')
    """
    lowered = name.strip().lower()
    return lowered if ":" in lowered else f"{lowered}:latest"


def parameter_count(model: ModelInfo) -> float | None:
    """Exact count when known, else Ollama's human `parameter_size` ("7.6B", "135M").

    >>> parameter_count(ModelInfo("m", parameter_size="7.6B"))
    7600000000.0
    """
    if model.parameters:
        return float(model.parameters)
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT])\s*", model.parameter_size or "")
    if not match:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return float(match.group(1)) * scale


def is_code_model(model: ModelInfo) -> bool:
    name = model.name.lower()
    return model.has("insert") or any(marker in name for marker in CODE_MARKERS)


def can_generate(model: ModelInfo) -> bool:
    """Embedding-only models cannot answer; with unknown capabilities, trust the name."""
    if model.capabilities:
        return model.has("completion")
    return "embed" not in model.name.lower()


def install_advice(kind: EngineKind, model: str) -> str:
    """How to get `model` onto an engine of `kind`: only Ollama downloads models itself.

    >>> install_advice("ollama", "qwen2.5-coder:1.5b")
    '`ollama pull qwen2.5-coder:1.5b`'
    """
    if kind == "ollama":
        return f"`ollama pull {model}`"
    if kind == "openai":
        return (f"load {model} on the OpenAI-compatible server itself, which cannot download "
                "models: e.g. `llama-server -m FILE.gguf` or `vllm serve MODEL`")
    return f"download a GGUF build of {model} and set `embedded.modelPath` to it"


def recommend(models: Sequence[ModelInfo], use_case: UseCase,
              kind: EngineKind = "ollama") -> Recommendation:
    """The recommendation for one use case given the installed models (`kind`: the engine
    they are on, which says how to install the recommended one)."""
    installed = {normalize_name(m.name): m for m in models}
    match = installed.get(normalize_name(use_case.default))
    if match is not None:
        return _result(use_case, True, match.name,
                       f"{use_case.default} is installed — the recommended model for this.")
    candidates = [m for m in models if can_generate(m)]
    # a thinking model spends tokens the user never sees: only when nothing else can answer
    candidates = [m for m in candidates if not m.has("thinking")] or candidates
    if not candidates:
        return _result(use_case, False, None,
                       f"No model that can generate text is installed; install the "
                       f"recommended one: {install_advice(kind, use_case.default)}.")
    local = [m for m in candidates if not m.is_remote]
    best, why = _best(local or candidates, use_case)
    if best.is_remote:
        why += (f"; note that it is a cloud model that runs at {best.remote_host}, so your "
                "prompts and code leave this machine — pull a local model to avoid that")
    return _result(use_case, False, best.name,
                   f"{use_case.default} is not installed ({install_advice(kind, use_case.default)}"
                   f"); {best.name} is the best installed choice: {why}.")


def recommend_all(models: Sequence[ModelInfo],
                  kind: EngineKind = "ollama") -> list[Recommendation]:
    return [recommend(models, use_case, kind) for use_case in USE_CASES]


async def recommend_installed(engine: Engine) -> list[Recommendation]:
    """Recommendations against what `engine` has installed (with capabilities from `show`)."""
    models = await engine.list_models_detailed()
    return recommend_all(models, engine.kind)


def _result(use_case: UseCase, installed: bool, model: str | None, reason: str) -> Recommendation:
    return Recommendation(use_case.name, use_case.description, use_case.default, installed,
                          model, reason)


def _best(candidates: list[ModelInfo], use_case: UseCase) -> tuple[ModelInfo, str]:
    """Rank by fit to the use case: code models first for code, then size."""
    pool = candidates
    code_note = ""
    code = [m for m in candidates if is_code_model(m)]
    if use_case.wants_code:
        if code:
            pool, code_note = code, "a code model"
        else:
            code_note = "no code model is installed, so a general model"
    elif use_case.avoid_code:
        general = [m for m in candidates if m not in code]
        if general:
            pool, code_note = general, "a general (not code-tuned) model"
    ranked = sorted(pool, key=lambda m: _size_rank(m, use_case))
    best = ranked[0]
    return best, _explain(best, use_case, code_note)


def _size_rank(model: ModelInfo, use_case: UseCase) -> tuple[float, float]:
    size = parameter_count(model)
    known = 0.0 if size is not None else 1.0  # models of unknown size rank last
    value = size or 0.0
    if use_case.prefer_large:
        return known, -value
    if use_case.ideal_parameters is None:  # fast: the smallest
        return known, value
    # Sizes compare by ratio (3B vs 7B is a bigger step than 14B vs 7B in practice).
    return known, abs(math.log(max(value, 1.0) / use_case.ideal_parameters))


def _explain(model: ModelInfo, use_case: UseCase, code_note: str) -> str:
    parts = [code_note] if code_note else []
    if model.has("insert"):
        parts.append("it can fill in the middle (`insert`)")
    size = parameter_count(model)
    if size is None:
        parts.append("its size is unknown")
    elif use_case.prefer_large:
        parts.append(f"the largest installed ({_human(size)} parameters)")
    elif use_case.ideal_parameters is None:
        parts.append(f"the smallest installed ({_human(size)} parameters)")
    else:
        parts.append(f"{_human(size)} parameters, closest to the "
                     f"{_human(use_case.ideal_parameters)} this use case wants")
    return ", ".join(parts)


def _human(count: float) -> str:
    return f"{count / B:.1f}B" if count >= B else f"{count / 1e6:.0f}M"


def pick_model(models: Sequence[ModelInfo], task: str) -> str | None:
    """Best installed *local* model for `task`, by the same rule as `recommend`'s "coding"
    (the recommended model if installed, else code models first, closest in size; no
    "thinking" unless nothing else answers); a model the user configured for the engine
    itself (`embedded.modelPath`) comes first. Cloud models (Ollama's `remote_host`) are never
    picked implicitly: that would send the user's code off the machine without them choosing.

    >>> from aethel_lsp.engine.types import ModelInfo as M
    >>> pick_model([M("nomic-embed-text", capabilities=("embedding",)),
    ...             M("llama3.2", capabilities=("completion",)),
    ...             M("qwen2.5-coder:1.5b", capabilities=("completion", "insert"))], "chat")
    'qwen2.5-coder:1.5b'
    >>> print(pick_model([M("qwen3-coder:480b-cloud", capabilities=("completion",),
    ...                     remote_host="https://ollama.com:443")], "chat"))
    None
    """
    usable = [m for m in models if can_generate(m) and not m.is_remote]
    configured = [m for m in usable if m.configured]
    if configured:  # the user pointed the engine at this file: it is the default
        return configured[0].name
    if task == "completion":  # fill-in-the-middle first
        usable = [m for m in usable if m.has("insert")] or usable
    return recommend(usable, CODING).model if usable else None
