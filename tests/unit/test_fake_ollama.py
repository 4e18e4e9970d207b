"""The fake Ollama itself, checked with raw httpx against the API fixtures.

If the fake drifts from real Ollama, every other test in the suite tests the wrong thing,
so shapes are compared key-by-key with `tests/fixtures/ollama_api`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.ollama import BUSY_MESSAGE, FakeOllama, Fault, Reply

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ollama_api"
ROOT = Path(__file__).resolve().parents[2]


def fixture(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())


def fixture_lines(rel: str) -> list[Any]:
    return [json.loads(line) for line in (FIXTURES / rel).read_text().splitlines() if line]


@pytest.fixture
def client(fake_ollama: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_ollama.url, timeout=5) as c:
        yield c


def ndjson(response: httpx.Response) -> list[Any]:
    lines = response.text.split("\n")
    assert lines[-1] == "", "every NDJSON line ends with \\n"
    assert all(lines[:-1]), "no blank lines"
    return [json.loads(line) for line in lines[:-1]]


# -- basics -----------------------------------------------------------------------------
def test_root_get_and_head(client: httpx.Client) -> None:
    r = client.get("/")
    assert (r.status_code, r.text) == (
        200,
        (FIXTURES / "derived_from_code/root.txt").read_text().strip(),
    )
    assert r.headers["content-type"].startswith("text/plain")
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""


def test_version_tags_show_ps_shapes(client: httpx.Client) -> None:
    version = client.get("/api/version")
    assert version.headers["content-type"] == "application/json; charset=utf-8"
    assert set(version.json()) == set(fixture("native/version/response.json"))

    tags = client.get("/api/tags").json()
    expected_entry = fixture("native/tags/response.json")["models"][0]
    names = [m["name"] for m in tags["models"]]
    assert {"qwen2.5-coder:1.5b", "llama3.2:latest", "nomic-embed-text:latest", "qwen3:4b"} <= set(
        names
    )
    for entry in tags["models"]:
        assert set(entry) == set(expected_entry)
        assert set(entry["details"]) == set(expected_entry["details"])

    show = client.post("/api/show", json={"model": "qwen2.5-coder:1.5b"}).json()
    assert set(fixture("native/show/response.normalized.json")) <= set(show)
    info = show["model_info"]
    assert info["general.architecture"] == "qwen2"
    assert info["general.parameter_count"] == 1_543_714_304
    assert info["qwen2.context_length"] == 32_768
    assert "insert" in show["capabilities"]
    assert (
        "insert" not in client.post("/api/show", json={"model": "llama3.2"}).json()["capabilities"]
    )

    assert client.get("/api/ps").json() == {"models": []}
    client.post("/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False})
    ps = client.get("/api/ps").json()["models"]
    assert [m["name"] for m in ps] == ["llama3.2:latest"]
    assert set(fixture("native/ps/response.json")["models"][0]) <= set(ps[0])


def test_generate_stream_matches_fixture_shape(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "Why is the sky blue?"})
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(r)
    chunk_keys = set(fixture("native/generate/01_streaming.response_chunk.json"))
    final_keys = set(fixture("native/generate/01_streaming.response_final.json")) | {"done_reason"}
    for line in lines[:-1]:
        assert set(line) == chunk_keys and line["done"] is False
    assert set(lines[-1]) == final_keys
    assert lines[-1]["done_reason"] == "stop"
    text = "".join(line["response"] for line in lines)
    assert text == "The sky is blue because of Rayleigh scattering."


def test_generate_whole_and_chat(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "x", "stream": False})
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert set(r.json()) == set(fixture("native/generate/03_suffix_fim.response.json"))

    chat = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    )
    lines = ndjson(chat)
    assert set(lines[0]) == set(fixture("native/chat/01_streaming.response_chunk.json"))
    assert set(lines[-1]) == set(fixture("native/chat/01_streaming.response_final.json")) | {
        "done_reason"
    }
    assert lines[-1]["message"] == {"role": "assistant", "content": ""}


def test_scripted_metrics_are_reported_exactly(
    client: httpx.Client, fake_ollama: FakeOllama
) -> None:
    fake_ollama.enqueue(
        Reply(
            tokens=["a", "b", "c"],
            eval_count=120,
            eval_duration_ns=2_000_000_000,
            prompt_eval_count=33,
            load_duration_ns=7_000_000,
        )
    )
    final = ndjson(client.post("/api/generate", json={"model": "llama3.2", "prompt": "p"}))[-1]
    assert final["eval_count"] == 120
    assert final["eval_count"] / final["eval_duration"] * 1e9 == pytest.approx(60.0)
    assert final["prompt_eval_count"] == 33 and final["load_duration"] == 7_000_000


def test_reply_queue_then_model_default(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="first"), Reply(text="second"))
    body = {"model": "llama3.2", "prompt": "p", "stream": False}
    assert client.post("/api/generate", json=body).json()["response"] == "first"
    assert client.post("/api/generate", json=body).json()["response"] == "second"
    fake_ollama.set_reply("llama3.2", Reply(text="always"))
    assert client.post("/api/generate", json=body).json()["response"] == "always"


def test_num_predict_and_stop(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="one two three four"))
    body = {"model": "llama3.2", "prompt": "p", "stream": False, "options": {"num_predict": 2}}
    out = client.post("/api/generate", json=body).json()
    assert (out["response"], out["done_reason"]) == ("one two", "length")
    fake_ollama.enqueue(Reply(text="a = 1\n\nb = 2"))
    body["options"] = {"stop": ["\n\n"]}
    out = client.post("/api/generate", json=body).json()
    assert (out["response"], out["done_reason"]) == ("a = 1", "stop")


def test_go_style_html_escaping(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(text="a < b && c > d"))
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "p", "stream": False})
    assert "\\u003c" in r.text and "\\u0026\\u0026" in r.text
    assert r.json()["response"] == "a < b && c > d"


# -- capabilities and errors ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "status", "fixture_file"),
    [
        ("/api/generate", {"model": "llama3.2", "prompt": "x"}, 404, None),
        ("/api/generate", {}, 404, "errors_from_tests/generate_missing_model.404.json"),
        ("/api/chat", {"messages": []}, 400, "errors_from_tests/chat_missing_model.400.json"),
        (
            "/api/show",
            {"model": "llama3.2"},
            404,
            "derived_from_code/show_model_not_found.404.json",
        ),
        (
            "/api/embed",
            {"model": "all-minilm", "input": "x"},
            404,
            "derived_from_code/embed_model_not_found.404.json",
        ),
    ],
)
def test_not_found_texts(
    path: str, body: dict[str, Any], status: int, fixture_file: str | None
) -> None:
    with FakeOllama(models=["qwen2.5-coder:1.5b"]) as fake, httpx.Client(base_url=fake.url) as c:
        r = c.post(path, json=body)
    assert r.status_code == status
    if fixture_file:
        assert r.json() == fixture(fixture_file)
    else:
        assert r.json() == fixture("derived_from_code/generate_model_not_found.404.json")


def test_capability_errors(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "a", "suffix": "b"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "registry.ollama.ai/library/llama3.2:latest does not support insert"
    }
    r = client.post(
        "/api/generate", json={"model": "qwen2.5-coder:1.5b", "prompt": "a", "suffix": "b"}
    )
    assert r.status_code == 200
    r = client.post("/api/generate", json={"model": "nomic-embed-text", "prompt": "a"})
    assert (r.status_code, r.json()) == (
        400,
        {"error": '"nomic-embed-text" does not support generate'},
    )
    r = client.post("/api/chat", json={"model": "nomic-embed-text", "messages": [{"role": "user"}]})
    assert r.json() == {"error": '"nomic-embed-text" does not support chat'}
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "a", "think": True})
    assert (r.status_code, r.json()) == (400, {"error": '"llama3.2" does not support thinking'})
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "a", "think": "foo"})
    assert r.json() == {"error": fixture("derived_from_code/invalid_think_value.400.json")["error"]}


def test_thinking_default_on_and_off(client: httpx.Client) -> None:
    on = ndjson(client.post("/api/generate", json={"model": "qwen3:4b", "prompt": "count"}))
    assert on[0]["thinking"] and on[0]["response"] == ""
    off = ndjson(
        client.post("/api/generate", json={"model": "qwen3:4b", "prompt": "c", "think": False})
    )
    assert all("thinking" not in line for line in off)


def test_load_and_unload_replies(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2"})
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json()["done_reason"] == "load" and r.json()["response"] == ""
    r = client.post("/api/chat", json={"model": "llama3.2", "messages": [], "keep_alive": 0})
    assert set(r.json()) == set(fixture("native/chat/12_unload.response.json"))
    assert r.json()["done_reason"] == "unload"


def test_request_errors(client: httpx.Client) -> None:
    r = client.post("/api/generate", content=b"")
    assert (r.status_code, r.json()) == (
        400,
        fixture("errors_from_tests/missing_request_body.400.json"),
    )
    r = client.post("/api/generate", content=b'{"model": 1}')
    assert r.json() == fixture("derived_from_code/bad_json_field_type.400.json")
    r = client.post(
        "/api/generate",
        json={"model": "llama3.2", "prompt": "x", "options": {"temperature": "hot"}},
    )
    assert r.status_code == 500
    assert r.json() == fixture("derived_from_code/invalid_option_type.500.json")
    r = client.get("/nope")
    assert (r.status_code, r.text) == (404, "404 page not found")
    r = client.get("/api/generate")
    assert (r.status_code, r.text) == (405, "405 method not allowed")


def test_embed(client: httpx.Client) -> None:
    r = client.post("/api/embed", json={"model": "nomic-embed-text", "input": ["a", "b"]}).json()
    assert set(r) == set(fixture("native/embed/01_single.response.json"))
    assert len(r["embeddings"]) == 2 and len(r["embeddings"][0]) == 768
    assert abs(sum(v * v for v in r["embeddings"][0]) - 1.0) < 1e-6


# -- pull ---------------------------------------------------------------------------------------
def test_pull_progress_then_installed(client: httpx.Client) -> None:
    lines = ndjson(client.post("/api/pull", json={"model": "mistral:7b"}))
    assert lines[0] == {"status": "pulling manifest"}
    progress = [line for line in lines if "digest" in line]
    assert progress and all(
        line["status"] == f"pulling {line['digest'][7:19]}" for line in progress
    )
    assert [line["status"] for line in lines[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert names[0] == "mistral:7b"


def test_pull_unknown_model(client: httpx.Client) -> None:
    r = client.post("/api/pull", json={"model": "no-such-model"})
    assert r.status_code == 200
    assert ndjson(r) == fixture_lines("derived_from_code/pull_not_found_stream.ndjson")
    r = client.post("/api/pull", json={"model": "no-such-model", "stream": False})
    assert (r.status_code, r.json()) == (
        500,
        fixture("derived_from_code/pull_not_found_no_stream.500.json"),
    )


# -- faults -------------------------------------------------------------------------------------
def test_status_faults_and_times(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.busy(), path="/api/generate", times=2)
    body = {"model": "llama3.2", "prompt": "x", "stream": False}
    for _ in range(2):
        r = client.post("/api/generate", json=body)
        assert (r.status_code, r.json()) == (503, {"error": BUSY_MESSAGE})
    assert client.post("/api/generate", json=body).status_code == 200
    fake_ollama.inject(Fault.server_error(), path="/api/tags")
    assert client.get("/api/tags").status_code == 500
    assert client.get("/api/tags").status_code == 200


def test_error_line_mid_stream(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.error_line(after_tokens=2), path="/api/generate")
    r = client.post("/api/generate", json={"model": "llama3.2", "prompt": "x"})
    lines = ndjson(r)
    assert r.status_code == 200 and len(lines) == 3
    assert lines[-1] == {"error": "an error was encountered while running the model"}


def test_malformed_line(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.malformed(after_tokens=1), path="/api/chat")
    r = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.text.split("\n")[1] == "this is not json"


def test_disconnect_and_truncate(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.disconnect(after_tokens=2), path="/api/generate")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/api/generate", json={"model": "llama3.2", "prompt": "x"})
    fake_ollama.inject(Fault.truncate(after_tokens=2), path="/api/generate")
    lines = ndjson(client.post("/api/generate", json={"model": "llama3.2", "prompt": "x"}))
    assert len(lines) == 2 and not any(line["done"] for line in lines)


def test_stall_before_first_byte(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.inject(Fault.stall(5.0), path="/api/generate")
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/generate", json={"model": "llama3.2", "prompt": "x"}, timeout=0.3)
    stream = fake_ollama.wait_for_stream_end("/api/generate", timeout=3)
    assert stream.closed_early


def test_offline_refuses_then_recovers(fake_ollama: FakeOllama) -> None:
    with fake_ollama.offline(), pytest.raises(httpx.ConnectError):
        httpx.get(fake_ollama.url + "/api/version", timeout=2)
    assert httpx.get(fake_ollama.url + "/api/version", timeout=2).status_code == 200


# -- recording ----------------------------------------------------------------------------------
def test_records_requests_and_early_close(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(tokens=["tok "] * 100, token_delay=0.05))
    with (
        httpx.Client(base_url=fake_ollama.url) as c,
        c.stream(
            "POST",
            "/api/generate",
            json={"model": "llama3.2", "prompt": "hello", "options": {"seed": 1}},
        ) as r,
    ):
        for i, _ in enumerate(r.iter_lines()):
            if i == 2:
                break
        closed_by_client = time.monotonic()
    stream = fake_ollama.wait_for_stream_end("/api/generate")
    assert stream.closed_early and not stream.completed
    assert stream.closed_at is not None
    assert stream.closed_at - closed_by_client < 0.2  # generous; typically ~1-5 ms
    assert stream.tokens_sent < 10
    req = fake_ollama.wait_for_request("/api/generate")
    assert req.json == {"model": "llama3.2", "prompt": "hello", "options": {"seed": 1}}
    assert fake_ollama.generate_requests() == [req.json]


def test_completed_stream_is_not_early(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    client.post("/api/generate", json={"model": "llama3.2", "prompt": "x"})
    stream = fake_ollama.wait_for_stream_end("/api/generate")
    assert stream.completed and not stream.closed_early
    assert stream.tokens_sent == 8 and len(stream.lines) == 9  # 8 tokens + the final line


# -- OpenAI-compatible --------------------------------------------------------------------------
def sse_frames(text: str) -> list[str]:
    assert text.endswith("\n\n")
    frames = text[:-2].split("\n\n")
    assert all(f.startswith("data: ") for f in frames)
    return [f[len("data: ") :] for f in frames]


def test_openai_models_and_errors(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    entry = fixture("derived_from_code/openai_models.json")["data"][0]
    assert models["object"] == "list" and set(models["data"][0]) == set(entry)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 404
    assert set(r.json()["error"]) == set(
        fixture("derived_from_code/openai_model_not_found.404.json")["error"]
    )
    r = client.post("/v1/chat/completions", json={"model": "llama3.2", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_openai_chat_stream_with_usage(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Reply(tokens=["Hello", "!"], prompt_eval_count=11))
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "llama3.2",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.headers["content-type"] == "text/event-stream"
    frames = sse_frames(r.text)
    expected = (
        FIXTURES / "derived_from_code/openai_chat_completions_stream_include_usage.sse"
    ).read_text()
    want = [json.loads(f) for f in sse_frames(expected.rstrip("\n") + "\n\n")[:-1]]
    assert frames[-1] == "[DONE]"
    got = [json.loads(f) for f in frames[:-1]]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert set(g) == set(w)
        assert g["choices"] == [] or set(g["choices"][0]) == set(w["choices"][0])
    assert got[-1]["usage"] == want[-1]["usage"]
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}


def test_openai_whole_and_completions(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]},
    )
    assert set(r.json()) == set(fixture("derived_from_code/openai_chat_completion.json"))
    r = client.post(
        "/v1/completions", json={"model": "qwen2.5-coder:1.5b", "prompt": "def", "stream": True}
    )
    frames = sse_frames(r.text)
    first = json.loads(frames[0])
    expected = (FIXTURES / "derived_from_code/openai_completions_stream.sse").read_text()
    assert list(first) == list(json.loads(sse_frames(expected.rstrip("\n") + "\n\n")[0]))
    assert json.loads(frames[-2])["choices"][0]["finish_reason"] == "stop"


def test_openai_api_key() -> None:
    with FakeOllama(api_key="sekrit") as fake, httpx.Client(base_url=fake.url) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer sekrit"}).status_code == 200


# -- standalone ---------------------------------------------------------------------------------
def test_standalone_module_serves(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", str(port), "--models", "llama3.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
        tags = httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["llama3.2:latest"]
        # a whole generation, as an editor pointed at the standalone fake would ask
        reply = httpx.post(
            f"http://127.0.0.1:{port}/api/generate",
            json={"model": "llama3.2", "prompt": "hi", "stream": False, "keep_alive": "5m"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["done"] is True
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_standalone_exec_runs_a_command_against_the_fake() -> None:
    code = (
        "import os, urllib.request; "
        "print(urllib.request.urlopen(os.environ['OLLAMA_HOST'] + '/api/version').read().decode())"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fakes.ollama",
            "--port",
            "0",
            "--exec",
            sys.executable,
            "-c",
            code,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert '{"version":"0.33.0"}' in result.stdout


# -- queueing (OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE) -------------------------------------------
def test_parallel_one_queues_the_second_request() -> None:
    with FakeOllama(parallel=1, max_queue=1) as fake, httpx.Client(base_url=fake.url) as c:
        # The first stream would last 20 s: it holds the only slot until the test closes it,
        # however slowly a loaded CI box gets through the steps in between.
        fake.enqueue(Reply(tokens=["a"] * 400, token_delay=0.05), Reply(text="second"))
        body = {"model": "llama3.2", "prompt": "x"}
        results: list[httpx.Response] = []
        with httpx.Client(base_url=fake.url, timeout=30) as c2:
            t = threading.Thread(target=lambda: results.append(c2.post("/api/generate", json=body)))
            with c.stream("POST", "/api/generate", json=body) as first:
                lines = first.iter_lines()
                next(lines)  # the first request holds the only slot
                t.start()
                deadline = time.monotonic() + 10
                while fake.queued("llama3.2") < 1:  # the second one waits in the queue
                    assert time.monotonic() < deadline, "the second request was never queued"
                    time.sleep(0.01)
                third = httpx.post(fake.url + "/api/generate", json=body)  # queue (1) is full
                assert (third.status_code, third.json()) == (503, {"error": BUSY_MESSAGE})
                time.sleep(0.1)  # only lengthens the queued wait measured below
            # leaving the block closes the first stream: its slot goes to the queued request
            t.join(10)
        assert ndjson(results[0])[0]["response"] == "second"
        held = fake.wait_for_stream_end("/api/generate", index=0)
        queued = fake.wait_for_stream_end("/api/generate", index=1)
        assert held.closed_early and queued.completed
        assert queued.queued_s > 0.1  # waited for the first stream to end


def test_a_client_leaving_the_queue_is_recorded() -> None:
    with FakeOllama(parallel=1) as fake, httpx.Client(base_url=fake.url) as c:
        fake.enqueue(Reply(tokens=["a"] * 40, token_delay=0.05))
        body = {"model": "llama3.2", "prompt": "x"}
        with c.stream("POST", "/api/generate", json=body) as first:
            lines = first.iter_lines()  # keep a reference: a collected iterator closes it
            next(lines)
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(fake.url + "/api/generate", json=body, timeout=0.3)
            queued = fake.wait_for_stream_end("/api/generate", index=1)
            assert queued.closed_early and queued.tokens_sent == 0


def test_stop_then_start_again_on_the_same_port() -> None:
    fake = FakeOllama()
    url = fake.start()
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/version", timeout=2)
    assert fake.start() == url
    try:
        assert httpx.get(url + "/api/version", timeout=2).status_code == 200
    finally:
        fake.stop()
