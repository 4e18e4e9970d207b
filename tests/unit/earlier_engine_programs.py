"""Programs written against the earlier `LocalEngine`, re-created to test the facade (issue 20).

Re-written here from the documented usage of Aethel's earlier engine (upstream
diotec-barros/diotec360: `demo_local_engine.py`, `diotec360/mesh/mesh_intelligence.py`,
`diotec360/ai/lora_trainer.py`, and the examples in `local_engine.py`'s docstrings); no
code is copied.  What is kept exactly is how they use the engine: the same calls, the
same attribute reads, the same format specs (`:.0f`, `:.1f`, `:.2f`, `/1e9`), the same
`except` clauses, and `LocalEngine()` built with no arguments.  The interactive pauses
between the demo's parts are left out.

The one line that differs from those programs is the import below; a program that runs
here runs unchanged on aethel-lsp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aethel_lsp.engine.facade import (
    LocalEngine,
    LocalInferenceRequest,
    ModelNotFoundError,
    OllamaNotAvailableError,
)

PRIME_PROMPT = "Write a Python function that tells whether a number is prime"
BLOCKCHAIN_PROMPT = "Explain in simple terms how a blockchain works"
AETHEL_PROMPT = (
    "Write an Aethel contract for a token transfer that checks conservation:\n"
    "a transfer function, a sufficient-balance check, an unchanged total supply,\n"
    "all stated with `ensure`."
)
AETHEL_SYSTEM = "You write formally verified Aethel smart contracts: correct, clean code only."


def print_metrics(response: Any) -> None:
    """The demo's metrics block: the earlier engine always gave numbers here."""
    print(f"Tokens generated: {response.tokens_generated}")
    print(f"Latency: {response.latency_ms:.0f}ms")
    print(f"Throughput: {response.tokens_per_second:.1f} tokens/s")


# -- demo_local_engine.py: its four scenarios --------------------------------------------------


def scenario_basic_inference() -> None:
    """1. Detect the engine, list the models, generate with the first one."""
    print("SCENARIO 1: basic inference")
    engine = LocalEngine()
    try:
        engine.check_ollama_available()  # the earlier engine raised here when offline
        models = engine.list_models()
        if not models:
            print("No model installed; try: ollama pull deepseek-coder:7b")
            return
        model = models[0]
        print(f"Model: {model.name}")
        request = LocalInferenceRequest(
            prompt=PRIME_PROMPT, model=model.name, temperature=0.7, max_tokens=300
        )
        print(f"Prompt: {request.prompt}")
        response = engine.generate(request)
        print(response.text)
        print_metrics(response)
    except OllamaNotAvailableError as error:
        print(f"Error: {error}")
        print("Install Ollama from https://ollama.ai, pull a model, and run this again.")


def scenario_streaming() -> None:
    """2. Stream a reply token by token."""
    print("SCENARIO 2: streaming")
    engine = LocalEngine()
    try:
        models = engine.list_models()
        if not models:
            print("No model installed.")
            return
        model = models[0]
        print(f"Model: {model.name}")
        request = LocalInferenceRequest(
            prompt=BLOCKCHAIN_PROMPT, model=model.name, temperature=0.8, max_tokens=200
        )
        for token in engine.stream_generate(request):
            print(token, end="", flush=True)
        print()
        print("Streaming done.")
    except OllamaNotAvailableError as error:
        print(f"Error: {error}")


def scenario_model_management() -> None:
    """3. Sizes, parameter counts, families, recommendations, statistics."""
    print("SCENARIO 3: model management")
    engine = LocalEngine()
    try:
        models = engine.list_models()
        print(f"Installed models: {len(models)}")
        for model in models:
            print(f"{model.name}")
            print(f"  size: {model.size_gb:.2f} GB")
            print(f"  parameters: ~{model.parameters/1e9:.1f}B")
            print(f"  family: {model.family}")
        recommendations = engine.get_recommended_models()
        for use_case, model_name in recommendations.items():
            mark = "installed" if any(m.name == model_name for m in models) else "missing"
            print(f"  [{mark}] {use_case.capitalize()}: {model_name}")
        stats = engine.get_statistics()
        print(f"Ollama available: {'yes' if stats['ollama_available'] else 'no'}")
        print(f"Models installed: {stats['models_installed']}")
        print(f"Total size: {stats['total_size_gb']:.2f} GB")
    except OllamaNotAvailableError as error:
        print(f"Error: {error}")


def scenario_code_generation() -> None:
    """4. Prefer a code model and generate Aethel with a system prompt."""
    print("SCENARIO 4: Aethel code generation")
    engine = LocalEngine()
    try:
        models = engine.list_models()
        if not models:
            print("No model installed.")
            return
        model = None
        for candidate in models:
            if "deepseek" in candidate.name.lower() or "code" in candidate.name.lower():
                model = candidate
                break
        if not model:
            model = models[0]
        print(f"Model: {model.name}")
        request = LocalInferenceRequest(
            prompt=AETHEL_PROMPT, model=model.name, temperature=0.5, max_tokens=400,
            system=AETHEL_SYSTEM,
        )
        response = engine.generate(request)
        print(response.text)
        print_metrics(response)
    except OllamaNotAvailableError as error:
        print(f"Error: {error}")


def run_demo() -> None:
    scenario_basic_inference()
    scenario_streaming()
    scenario_model_management()
    scenario_code_generation()


# -- mesh_intelligence.py: how its MeshAI uses the engine --------------------------------------


@dataclass
class Verdict:
    """The shape of the mesh's verification result (its own dataclass, mutated after)."""

    verified: bool
    confidence: float
    reasoning: str
    flags: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    model_used: str = "none"


class MeshVerifier:
    """Checks a transaction with a local model before it is sent over the mesh."""

    def __init__(self, model_name: str = "deepseek-coder:7b") -> None:
        self.model_name = model_name
        self.engine = LocalEngine()

    def is_available(self) -> bool:
        """Engine running and model installed: the calls the mesh makes, in its order."""
        try:
            self.engine.check_ollama_available()
            return self.engine._is_model_installed(self.model_name)
        except OllamaNotAvailableError:
            return False

    def verify(self, transaction: dict[str, Any], max_tokens: int = 300) -> Verdict:
        if not self.is_available():
            return Verdict(True, 0.5, "AI check skipped (Ollama not available)",
                           ["ai_unavailable"])
        prompt = (f"Is this transfer plausible? {transaction['sender']} pays "
                  f"{transaction['amount']} to {transaction['receiver']}. Answer VALID or "
                  "SUSPICIOUS with one reason.")
        try:
            request = LocalInferenceRequest(prompt=prompt, model=self.model_name,
                                            temperature=0.3, max_tokens=max_tokens)
            response = self.engine.generate(request)
            suspicious = "SUSPICIOUS" in response.text.upper()
            verdict = Verdict(not suspicious, 0.9, response.text.strip())
            verdict.latency_ms = response.latency_ms
            verdict.model_used = self.model_name
            return verdict
        except (OllamaNotAvailableError, ModelNotFoundError) as error:
            return Verdict(True, 0.5, f"AI check failed: {error}", ["ai_error"])


# -- lora_trainer.py: checking the base model before training ---------------------------------


def base_model_line(engine: LocalEngine, model_name: str) -> str:
    """The trainer's check: any failure means the base model is missing."""
    try:
        model_info = engine.get_model_info(model_name)
        return f"Base model found ({model_info.size_gb:.1f}GB)"
    except Exception as error:
        raise Exception(f"Base model not found: {error}") from error


# -- local_engine.py's docstring examples ------------------------------------------------------


def docstring_example(model_name: str) -> str | None:
    """`if engine.check_ollama_available(): ...` then a generation, then a continuation
    that sends the first reply's `context` back, as the request's field documents."""
    engine = LocalEngine()
    if not engine.check_ollama_available():
        return None
    engine.list_models()
    request = LocalInferenceRequest(prompt="Write a function to calculate fibonacci",
                                    model=model_name)
    first = engine.generate(request)
    print(f"Generated {first.tokens_generated} tokens in {first.latency_ms:.0f}ms")
    request.prompt = "Now make it iterative"
    request.context = first.context
    second = engine.generate(request)
    return str(second.to_dict()["text"])
