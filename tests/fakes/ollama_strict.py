"""A second, deliberately independent Ollama emulator: strict where real Ollama is strict.

Written from the API reference and the fixtures in `tests/fixtures/ollama_api/` only,
without looking at `tests/fakes/ollama.py`, so that it does not share that fake's
assumptions.  It exists to catch client code that works against our own fake but not
against a real Ollama server (v0.33), so it reproduces the details a lenient fake skips:

* Go's JSON: struct key order, `omitempty` (zero metrics and empty `thinking` vanish,
  `response` never does), HTML-safe escapes (`<` -> `\\u003c`, U+2028/9 escaped), raw
  UTF-8 otherwise (so U+0085 and emoji travel unescaped), compact separators.
* `created_at` in UTC with nanoseconds, trailing zeros trimmed (`time.RFC3339Nano`);
  `modified_at` / `expires_at` with a local offset such as `-07:00`.
* Streams in chunked transfer encoding with a configurable split plan: one line per chunk,
  a JSON line split across two chunks (and TCP writes), several lines in one chunk, or
  one byte per write.
* Errors before the first byte use the real status with a JSON body even for streamed
  requests; errors after the stream started are an `{"error": ...}` line with status 200,
  then the body ends without a `done` line.
* The server defaults `think` to true for models with the `thinking` capability.
* Validation like the Go server: empty body, bad JSON, wrong option types (500), `stop`
  as a string (500), bad `keep_alive`, bad `think`, `raw` + `system`, missing model (404
  on generate, 400 on chat), unknown model (404 texts differ per endpoint), `suffix` on a
  model without `insert` (400 with the fully qualified name).
* Plain-text `404 page not found` / `405 method not allowed`, `HEAD`, a `403` for a
  non-local `Host` header, `503` busy (two spaces), `499`.

Every request is recorded, and every stream records how many lines it wrote and whether
(and when) the client closed the connection before the end.

Run standalone: `python -m tests.fakes.ollama_strict --port 11434`.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Literal

JsonObj = dict[str, Any]
SplitMode = Literal["line", "split", "packed", "bytewise"]
Fault = Literal[
    "none",
    "midstream_error",  # tokens, then {"error": ...} with status 200, body ends cleanly
    "error_first",  # status `error_status` + {"error": error_text} before any byte
    "malformed",  # tokens, then a line that is not JSON
    "truncate",  # tokens, then the body ends cleanly without a done line
    "disconnect",  # tokens, then half a chunk and the socket is closed
    "stall",  # tokens, then nothing (connection kept open) for `stall_s`
    "stall_first",  # headers, then nothing for `stall_s`
    "no_headers",  # accept the request, send nothing for `stall_s`
]

BUSY_TEXT = "server busy, please try again.  maximum pending requests exceeded"
VERSION = "0.33.0"
LOCAL_TZ = timezone(timedelta(hours=-7))

# -- Go-compatible JSON ---------------------------------------------------------------


def go_json(value: Any) -> str:
    """`json.Marshal`: compact, raw UTF-8, HTML-safe escapes, U+2028/U+2029 escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Outside strings JSON has none of these characters, so a plain replace is exact.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def rfc3339_nano(ns: int | None = None, tz: timezone = timezone.utc) -> str:
    """Go's `time.RFC3339Nano`: nanoseconds with trailing zeros trimmed, `Z` for UTC."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{frac:09d}".rstrip("0")
    if fraction:
        stamp += "." + fraction
    offset = tz.utcoffset(None) or timedelta(0)
    if offset == timedelta(0):
        return stamp + "Z"
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{stamp}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def omit_empty(pairs: list[tuple[str, Any]], always: tuple[str, ...] = ()) -> JsonObj:
    """Go `omitempty`: drop "", 0, False, None, empty lists/maps (keys in `always` stay)."""
    out: JsonObj = {}
    for key, value in pairs:
        if key in always or not _is_zero(value):
            out[key] = value
    return out


def _is_zero(value: Any) -> bool:
    """Go's zero values as `omitempty` sees them."""
    if value is None or value is False or value == "" or value == 0:
        return True
    return isinstance(value, (list, dict)) and not value


# -- models ---------------------------------------------------------------------------


@dataclass
class StrictModel:
    """One installed model, with the facts `/api/tags`, `/api/show` and `/api/ps` report."""

    name: str  # normalized "model:tag" (namespace kept, registry host dropped)
    arch: str
    family: str
    parameter_size: str
    quantization: str
    capabilities: tuple[str, ...]
    parameter_count: int | None
    context_length: int | None
    size: int
    block_count: int = 28
    remote_host: str = ""
    remote_model: str = ""
    loaded: bool = False

    @property
    def digest(self) -> str:
        seed = (self.name * 64).encode().hex()
        return (seed * 2)[:64]

    @property
    def fully_qualified(self) -> str:
        """`registry.ollama.ai/library/name:tag` as the capability errors print it."""
        base, tag = self.name.rsplit(":", 1)
        if "/" not in base:
            base = "library/" + base
        if base.count("/") < 2:
            base = "registry.ollama.ai/" + base
        return f"{base}:{tag}"

    def details(self) -> JsonObj:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def model_info(self) -> JsonObj:
        if self.remote_host:
            return {
                "general.architecture": self.arch,
                "general.basename": self.name.split(":")[0],
                f"{self.arch}.context_length": self.context_length,
                f"{self.arch}.embedding_length": 2880,
            }
        info: JsonObj = {"general.architecture": self.arch, "general.file_type": 15}
        if self.parameter_count is not None:
            info["general.parameter_count"] = self.parameter_count
        info["general.quantization_version"] = 2
        a = self.arch
        info.update({
            f"{a}.attention.head_count": 32,
            f"{a}.attention.head_count_kv": 8,
            f"{a}.attention.layer_norm_rms_epsilon": 1e-06,
            f"{a}.block_count": self.block_count,
        })
        if self.context_length is not None:
            info[f"{a}.context_length"] = self.context_length
        info.update({
            f"{a}.embedding_length": 4096,
            f"{a}.feed_forward_length": 14336,
            f"{a}.rope.dimension_count": 128,
            f"{a}.rope.freq_base": 1000000,
            f"{a}.vocab_size": 151936,
            "tokenizer.ggml.add_bos_token": False,
            "tokenizer.ggml.bos_token_id": 151643,
            "tokenizer.ggml.eos_token_id": 151645,
            "tokenizer.ggml.merges": [],
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.padding_token_id": 151643,
            "tokenizer.ggml.pre": "qwen2",
            "tokenizer.ggml.token_type": [],
            "tokenizer.ggml.tokens": [],
        })
        if "embedding" in self.capabilities:
            info[f"{a}.pooling_type"] = 1
        return info

    def tensors(self) -> list[JsonObj]:
        if self.remote_host:
            return []
        out: list[JsonObj] = [
            {"name": "token_embd.weight", "type": "Q4_K", "shape": [4096, 151936]}]
        for i in range(self.block_count):
            for part, shape in (("attn_k.weight", [4096, 1024]), ("attn_norm.weight", [4096]),
                                ("attn_output.weight", [4096, 4096]),
                                ("attn_q.weight", [4096, 4096]), ("attn_v.weight", [4096, 1024]),
                                ("ffn_down.weight", [14336, 4096]),
                                ("ffn_gate.weight", [4096, 14336]),
                                ("ffn_norm.weight", [4096]), ("ffn_up.weight", [4096, 14336])):
                out.append({"name": f"blk.{i}.{part}", "type": "Q4_K", "shape": shape})
        out.append({"name": "output_norm.weight", "type": "F32", "shape": [4096]})
        return out

    def template(self) -> str:
        if "insert" in self.capabilities:
            return ("{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}"
                    "<|fim_middle|>{{- else }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
                    "<|im_start|>assistant\n{{ end }}")
        return "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"


def default_models() -> list[StrictModel]:
    """A realistic store: FIM coder, plain chat model, thinking model, embedding-only model,
    a model whose GGUF lacks `general.parameter_count`, a namespaced one and a cloud one."""
    return [
        StrictModel("qwen2.5-coder:1.5b", "qwen2", "qwen2", "1.5B", "Q4_K_M",
                    ("completion", "tools", "insert"), 1543714304, 32768, 986061892,
                    loaded=True),
        StrictModel("llama3.2:latest", "llama", "llama", "3.2B", "Q4_K_M",
                    ("completion", "tools"), 3212749888, 131072, 2019393189),
        StrictModel("qwen3:8b", "qwen3", "qwen3", "8.2B", "Q4_K_M",
                    ("completion", "tools", "thinking"), 8190735360, 40960, 5225388164,
                    block_count=36),
        StrictModel("all-minilm:latest", "bert", "bert", "23M", "F16",
                    ("embedding",), 22565376, 512, 45960996, block_count=6),
        StrictModel("mystery:7b", "llama", "llama", "7B", "Q4_0",
                    ("completion",), None, None, 3825819519),
        StrictModel("someuser/aethel-coder:latest", "llama", "llama", "6.7B", "Q4_0",
                    ("completion",), 6738546688, 16384, 3825910662),
        StrictModel("gpt-oss:120b-cloud", "gptoss", "gptoss", "116.8B", "MXFP4",
                    ("completion", "tools", "thinking"), None, 131072, 384,
                    remote_host="https://ollama.com:443", remote_model="gpt-oss:120b"),
    ]


def normalize_name(name: str) -> str:
    """`llama3.2` -> `llama3.2:latest`; a leading `registry.ollama.ai/library/` is dropped."""
    if name.startswith("registry.ollama.ai/"):
        name = name[len("registry.ollama.ai/"):]
    if name.startswith("library/"):
        name = name[len("library/"):]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    return name


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")


# -- scripted behaviour ---------------------------------------------------------------


@dataclass
class Script:
    """What the next generation does. Unset counts default to realistic figures."""

    tokens: list[str] = field(default_factory=lambda: ["def ", "add", "(a, b):", "\n",
                                                       "    return a + b", "\n"])
    thinking: list[str] = field(default_factory=lambda: ["The user wants ", "an adder."])
    eval_count: int | None = None  # default: number of tokens
    eval_duration: int = 250_000_000
    prompt_eval_count: int = 26
    prompt_eval_duration: int = 130_079_000
    load_duration: int = 6_338_219
    total_duration: int | None = None
    done_reason: str = "stop"
    token_delay_s: float = 0.0
    split: SplitMode = "line"
    fault: Fault = "none"
    fault_after: int = 2  # tokens sent before a mid-stream fault
    error_status: int = 500
    error_text: str = "an error was encountered while running the model"
    stall_s: float = 5.0
    text_in_final: str = ""  # non-empty: final line carries text too (docs streaming.mdx)
    busy_times: int = 0  # answer 503 busy this many times first
    always_think: bool = False  # emit thinking even with think=false (gpt-oss ignores it)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: JsonObj | None
    raw: bytes


@dataclass
class StreamRecord:
    """One streamed response as the server saw it."""

    path: str
    model: str
    lines_written: int = 0
    finished: bool = False  # wrote the whole body
    client_closed: bool = False  # the client went away before the end
    started_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    closed_event: threading.Event = field(default_factory=threading.Event)


class ClientGone(Exception):
    """The client closed the connection while we were streaming."""


# -- the emulator ---------------------------------------------------------------------


class StrictOllama:
    """An Ollama v0.33 emulator on 127.0.0.1 (ephemeral port), one thread per connection."""

    def __init__(self, models: list[StrictModel] | None = None, *, port: int = 0,
                 tags_capabilities: bool = True, bind: str = "127.0.0.1") -> None:
        self.models = models if models is not None else default_models()
        self.tags_capabilities = tags_capabilities
        self.default_script = Script()
        self.scripts: list[Script] = []
        self.requests: list[Recorded] = []
        self.streams: list[StreamRecord] = []
        self.pull_fail: set[str] = set()
        self.pull_delay_s = 0.0  # between pull progress lines (a download takes time)
        # After this many progress lines the download stalls until the client hangs up (at
        # most `pull_hold_s`): a test that cancels a pull can never lose the race to a
        # download that finished first, however loaded the machine.
        self.pull_hold_after: int | None = None
        self.pull_hold_s = 30.0
        self.lock = threading.Lock()
        self._port = port
        self.bind = bind
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> str:
        server_class = _Server6 if ":" in self.bind else _Server
        server = server_class((self.bind, self._port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="strict-ollama", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StrictOllama:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    # scripting
    def script(self, **kwargs: Any) -> Script:
        """Queue the behaviour of the next generation (FIFO); unqueued ones use the default."""
        s = Script(**kwargs)
        with self.lock:
            self.scripts.append(s)
        return s

    def next_script(self) -> Script:
        with self.lock:
            return self.scripts.pop(0) if self.scripts else self.default_script

    def find(self, name: str) -> StrictModel | None:
        wanted = normalize_name(name).lower()
        for model in self.models:
            if model.name.lower() == wanted:
                return model
        return None

    def bodies(self, path: str) -> list[JsonObj]:
        return [r.body for r in self.requests if r.path == path and r.body is not None]

    def wait_closed(self, timeout: float = 5.0) -> StreamRecord:
        """The last stream, once the client has closed it (or the server ended it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.streams:
                last = self.streams[-1]
                if last.closed_event.wait(0.01):
                    return last
            else:
                time.sleep(0.01)
        raise AssertionError("no stream was closed in time")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: StrictOllama

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (cancel, timeout test) is normal here, not a traceback."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def emu(self) -> StrictOllama:
        return self.server.emulator

    # -- dispatch ---------------------------------------------------------------------

    ROUTES: ClassVar[dict[str, tuple[str, ...]]] = {
        "/": ("GET", "HEAD"),
        "/api/version": ("GET", "HEAD"),
        "/api/tags": ("GET", "HEAD"),
        "/api/ps": ("GET",),
        "/api/show": ("POST",),
        "/api/generate": ("POST",),
        "/api/chat": ("POST",),
        "/api/pull": ("POST",),
        "/api/delete": ("DELETE",),
        "/api/copy": ("POST",),
        "/api/embed": ("POST",),
        "/v1/models": ("GET",),
        "/v1/chat/completions": ("POST",),
        "/v1/completions": ("POST",),
    }

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        body: JsonObj | None = None
        try:
            parsed = json.loads(raw) if raw else None
            body = parsed if isinstance(parsed, dict) else None
        except ValueError:
            body = None
        with self.emu.lock:
            self.emu.requests.append(Recorded(method, path, dict(self.headers.items()), body, raw))
        if not self._host_allowed():
            self._send(403, b"", "text/plain")
            return
        if path.startswith("/v1/models/") and method == "GET":
            self._v1_model(path[len("/v1/models/"):])
            return
        methods = self.ROUTES.get(path)
        if methods is None:
            self._send(404, b"404 page not found", "text/plain")
            return
        if method not in methods:
            self._send(405, b"405 method not allowed", "text/plain")
            return
        head = method == "HEAD"
        if path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8", head=head)
        elif path == "/api/version":
            self._json(200, {"version": VERSION}, head=head)
        elif path == "/api/tags":
            self._json(200, self._tags(), head=head)
        elif path == "/api/ps":
            self._json(200, self._ps())
        elif path == "/v1/models":
            self._json(200, {"object": "list", "data": [self._v1_entry(m)
                                                          for m in self.emu.models]})
        elif path.startswith("/v1/"):
            self._v1_generate(raw, chat=path == "/v1/chat/completions")
        else:
            request = self._parse_request(raw, path)
            if request is None:
                return
            handler = {
                "/api/show": self._show, "/api/generate": self._generate, "/api/chat": self._chat,
                "/api/pull": self._pull, "/api/delete": self._delete, "/api/copy": self._copy,
                "/api/embed": self._embed,
            }[path]
            handler(request)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        return (name in ("", "localhost", "127.0.0.1", "::1", "0.0.0.0")
                or name.endswith((".localhost", ".local", ".internal"))
                or name.startswith(("10.", "192.168.", "127.")))

    def _parse_request(self, raw: bytes, path: str) -> JsonObj | None:
        """Go's `ShouldBindJSON`: empty body, syntax errors and wrong field types are 400."""
        if not raw.strip():
            self._error(400, "missing request body")
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            self._error(400, _go_syntax_error(raw.strip()))
            return None
        if not isinstance(data, dict):
            self._error(400, f"json: cannot unmarshal {_go_kind(data)} into Go value of type "
                        f"api.{_struct_for(path)}")
            return None
        for key, kind in (("model", str), ("name", str), ("prompt", str), ("suffix", str),
                          ("system", str), ("stream", bool), ("raw", bool)):
            if key in data and data[key] is not None and not isinstance(data[key], kind):
                gotype = "string" if kind is str else "bool"
                self._error(400, f"json: cannot unmarshal {_go_kind(data[key])} into Go struct "
                            f"field {_struct_for(path)}.{key} of type {gotype}")
                return None
        if "keep_alive" in data and not _keep_alive_ok(data["keep_alive"]):
            value = data["keep_alive"]
            if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", value):
                self._error(400, f'time: missing unit in duration "{value}"')
            elif isinstance(value, str):
                self._error(400, f'time: invalid duration "{value}"')
            else:
                self._error(400, f"Unsupported type: '{_go_kind(value)}'")
            return None
        return data

    # -- senders ----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, value: JsonObj, *, head: bool = False) -> None:
        self._send(status, go_json(value).encode(), "application/json; charset=utf-8", head=head)

    def _error(self, status: int, text: str) -> None:
        self._json(status, {"error": text})

    def _model_or_error(self, name: str, *, not_found: str) -> StrictModel | None:
        if name and not _NAME_RE.match(name):
            self._error(400, "invalid model name")
            return None
        model = self.emu.find(name) if name else None
        if model is None:
            self._error(404, not_found)
        return model

    # -- simple endpoints ---------------------------------------------------------------

    def _tags(self) -> JsonObj:
        entries = []
        for m in self.emu.models:
            entry: JsonObj = {"name": m.name, "model": m.name}
            if m.remote_model:
                entry["remote_model"] = m.remote_model
            if m.remote_host:
                entry["remote_host"] = m.remote_host
            entry.update({
                "modified_at": rfc3339_nano(1_746_889_608_639_712_648, LOCAL_TZ),
                "size": m.size,
                "digest": m.digest,
                "details": m.details(),
            })
            if self.emu.tags_capabilities:
                entry["capabilities"] = list(m.capabilities)
            entries.append(entry)
        return {"models": entries}

    def _ps(self) -> JsonObj:
        loaded = [m for m in self.emu.models if m.loaded]
        expires = time.time_ns() + 300 * 1_000_000_000
        return {"models": [{
            "name": m.name, "model": m.name, "size": m.size + 600_000_000, "digest": m.digest,
            "details": m.details(), "expires_at": rfc3339_nano(expires, LOCAL_TZ),
            "size_vram": m.size + 600_000_000, "context_length": 4096,
        } for m in loaded]}

    def _show(self, req: JsonObj) -> None:
        name = str(req.get("model") or req.get("name") or "")
        if not name:
            self._error(400, "model is required")
            return
        model = self._model_or_error(name, not_found=f"model '{normalize_name(name)}' not found")
        if model is None:
            return
        value = omit_empty([
            ("license", "Apache License 2.0 <https://www.apache.org/licenses/LICENSE-2.0> & more"),
            ("modelfile", f"# Modelfile generated by \"ollama show\"\nFROM {model.name}\n"),
            ("parameters", 'stop                           "<|im_end|>"'),
            ("template", model.template()),
            ("system", ""),
            ("details", model.details()),
            ("remote_model", model.remote_model),
            ("remote_host", model.remote_host),
            ("model_info", model.model_info()),
            ("tensors", model.tensors()),
            ("capabilities", list(model.capabilities)),
            ("modified_at", rfc3339_nano(1_746_889_608_639_712_648, LOCAL_TZ)),
        ], always=("model_info",))
        self._json(200, value)

    def _delete(self, req: JsonObj) -> None:
        name = str(req.get("model") or req.get("name") or "")
        model = self.emu.find(name) if name else None
        if model is None:
            self._error(404, f"model '{name}' not found")
            return
        self.emu.models.remove(model)
        self._send(200, b"", "text/plain; charset=utf-8")

    def _copy(self, req: JsonObj) -> None:
        source = str(req.get("source") or "")
        if self.emu.find(source) is None:
            self._error(404, f'model "{source}" not found')
            return
        self._send(200, b"", "text/plain; charset=utf-8")

    def _embed(self, req: JsonObj) -> None:
        name = str(req.get("model") or "")
        model = self.emu.find(name) if name else None
        if model is None:
            self._error(404, f'model "{name}" not found, try pulling it first')
            return
        self._json(200, {"model": name, "embeddings": [[0.6, 0.8]], "total_duration": 14143917,
                         "load_duration": 1019500, "prompt_eval_count": 8})

    # -- generation ---------------------------------------------------------------------

    def _check_common(self, req: JsonObj, model: StrictModel, requested: str) -> bool | None:
        """Options and `think` validation; returns whether to think (None = answered)."""
        error = _options_error(req.get("options"))
        if error is not None:
            self._error(500, error)
            return None
        think = req.get("think")
        if think is not None and not (isinstance(think, bool)
                                      or think in ("low", "medium", "high", "max")):
            shown = json.dumps(think) if isinstance(think, str) else str(think)
            self._error(400, f"invalid think value: {shown} (must be \"high\", \"medium\", "
                        "\"low\", \"max\", true, or false)")
            return None
        thinks = "thinking" in model.capabilities
        if think not in (None, False) and not thinks:
            self._error(400, f'"{requested}" does not support thinking')
            return None
        if think is None:
            return thinks  # the server's default for thinking models
        return think is not False

    def _generate(self, req: JsonObj) -> None:
        requested = str(req.get("model") or "")
        model = self._model_or_error(requested, not_found=f"model '{requested}' not found")
        if model is None:
            return
        if req.get("raw") and (req.get("template") or req.get("system") or req.get("context")):
            self._error(400, "raw mode does not support template, system, or context")
            return
        if "completion" not in model.capabilities:
            self._error(400, f'"{requested}" does not support generate')
            return
        if req.get("suffix") and "insert" not in model.capabilities:
            self._error(400, f"{model.fully_qualified} does not support insert")
            return
        think = self._check_common(req, model, requested)
        if think is None:
            return
        if not req.get("prompt"):  # the handler checks req.Prompt only, not the suffix
            self._load_reply(req, requested, chat=False)
            return
        self._run(req, requested, model, think=think, chat=False)

    def _chat(self, req: JsonObj) -> None:
        requested = str(req.get("model") or "")
        if not requested:
            self._error(400, "model is required")
            return
        model = self._model_or_error(requested, not_found=f"model '{requested}' not found")
        if model is None:
            return
        if "completion" not in model.capabilities:
            self._error(400, f'"{requested}" does not support chat')
            return
        messages = req.get("messages")
        if messages is not None and not isinstance(messages, list):
            self._error(400, "json: cannot unmarshal string into Go struct field "
                        "ChatRequest.messages of type []api.Message")
            return
        think = self._check_common(req, model, requested)
        if think is None:
            return
        if not messages:
            self._load_reply(req, requested, chat=True)
            return
        self._run(req, requested, model, think=think, chat=True)

    def _load_reply(self, req: JsonObj, requested: str, *, chat: bool) -> None:
        unload = req.get("keep_alive") in (0, "0", "0s")
        head: list[tuple[str, Any]] = [("model", requested), ("created_at", rfc3339_nano())]
        if chat:
            head.append(("message", {"role": "assistant", "content": ""}))
        else:
            head.append(("response", ""))
        head += [("done", True), ("done_reason", "unload" if unload else "load")]
        self._json(200, dict(head))

    def _line(self, requested: str, model: StrictModel, *, chat: bool, text: str = "",
              thinking: str = "", final: JsonObj | None = None) -> JsonObj:
        pairs: list[tuple[str, Any]] = [("model", requested), ("remote_model", model.remote_model),
                                        ("remote_host", model.remote_host),
                                        ("created_at", rfc3339_nano())]
        if chat:
            message = omit_empty([("role", "assistant"), ("content", text),
                                  ("thinking", thinking)], always=("role", "content"))
            pairs.append(("message", message))
        else:
            pairs += [("response", text), ("thinking", thinking)]
        pairs.append(("done", final is not None))
        if final is not None:
            pairs += list(final.items())
        return omit_empty(pairs, always=("model", "created_at", "response", "message", "done"))

    def _run(self, req: JsonObj, requested: str, model: StrictModel, *, think: bool,
             chat: bool) -> None:
        script = self.emu.next_script()
        if script.busy_times > 0:
            script.busy_times -= 1
            with self.emu.lock:
                self.emu.scripts.insert(0, script)  # the retry gets the same script
            self._error(503, BUSY_TEXT)
            return
        if script.fault == "error_first":
            self._error(script.error_status, script.error_text)
            return
        if script.fault == "no_headers":
            self._wait_for_close(None, script.stall_s)
            return
        model.loaded = True
        lines: list[JsonObj] = []
        if think or script.always_think:
            lines += [self._line(requested, model, chat=chat, thinking=t) for t in script.thinking]
        lines += [self._line(requested, model, chat=chat, text=t) for t in script.tokens]
        eval_count = script.eval_count if script.eval_count is not None else len(lines)
        total = script.total_duration or (script.load_duration + script.prompt_eval_duration
                                          + script.eval_duration + 1_234_567)
        final: JsonObj = {"done_reason": script.done_reason}
        if not chat and not req.get("raw"):
            final["context"] = [151644, 872, 198, 2610, 525, 264, 10950, 17847]
        final.update({"total_duration": total, "load_duration": script.load_duration,
                      "prompt_eval_count": script.prompt_eval_count,
                      "prompt_eval_duration": script.prompt_eval_duration,
                      "eval_count": eval_count, "eval_duration": script.eval_duration})
        last = self._line(requested, model, chat=chat, text=script.text_in_final, final=final)
        if req.get("stream") is False:
            self._whole(lines, last, chat=chat)
            return
        self._stream(req, requested, lines, last, script)

    def _whole(self, lines: list[JsonObj], last: JsonObj, *, chat: bool) -> None:
        """`stream: false`: fragments concatenated into the final object."""
        if chat:
            content = "".join(line["message"].get("content", "") for line in [*lines, last])
            thinking = "".join(line["message"].get("thinking", "") for line in [*lines, last])
            last["message"] = omit_empty([("role", "assistant"), ("content", content),
                                          ("thinking", thinking)], always=("role", "content"))
        else:
            text = "".join(line.get("response", "") for line in [*lines, last])
            thinking = "".join(line.get("thinking", "") for line in [*lines, last])
            ordered: JsonObj = {}
            for key, value in last.items():
                if key == "response":
                    ordered["response"] = text
                    if thinking:
                        ordered["thinking"] = thinking
                elif key != "thinking":
                    ordered[key] = value
            last = ordered
        self._json(200, last)

    def _stream(self, req: JsonObj, requested: str, lines: list[JsonObj], last: JsonObj,
                script: Script) -> None:
        record = StreamRecord(self.path, requested)
        with self.emu.lock:
            self.emu.streams.append(record)
        self.close_connection = True if script.fault == "disconnect" else self.close_connection
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = _ChunkWriter(self.connection, script.split, record)
        try:
            if script.fault == "stall_first":
                self._wait_for_close(record, script.stall_s)
                return
            mid = script.fault in ("midstream_error", "malformed", "truncate", "disconnect",
                                   "stall")
            for index, line in enumerate(lines):
                if mid and index == script.fault_after:
                    break
                if script.token_delay_s:
                    self._pause(record, script.token_delay_s)
                writer.line(go_json(line))
            if script.fault == "midstream_error":
                writer.line(go_json({"error": script.error_text}))
            elif script.fault == "malformed":
                writer.line('{"model":"' + requested + '","response":"oops"')
            elif script.fault == "stall":
                writer.flush()
                self._wait_for_close(record, script.stall_s)
                return
            elif script.fault == "disconnect":
                writer.flush()
                self.connection.sendall(b"40\r\n{\"model\":\"")
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                record.closed_at = time.monotonic()
                record.closed_event.set()
                return
            elif script.fault == "none":
                if script.token_delay_s:
                    self._pause(record, script.token_delay_s)
                writer.line(go_json(last))
            writer.end()
            record.finished = True
            record.closed_at = time.monotonic()
            record.closed_event.set()
        except ClientGone:
            self.close_connection = True
            record.client_closed = True
            record.closed_at = time.monotonic()
            record.closed_event.set()

    def _pause(self, record: StreamRecord, seconds: float) -> None:
        """Sleep, noticing at once if the client hangs up (the GPU would stop)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if _peer_closed(self.connection, min(left, 0.005)):
                raise ClientGone

    def _wait_for_close(self, record: StreamRecord | None, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if _peer_closed(self.connection, 0.005):
                if record is not None:
                    record.client_closed = True
                    record.closed_at = time.monotonic()
                    record.closed_event.set()
                self.close_connection = True
                return
        self.close_connection = True
        if record is not None:
            record.closed_at = time.monotonic()
            record.closed_event.set()

    # -- OpenAI-compatible /v1 ----------------------------------------------------------

    def _v1_entry(self, model: StrictModel) -> JsonObj:
        owner = model.name.split("/")[0] if "/" in model.name else "library"
        return {"id": model.name, "object": "model", "created": 1746889608, "owned_by": owner}

    def _v1_model(self, name: str) -> None:
        model = self.emu.find(name)
        if model is None:
            self._json(404, _v1_error(404, f"model '{name}' not found"))
        else:
            self._json(200, self._v1_entry(model))

    def _v1_generate(self, raw: bytes, *, chat: bool) -> None:
        """Translate to the native handler's rules, answer in OpenAI shapes."""
        try:
            req = json.loads(raw) if raw.strip() else None
        except ValueError:
            req = None
        if not isinstance(req, dict):
            self._json(400, _v1_error(400, "invalid request body"))
            return
        name = str(req.get("model") or "")
        if chat and req.get("messages") == []:
            self._json(400, _v1_error(400, "[] is too short - 'messages'"))
            return
        model = self.emu.find(name) if name else None
        if model is None:
            self._json(404, _v1_error(404, f"model '{name}' not found"))
            return
        if "completion" not in model.capabilities:
            what = "chat" if chat else "generate"
            self._json(400, _v1_error(400, f'"{name}" does not support {what}'))
            return
        if not chat and req.get("suffix") and "insert" not in model.capabilities:
            self._json(400, _v1_error(400, f"{model.fully_qualified} does not support insert"))
            return
        script = self.emu.next_script()
        if script.fault == "error_first":
            self._json(script.error_status, _v1_error(script.error_status, script.error_text))
            return
        thinks = "thinking" in model.capabilities and req.get("reasoning_effort") != "none"
        tokens = list(script.tokens)
        thinking = list(script.thinking) if thinks else []
        completion_tokens = (script.eval_count if script.eval_count is not None
                             else len(tokens) + len(thinking))
        usage = {"prompt_tokens": script.prompt_eval_count, "completion_tokens": completion_tokens,
                 "total_tokens": script.prompt_eval_count + completion_tokens}
        finish = script.done_reason if script.done_reason in ("stop", "length") else "stop"
        ident = ("chatcmpl-" if chat else "cmpl-") + str(len(self.emu.requests) % 999)
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if req.get("stream") is not True:
            text = "".join(tokens)
            choice: JsonObj = {"index": 0}
            if chat:
                message: JsonObj = {"role": "assistant", "content": text}
                if thinking:
                    message["reasoning"] = "".join(thinking)
                choice.update({"message": message, "finish_reason": finish})
            else:
                choice.update({"text": text, "finish_reason": finish})
            self._json(200, {"id": ident, "object": obj, "created": created, "model": name,
                             "system_fingerprint": "fp_ollama", "choices": [choice],
                             "usage": usage})
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        frames: list[JsonObj] = []

        def frame(choices: list[JsonObj], **extra: Any) -> JsonObj:
            if chat:
                out: JsonObj = {"id": ident, "object": obj + ".chunk", "created": created,
                                "model": name, "system_fingerprint": "fp_ollama",
                                "choices": choices}
            else:  # openai.CompletionChunk's field order (fixture openai_completions_stream)
                out = {"id": ident, "object": obj, "created": created, "choices": choices,
                       "model": name, "system_fingerprint": "fp_ollama"}
            out.update(extra)
            return out

        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        if chat:
            first = True
            for piece, key in [(t, "reasoning") for t in thinking] + [(t, "content")
                                                                      for t in tokens]:
                delta: JsonObj = {"role": "assistant"} if first else {}
                delta[key] = piece
                first = False
                frames.append(frame([{"index": 0, "delta": delta, "finish_reason": None}]))
            frames.append(frame([{"index": 0, "delta": {}, "finish_reason": finish}]))
            if include_usage:
                frames.append(frame([], usage=usage))
        else:
            # every native line, the final one included, becomes one frame
            extra: JsonObj = {"usage": zero} if include_usage else {}
            for piece in tokens:
                frames.append(frame([{"text": piece, "index": 0, "finish_reason": None}],
                                    **extra))
            frames.append(frame([{"text": "", "index": 0, "finish_reason": finish}], **extra))
            if include_usage:
                frames.append(frame([], usage=usage))
        record = StreamRecord(self.path, name)
        with self.emu.lock:
            self.emu.streams.append(record)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = _ChunkWriter(self.connection, script.split, record)
        try:
            for index, item in enumerate(frames):
                if script.fault == "truncate" and index == script.fault_after:
                    break
                if script.token_delay_s:
                    self._pause(record, script.token_delay_s)
                writer.line("data: " + go_json(item) + "\n")
            if script.fault != "truncate":
                writer.line("data: [DONE]\n")
            writer.end()
            record.finished = True
        except ClientGone:
            record.client_closed = True
            self.close_connection = True
        record.closed_at = time.monotonic()
        record.closed_event.set()

    # -- pull -------------------------------------------------------------------------

    def _pull(self, req: JsonObj) -> None:
        name = str(req.get("model") or req.get("name") or "")
        if not name or not _NAME_RE.match(name):
            self._error(400, "invalid model name")
            return
        fails = normalize_name(name) in self.emu.pull_fail or name.startswith("nonexistent")
        if req.get("stream") is False:
            if fails:
                self._error(500, "pull model manifest: file does not exist")
            else:
                self._json(200, {"status": "success"})
            return
        digest = "sha256:" + ("8eeb52dfb3bb" * 6)[:64]
        total = 1_000_000
        lines: list[JsonObj] = [{"status": "pulling manifest"}]
        if fails:
            lines.append({"error": "pull model manifest: file does not exist"})
        else:
            for done in (0, 250_000, 750_000, 1_000_000):
                lines.append(omit_empty([("status", f"pulling {digest[7:19]}"), ("digest", digest),
                                         ("total", total), ("completed", done)],
                                        always=("status",)))
            lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                      {"status": "success"}]
        record = StreamRecord(self.path, name)
        with self.emu.lock:
            self.emu.streams.append(record)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = _ChunkWriter(self.connection, self.emu.default_script.split, record)
        delay = self.emu.pull_delay_s
        try:
            for index, line in enumerate(lines):
                if index == self.emu.pull_hold_after:
                    writer.flush()
                    self._pause(record, self.emu.pull_hold_s)
                if delay:
                    self._pause(record, delay)
                writer.line(go_json(line))
            writer.end()
            record.finished = True
        except ClientGone:
            record.client_closed = True
            self.close_connection = True
        record.closed_at = time.monotonic()
        record.closed_event.set()
        if record.finished and not fails and self.emu.find(name) is None:
            self.emu.models.append(StrictModel(normalize_name(name), "llama", "llama", "1B",
                                               "Q4_K_M", ("completion",), 1_000_000_000, 8192,
                                               total))


def _v1_error(status: int, message: str) -> JsonObj:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _ChunkWriter:
    """Writes NDJSON lines as HTTP chunks following a split plan, one `send` per piece."""

    def __init__(self, sock: socket.socket, split: SplitMode, record: StreamRecord) -> None:
        self.sock = sock
        self.split = split
        self.record = record
        self.pending = b""
        self.count = 0

    def line(self, text: str) -> None:
        data = (text + "\n").encode("utf-8")
        self.record.lines_written += 1
        self.count += 1
        if self.split == "line":
            self._chunk(data)
        elif self.split == "split":
            # cut inside the JSON (and inside a multi-byte character when there is one)
            cut = max(1, len(data) // 2)
            self._chunk(data[:cut])
            time.sleep(0.002)
            self._chunk(data[cut:])
        elif self.split == "packed":
            # three lines per chunk, the third one's first half carried into the next
            self.pending += data
            if self.count % 3 == 0:
                cut = len(self.pending) - len(data) // 2
                self._chunk(self.pending[:cut])
                self.pending = self.pending[cut:]
        else:  # bytewise
            for i in range(len(data)):
                self._chunk(data[i:i + 1])

    def flush(self) -> None:
        if self.pending:
            self._chunk(self.pending)
            self.pending = b""

    def end(self) -> None:
        self.flush()
        self._send(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        frame = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        if self.split == "bytewise":
            self._send(frame)
        else:
            # the chunk header and its data in separate TCP writes, as a flushing Go writer may
            self._send(frame[:3])
            self._send(frame[3:])

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone from exc


def _peer_closed(sock: socket.socket, wait_s: float) -> bool:
    """True when the client has closed its end (readable with EOF)."""
    try:
        readable, _, _ = select.select([sock], [], [], wait_s)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


# -- validation helpers ---------------------------------------------------------------

_OPTION_TYPES: dict[str, str] = {
    "num_keep": "integer", "seed": "integer", "num_predict": "integer", "top_k": "integer",
    "top_p": "float32", "min_p": "float32", "typical_p": "float32", "repeat_last_n": "integer",
    "temperature": "float32", "repeat_penalty": "float32", "presence_penalty": "float32",
    "frequency_penalty": "float32", "stop": "array", "num_ctx": "integer", "num_batch": "integer",
    "num_gpu": "integer", "main_gpu": "integer", "use_mmap": "boolean", "num_thread": "integer",
    "draft_num_predict": "integer",
}


def _options_error(options: object) -> str | None:
    """`api.Options.FromMap`: unknown keys ignored, wrong types -> an error text (500)."""
    if options is None:
        return None
    if not isinstance(options, dict):
        return "json: cannot unmarshal into Go struct field of type map[string]interface {}"
    for key, value in options.items():
        kind = _OPTION_TYPES.get(key)
        if kind is None or value is None:
            continue
        if kind in ("integer", "float32") and (isinstance(value, bool)
                                               or not isinstance(value, (int, float))):
            return f'option "{key}" must be of type {kind}'
        if kind == "boolean" and not isinstance(value, bool):
            return f'option "{key}" must be of type boolean'
        if kind == "array":
            if not isinstance(value, list):
                return f'option "{key}" must be of type array'
            if not all(isinstance(v, str) for v in value):
                return f'option "{key}" must be of an array of strings'
    return None


_DURATION_RE = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$")


def _keep_alive_ok(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_DURATION_RE.match(value))


def _go_syntax_error(raw: bytes) -> str:
    """Roughly what Go's decoder says about broken JSON (clients match on 400 only)."""
    text = raw.decode("utf-8", "replace")
    if text[:1] not in "{[\"" or not text:
        return f"invalid character '{text[:1]}' looking for beginning of value"
    if text.startswith("{") and len(text) > 1 and text[1:].lstrip()[:1] not in ('"', "}", ""):
        return (f"invalid character '{text[1:].lstrip()[:1]}' looking for beginning of "
                "object key string")
    return "unexpected EOF"


def _go_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _struct_for(path: str) -> str:
    return {"/api/generate": "GenerateRequest", "/api/chat": "ChatRequest",
            "/api/show": "ShowRequest", "/api/pull": "PullRequest"}.get(path, "Request")


def iter_lines(data: bytes) -> Iterator[JsonObj]:
    """Helper for tests: the JSON objects of an NDJSON body."""
    for line in data.split(b"\n"):
        if line:
            yield json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description="Strict Ollama v0.33 emulator")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-delay", type=float, default=0.05)
    parser.add_argument("--split", default="split", choices=["line", "split", "packed", "bytewise"])
    args = parser.parse_args()
    emu = StrictOllama(port=args.port)
    emu.default_script.token_delay_s = args.token_delay
    emu.default_script.split = args.split
    emu.start()
    print(f"strict Ollama emulator at {emu.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main()
