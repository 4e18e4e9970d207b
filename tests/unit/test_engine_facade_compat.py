"""The earlier engine's programs run unchanged on `LocalEngine` (issue 20).

`earlier_engine_programs` re-creates the earlier demo's four scenarios and the code that
called the earlier engine; here they run against the fake Ollama over real HTTP, online,
offline and with nothing installed, and must behave as they did, with honest numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aethel_lsp.engine import facade
from aethel_lsp.engine.facade import (
    LocalEngine,
    LocalInferenceRequest,
    ModelNotFoundError,
    OllamaModel,
    OllamaNotAvailableError,
    get_local_engine,
)
from aethel_lsp.engine.openai_compat import OpenAIEngine
from tests.fakes.ollama import FakeOllama, Fault, Reply
from tests.unit import earlier_engine_programs as programs

CODER = "qwen2.5-coder:1.5b"  # the fake's newest model, so the demo's `models[0]`
CHAT = "llama3.2:latest"
GIB = 1024**3


@pytest.fixture
def fake(isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    """The fake Ollama where `LocalEngine()` looks (OLLAMA_HOST); usage goes to a tmp dir."""
    with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


# -- the demo's four scenarios ---------------------------------------------------------


def test_the_demo_runs_online_with_the_engines_own_numbers(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.enqueue(Reply(tokens=["def ", "is_prime(n):", " ..."], eval_count=3),
                 Reply(tokens=["Blocks ", "chained ", "by ", "hashes."]),
                 Reply(text="contract Transfer { ensure total == old(total) }", eval_count=9))
    programs.run_demo()
    out = capsys.readouterr().out

    assert "Error" not in out
    assert f"Model: {CODER}" in out
    assert "def is_prime(n): ..." in out
    assert "Tokens generated: 3" in out  # the engine's count, not len(text) // 4
    assert out.count("Throughput: 50.0 tokens/s") == 2  # eval_count / eval_duration
    assert "Blocks chained by hashes.\nStreaming done." in out
    assert "size: 0.92 GB" in out and "parameters: ~1.5B" in out and "family: qwen2" in out
    assert "Coding: " in out and "Models installed: 4" in out
    total = sum(m.size for m in fake.models) / GIB
    assert f"Total size: {total:.2f} GB" in out
    assert "contract Transfer" in out and "Tokens generated: 9" in out

    first, streamed, fourth = fake.bodies("/api/generate")
    assert first["options"] == {"temperature": 0.7, "num_predict": 300}
    assert streamed["options"] == {"temperature": 0.8, "num_predict": 200}
    assert fourth["options"] == {"temperature": 0.5, "num_predict": 400}
    assert fourth["system"] == programs.AETHEL_SYSTEM and fourth["model"] == CODER


def test_the_demo_offline_lands_in_its_except_clauses(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.go_offline()
    programs.run_demo()
    out = capsys.readouterr().out
    assert out.count(f"Error: Ollama is not running at {fake.url}") == 4
    assert "ollama serve" in out


def test_the_demo_with_no_model_installed(
    isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeOllama(models=[]) as empty:
        monkeypatch.setenv("OLLAMA_HOST", empty.url)
        programs.run_demo()
    out = capsys.readouterr().out
    assert "Error" not in out
    assert out.count("No model installed") == 3 and "Models installed: 0" in out


# -- the code that called the earlier engine ---------------------------------------------


def test_the_mesh_checks_availability_with_is_model_installed(fake: FakeOllama) -> None:
    assert programs.MeshVerifier(CODER).is_available() is True
    assert programs.MeshVerifier("llama3.2").is_available() is True  # = llama3.2:latest
    assert programs.MeshVerifier().is_available() is False  # deepseek-coder:7b: not here
    fake.go_offline()
    assert programs.MeshVerifier(CODER).is_available() is False  # no AttributeError, no raise


def test_the_mesh_verifies_and_falls_back_as_before(fake: FakeOllama) -> None:
    mesh = programs.MeshVerifier(CODER)
    fake.enqueue(Reply(text="VALID: a small amount between known parties"))
    verdict = mesh.verify({"sender": "ana", "receiver": "rui", "amount": 10})
    assert verdict.verified and verdict.reasoning.startswith("VALID")
    assert verdict.model_used == CODER and verdict.latency_ms > 0
    assert fake.bodies("/api/generate")[-1]["options"] == {"temperature": 0.3,
                                                          "num_predict": 300}

    fake.inject(Fault.not_found(f"model '{CODER}' not found"), path="/api/generate")
    gone = mesh.verify({"sender": "ana", "receiver": "rui", "amount": 10})
    assert gone.flags == ["ai_error"] and "ollama pull" in gone.reasoning

    fake.inject(Fault.server_error("model runner crashed"), path="/api/generate")
    crashed = mesh.verify({"sender": "ana", "receiver": "rui", "amount": 10})
    assert crashed.flags == ["ai_error"] and "model runner crashed" in crashed.reasoning

    assert programs.MeshVerifier().verify({"sender": "a", "receiver": "b", "amount": 1}).flags \
        == ["ai_unavailable"]


def test_missing_model_and_offline_are_told_apart(fake: FakeOllama) -> None:
    with LocalEngine() as engine:
        with pytest.raises(ModelNotFoundError, match=r"ollama pull missing:1b"):
            engine.generate(LocalInferenceRequest("x", "missing:1b"))
        fake.go_offline()
        # The earlier engine said ModelNotFoundError here (its installed-check failed first).
        with pytest.raises(OllamaNotAvailableError, match="not running"):
            engine.generate(LocalInferenceRequest("x", CODER))
        assert engine.check_ollama_available() is False  # the earlier one raised


def test_the_trainer_reads_the_real_size_of_its_base_model(fake: FakeOllama) -> None:
    with LocalEngine() as engine:
        assert programs.base_model_line(engine, CODER) == "Base model found (0.9GB)"
        chat = engine.get_model_info("llama3.2")
        assert chat.size_gb == pytest.approx(2_019_393_189 / GIB)  # 1.88 GiB, not 0.0
        assert chat.parameters == 3_212_749_888 and chat.context_length == 131_072
        assert chat.installed and chat.family == "llama"
        with pytest.raises(Exception, match=r"Base model not found: .*ollama pull"):
            programs.base_model_line(engine, "deepseek-coder:33b")


def test_the_docstring_example_continues_with_context(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.enqueue(Reply(text="def fib(n): ...", eval_count=4, prompt_eval_count=6),
                 Reply(text="def fib(n): a, b = 0, 1"))
    assert programs.docstring_example(CHAT) == "def fib(n): a, b = 0, 1"
    assert "Generated 4 tokens in " in capsys.readouterr().out
    first, second = fake.bodies("/api/generate")
    assert "context" not in first
    assert second["context"] == list(range(1, 11))  # the fake's context: prompt + reply tokens
    assert second["prompt"] == "Now make it iterative"

    fake.go_offline()
    assert programs.docstring_example(CHAT) is None


# -- the earlier names and shapes ------------------------------------------------------


def test_get_local_engine_is_one_engine_until_closed(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facade, "_local_engine", None)
    engine = get_local_engine()
    try:
        assert get_local_engine() is engine and engine.ollama_host == fake.url
        engine.close()
        again = get_local_engine()
        assert again is not engine and again.check_ollama_available() is True
    finally:
        get_local_engine().close()


def test_requests_models_and_responses_are_the_earlier_mutable_dataclasses(
    fake: FakeOllama,
) -> None:
    request = LocalInferenceRequest("p", CHAT, 0.7, 64, False, None, [5, 6])
    request.temperature = 0.1
    request.system = "Be brief."
    model = OllamaModel("m")
    assert (model.size_gb, model.parameters, model.context_length, model.installed,
            model.family) == (0.0, 0, 4096, False, "unknown")
    model.installed = True
    with LocalEngine() as engine:
        fake.enqueue(Reply(text="ok"))
        response = engine.generate(request)
        response.text = "edited"
        body = fake.bodies("/api/generate")[-1]
        assert body["context"] == [5, 6] and body["system"] == "Be brief."
        assert body["options"] == {"temperature": 0.1, "num_predict": 64}
        as_dict = response.to_dict()
        assert list(as_dict)[:7] == ["text", "model", "tokens_generated", "latency_ms",
                                     "tokens_per_second", "context", "done"]
        assert as_dict["text"] == "edited" and isinstance(as_dict["context"], list)
        assert isinstance(response.tokens_per_second, float)


# -- the OpenAI-compatible backend, whose servers may send no usage ------------------------


def test_openai_backend_without_usage_still_gives_numbers(
    fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalEngine(engine=OpenAIEngine(fake.url), record_usage=False) as engine:
        fake.enqueue(Reply(tokens=["fine", " thanks"], openai_usage=False))
        response = engine.generate(LocalInferenceRequest("hi", CHAT, context=[1, 2]))
        programs.print_metrics(response)  # the demo's f"{...:.1f}": a TypeError before
        assert "Throughput: 0.0 tokens/s" in capsys.readouterr().out
        assert response.text == "fine thanks"
        assert (response.tokens_generated, response.tokens_per_second) == (0, 0.0)
        assert isinstance(response.latency_ms, float) and response.latency_ms > 0
        assert response.metrics is not None and response.metrics.tokens_generated is None
        assert response.context == []  # no such thing in the OpenAI API
        assert "context" not in fake.bodies("/v1/chat/completions")[-1]

        fake.enqueue(Reply(tokens=["a", "b", "c"]))
        counted = engine.generate(LocalInferenceRequest("hi", CHAT))
        assert counted.tokens_generated == 3 and counted.tokens_per_second > 0
        assert engine._is_model_installed(CHAT) and not engine._is_model_installed("nope")
