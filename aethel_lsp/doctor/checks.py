"""`aethel-lsp doctor` / `aethel.doctor`: diagnose a setup in one command.

Every check produces `Finding`s: an area, a severity, a title, the detail behind it and
the exact fix.  Severities mean: `error` — this does not work (the CLI exits 1);
`warning` — it works, badly (slow, unreliable, unloading); `info` — worth knowing;
`ok` — checked and fine.  Nothing here imports LSP: the CLI and the server both call
`run_doctor()` and render the same `DoctorReport` (JSON, Markdown or terminal lines).

The checks, in order (docs/doctor.md explains each finding):
config (files read, their problems, the effective settings with where each came
from) · engine (which, where, which source set the host, version, OpenAI endpoint and
whether its API key is present — never the key) · models (each task's model installed
and able to generate; for completion: `insert`, the FIM mode and why, chat/instruct and
thinking models) · speed (a short timed probe per model, with a verdict against the
completion deadline) · residency (`keepAlive`, `/api/ps`: loaded, expiry, GPU share,
whether the completion and action models stay loaded together).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from aethel_lsp.config import (
    ConfigIssue,
    ConfigSource,
    ResolvedConfig,
    is_loopback_host,
)
from aethel_lsp.doctor.report import DoctorReport, Finding, Severity
from aethel_lsp.doctor.settings_origin import (
    describe_origin,
    effective_settings,
    setting_value,
)
from aethel_lsp.engine.base import Engine, merge_model_info
from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.measure import (
    ProbeMeasurement,
    is_chat_tuned,
    is_thinking_model,
    probe_model,
)
from aethel_lsp.engine.recommend import (
    SMALL_CODE_MODEL,
    TINY_CODE_MODEL,
    can_generate,
    install_advice,
    is_code_model,
    normalize_name,
    parameter_count,
)
from aethel_lsp.engine.stats import UsageStats
from aethel_lsp.engine.types import (
    EngineStatus,
    JsonDict,
    ModelInfo,
    RunningModel,
    keep_alive_seconds,
)
from aethel_lsp.paths import user_config_path
from aethel_lsp.prompts.fim import FimMode, choose_mode

Task = Literal["chat", "completion"]
TASK_KEYS: dict[Task, str] = {"chat": "model", "completion": "completion.model"}
TASK_LABELS: dict[Task, str] = {"chat": "actions (explain, improve, generate…)",
                                "completion": "completion"}
COMPLETION_TOKENS = 24  # a typical inline completion: one or two lines
ACTION_TOKENS = 300  # a typical explanation
ACTION_BUDGET_MS = 30_000.0
SHORT_KEEP_ALIVE_S = 300.0  # below this, a pause to think unloads the model
SLOW_LOAD_MS = 3000.0
PickModel = Callable[[Sequence[ModelInfo], Task], "str | None"]


# -- entry point ------------------------------------------------------------------------


async def run_doctor(
    engine: Engine,
    config: ResolvedConfig,
    *,
    env: Mapping[str, str],
    host_override: str | None = None,
    selected: Mapping[str, str] | None = None,
    pick_model: PickModel | None = None,
    probe: bool = True,
    probe_timeout_s: float = 60.0,
    stats: UsageStats | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DoctorReport:
    """Run every check against `engine` (unwrapped: probes must not count as usage)."""
    started = time.perf_counter()
    doctor = _Doctor(engine, config, env, host_override, dict(selected or {}), pick_model,
                     probe, probe_timeout_s, stats, on_step or (lambda _step: None))
    await doctor.run()
    return DoctorReport(
        findings=tuple(doctor.findings),
        engine=doctor.engine_json,
        settings=effective_settings(config),
        config_files=tuple(str(p) for p in config.files),
        probes=tuple(doctor.probes.values()),
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
    )


def unwrap(engine: Engine) -> Engine:
    """The engine below the metering / inspecting wrappers (they have `.inner`)."""
    while isinstance(getattr(engine, "inner", None), Engine):
        engine = engine.inner  # type: ignore[attr-defined]
    return engine


# -- the checks ---------------------------------------------------------------------------


class _Doctor:
    def __init__(
        self, engine: Engine, config: ResolvedConfig, env: Mapping[str, str],
        host_override: str | None, selected: dict[str, str], pick_model: PickModel | None,
        probe: bool, probe_timeout_s: float, stats: UsageStats | None,
        on_step: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self.config = config
        self.settings = config.settings
        self.env = env
        self.host_override = host_override
        self.selected = selected
        self.pick_model = pick_model
        self.probe = probe
        self.probe_timeout_s = probe_timeout_s
        self.stats = stats
        self.step = on_step
        self.findings: list[Finding] = []
        self.engine_json: JsonDict = {}
        self.probes: dict[str, ProbeMeasurement] = {}
        self.infos: dict[str, ModelInfo] = {}
        self.installed: set[str] = set()  # normalized names of every installed model

    def add(self, area: str, severity: Severity, title: str, detail: str = "", fix: str = "",
            **data: Any) -> None:
        self.findings.append(Finding(area, severity, title, detail, fix, data))

    async def run(self) -> None:
        self.step("Reading the configuration")
        self.check_config()
        self.step("Asking the engine")
        status = await self.check_engine()
        if not status.available:
            self.add("models", "info", "Model, speed and memory checks were skipped",
                     "They need a running engine.", "Fix the engine finding above, then run "
                     "the doctor again.")
            return
        self.step("Checking the models")
        models = await self.check_models(status)
        self.check_served_context(status, models)
        if self.probe:
            await self.check_speed(models)
        await self.check_residency(models)

    # -- config ----------------------------------------------------------------------

    def check_config(self) -> None:
        files = self.config.files
        broken = {i.path for i in self.config.issues if i.severity == "error" and not i.key}
        for path in files:
            if path not in broken:  # a file that could not be read gets its ✗ below, no ✓
                self.add("config", "ok", f"Config file read: {path}", path=str(path))
        if not files:
            self.add("config", "info", "No config file found: defaults, OLLAMA_HOST and the "
                     "editor settings apply",
                     f"Looked for {user_config_path(self.env)} and, in the workspace, "
                     "aethel.toml or [tool.aethel-lsp] in pyproject.toml.",
                     f"Optional: create {user_config_path(self.env)} (docs/configuration.md).")
        for issue in self.config.issues:
            self.add("config", "error" if issue.severity == "error" else "warning",
                     _issue_title(issue), issue.message, _issue_fix(issue),
                     key=issue.key, file=str(issue.path) if issue.path else None,
                     line=issue.line, source=issue.source.value)
        changed = [f"{k} = {v['value']!r} ({v['source']})"
                   for k, v in effective_settings(self.config).items()
                   if v["source"] != "default"]
        self.add("config", "info", "Effective settings: "
                 + (f"{len(changed)} differ from the defaults" if changed else "all defaults"),
                 "; ".join(changed))

    # -- engine ----------------------------------------------------------------------

    async def check_engine(self) -> EngineStatus:
        s = self.settings
        openai = self.engine.kind == "openai"
        origin = describe_origin(self.config, "engine", self.env)
        choice = f"`engine` = {s.engine!r}, set by {origin}"
        if self.host_override:
            choice = f"`engine` = {self.engine.kind!r} (the command line)"
        if openai:
            host = self.engine.host
            url_origin = ("the --host option" if self.host_override else
                          describe_origin(self.config, 'openai.baseUrl', self.env))
            self.add("engine", "info", f"Engine: OpenAI-compatible server at {host}",
                     f"{choice}; its URL set by {url_origin}.", engine="openai", host=host)
            self.check_api_key()
        else:
            host = self.host_override or s.host
            self.add("engine", "info", f"Ollama host: {host}",
                     f"Set by {self._host_origin()}. {choice}.", engine=s.engine, host=host,
                     hostSource=self._host_source())
        if host and not is_loopback_host(host):
            self.add("engine", "info", f"Your code is sent to {host}, which is not this "
                     "machine", "Every prompt (the code around the cursor, selections) "
                     "leaves this machine.", "If that is not intended, set `host` to a local "
                     "Ollama (http://127.0.0.1:11434).")
        status = await self.engine.status()
        self.engine_json = {k: v for k, v in status.to_json().items()
                            if k not in ("models", "running")}
        reason = getattr(self.engine, "reason", "") or status.reason or ""
        if status.available and status.engine == "embedded":
            self.add("engine", "ok", f"The embedded engine is running ({status.host})",
                     "llama.cpp's server (xllamacpp) runs the model in this process, on "
                     "loopback.", version=status.version)
            if s.engine == "auto":
                self.add("engine", "info", "Serving with the embedded engine", reason,
                         "Start Ollama (`ollama serve`) for larger models and GPU speed.")
        elif status.available:
            what = "Ollama" if status.engine == "ollama" else "The OpenAI-compatible server"
            version = f" {status.version}" if status.version and status.engine == "ollama" else ""
            self.add("engine", "ok", f"{what}{version} is running at {status.host}",
                     version=status.version)
        elif status.offline:
            self.add("engine", "error", f"Nothing answers at {status.host}",
                     status.error or "", self._offline_fix(status))
        else:
            self.add("engine", "error", f"The engine at {status.host} answers, but not "
                     "correctly", status.error or "", self._failing_fix())
        return status

    def _host_source(self) -> str:
        if self.host_override:
            return "--host"
        return self.config.origin("host").value

    def _host_origin(self) -> str:
        if self.host_override:
            return "the --host option"
        origin = describe_origin(self.config, "host", self.env)
        raw_env = self.env.get("OLLAMA_HOST", "").strip()
        if raw_env and self.config.origin("host") not in (ConfigSource.ENV,
                                                            ConfigSource.DEFAULT):
            origin += f", which overrides OLLAMA_HOST={raw_env}"
        return origin

    def _offline_fix(self, status: EngineStatus) -> str:
        if self.settings.engine == "openai" and not self.host_override:
            return (f"Start the OpenAI-compatible server at {status.host}, or correct "
                    "`openai.baseUrl`.")
        local = is_loopback_host(status.host)
        start = ("Start Ollama with `ollama serve` (install it from https://ollama.com)"
                 if local else f"Make sure Ollama runs on that machine and listens on "
                 f"the network (OLLAMA_HOST=0.0.0.0 there), and that {status.host} is "
                 "reachable from here")
        return (f"{start}, or point `host` at where Ollama runs (the host now comes from "
                f"{self._host_origin()}).")

    def _failing_fix(self) -> str:
        if self.settings.engine == "openai" and not self.host_override:
            name = self.settings.openai.api_key_env
            key = f" and that the key in ${name} is valid there" if name else \
                " and whether it needs an API key (`openai.apiKeyEnv`)"
            return f"Check that `openai.baseUrl` is the server's /v1 URL{key}."
        return ("Check that the `host` setting points at Ollama (not another service), and "
                "the Ollama server log.")

    def check_api_key(self) -> None:
        name = self.settings.openai.api_key_env
        if not name:
            host = self.engine.host
            severity: Severity = "info" if is_loopback_host(host) else "warning"
            self.add("engine", severity, "No API key configured (`openai.apiKeyEnv` is empty)",
                     "Requests are sent without an Authorization header; local servers "
                     "(llama.cpp, vLLM, LM Studio) usually need none.",
                     "If the server needs a key: put it in an environment variable and set "
                     "`openai.apiKeyEnv` to that variable's NAME.")
            return
        value = self.env.get(name, "")
        if value:
            self.add("engine", "ok", f"API key present in ${name}",
                     f"{len(value)} characters (the key itself is never shown or logged).",
                     apiKeyEnv=name, present=True)
        else:
            self.add("engine", "error", f"API key missing: ${name} is not set",
                     f"`openai.apiKeyEnv` names {name}, but the environment of this process "
                     "has no such variable, so requests go out without a key.",
                     f"Export {name} in the environment the editor (or this shell) starts "
                     "from, then restart the editor.", apiKeyEnv=name, present=False)

    # -- models ----------------------------------------------------------------------

    async def check_models(self, status: EngineStatus) -> dict[Task, str]:
        """Each task's model: installed, able to generate, fit for its task."""
        installed = list(status.models)
        try:
            detailed = await self.engine.list_models_detailed()
            installed = detailed or installed
        except EngineError:
            pass
        names = {normalize_name(m.name): m for m in installed}
        self.installed = set(names)
        if not [m for m in installed if can_generate(m)]:
            self.add("models", "error", f"No model that can generate text is installed at "
                     f"{status.host}", "Installed: " + (", ".join(names) or "nothing") + ".",
                     f"{_first_upper(self._install(SMALL_CODE_MODEL))} (small, fast, fills in "
                     "the middle).")
            return {}
        chosen: dict[Task, str] = {}
        for task in ("chat", "completion"):
            model = self._model_for(task, installed)
            if model is None:
                continue
            info = names.get(normalize_name(model))
            if info is None:
                self._not_installed(task, model, installed, status.host)
                continue
            chosen[task] = model
            await self._check_model(task, model, info)
        return chosen

    def _model_for(self, task: Task, installed: Sequence[ModelInfo]) -> str | None:
        key = TASK_KEYS[task]
        model = self.selected.get(task) or setting_value(self.settings, key)
        if task == "completion" and not model:
            model = self.selected.get("chat") or self.settings.model
        if model:
            return str(model)
        picked = self.pick_model(installed, task) if self.pick_model else None
        if picked is None:
            usable = [m for m in installed if can_generate(m)]
            picked = usable[0].name if usable else None
        if picked is not None:
            self.add("models", "info", f"No model set for {TASK_LABELS[task]}: the best "
                     f"installed one is used, {picked}",
                     "Chosen from what is installed (code models first, no thinking models).",
                     f"To choose yourself, set `{key} = \"{picked}\"` (or run "
                     "`aethel-lsp recommend --measure`).", task=task, model=picked)
        return picked

    def _user_chose_model(self, task: Task) -> bool:
        return bool(self.selected.get(task) or self.selected.get("chat")
                    or setting_value(self.settings, TASK_KEYS[task]) or self.settings.model)

    def _model_origin(self, task: Task) -> str:
        if task in self.selected:
            return "the aethel.selectModel command"
        own_completion_model = task == "completion" and self.settings.completion.model
        if not own_completion_model and "chat" in self.selected:
            return "the aethel.selectModel command (for actions; `completion.model` is not set)"
        if not own_completion_model and not self.settings.model:
            return "the automatic choice (no model is configured)"
        key = TASK_KEYS[task]
        if task == "completion" and not self.settings.completion.model:
            return (f"`model`, set by {describe_origin(self.config, 'model', self.env)} "
                    "(`completion.model` is not set)")
        return f"`{key}`, set by {describe_origin(self.config, key, self.env)}"

    def _not_installed(self, task: Task, model: str, installed: Sequence[ModelInfo],
                       host: str) -> None:
        listed = ", ".join(m.name for m in installed) or "nothing"
        self.add("models", "error", f"Model '{model}' for {TASK_LABELS[task]} is not installed",
                 f"It comes from {self._model_origin(task)}. Installed at {host}: {listed}.",
                 f"{_first_upper(self._install(model, cli=True))}, or set "
                 f"`{TASK_KEYS[task]}` to an installed model.", task=task, model=model)

    async def _check_model(self, task: Task, model: str, listed: ModelInfo) -> None:
        try:
            info = merge_model_info(listed, await self.engine.show(model))
        except EngineError as exc:
            self.add("models", "warning", f"Could not read the details of '{model}'", str(exc))
            info = listed
        self.infos[model] = info
        caps = ", ".join(info.capabilities) or "none reported"
        self.add("models", "ok", f"{TASK_LABELS[task].capitalize()}: {model} is installed",
                 f"From {self._model_origin(task)}. Capabilities: {caps}.", task=task,
                 model=model, capabilities=list(info.capabilities))
        if info.capabilities and not info.has("completion"):
            self.add("models", "error", f"'{model}' cannot generate text",
                     f"Its capabilities are {caps}: it is an embedding model.",
                     f"Set `{TASK_KEYS[task]}` to a chat or code model, e.g. "
                     f"{SMALL_CODE_MODEL}.", task=task, model=model)
            return
        if not info.capabilities and self.engine.kind == "ollama":
            self.add("models", "warning", f"Ollama reported no capabilities for '{model}'",
                     "Older Ollama versions do not say whether a model can fill in the "
                     "middle, so the FIM mode is guessed from the model's name.",
                     "Upgrade Ollama (https://ollama.com/download).", model=model)
        self._check_context(model, info)
        if task == "completion":
            self._check_completion_model(model, info)
        elif is_thinking_model(info):
            self.add("models", "info", f"'{model}' is a thinking model",
                     "aethel-lsp asks it not to think (`think: false`), so actions answer "
                     "directly; thinking would spend tokens you never see.", model=model)

    def _check_context(self, model: str, info: ModelInfo) -> None:
        """`contextSize` beyond what the model was trained for buys nothing but memory."""
        wanted, trained = self.settings.context_size, info.context_length
        if self.config.origin("contextSize") is ConfigSource.DEFAULT:
            return  # our own default: prompts are sized to the model's real window anyway
        if trained and wanted > trained and not any(
            f.data.get("contextLength") and f.data.get("model") == model for f in self.findings
        ):
            origin = describe_origin(self.config, "contextSize", self.env)
            self.add("models", "warning", f"contextSize {wanted} is larger than {model}'s "
                     f"context length ({trained})",
                     "The model cannot use the extra context, but Ollama still reserves "
                     "memory (KV cache) for it.",
                     f"Set `contextSize = {trained}` or less (it comes from {origin}).",
                     model=model, contextSize=wanted, contextLength=trained)

    def _check_completion_model(self, model: str, info: ModelInfo) -> None:
        plan = choose_mode(model, info, continuation=self.engine.kind == "embedded")
        data: dict[str, Any] = {"model": model, "fimMode": plan.mode.value}
        if plan.mode is FimMode.NATIVE:
            self.add("completion", "ok", f"Completion uses native fill-in-the-middle with "
                     f"{model}", f"FIM mode native: {plan.reason}.", **data)
        elif plan.mode is FimMode.TEMPLATE:
            family = plan.template.family if plan.template else "?"
            self.add("completion", "info", f"Completion uses the {family} FIM template "
                     f"(raw prompt) with {model}", f"FIM mode template: {plan.reason}.",
                     "Fine; a model whose capabilities include `insert` lets Ollama apply "
                     "its own template (e.g. " + SMALL_CODE_MODEL + ").", **data)
        elif plan.mode is FimMode.CONTINUE:
            self.add("completion", "info", f"Completion continues the text before the cursor "
                     f"with {model} (no fill-in-the-middle tokens)",
                     f"FIM mode continue: {plan.reason}. The text after the cursor is not "
                     "seen by the model; post-processing trims what repeats it.",
                     "For fill-in-the-middle on the embedded engine, use a GGUF with FIM "
                     f"tokens: a code model pulled with Ollama (`ollama pull {SMALL_CODE_MODEL}`)"
                     " or `aethel-lsp pull hf:OWNER/REPO/FILE.gguf`.", **data)
        else:
            self.add("completion", "warning", f"{model} cannot fill in the middle: "
                     "completion falls back to chat prompts",
                     f"FIM mode chat: {plan.reason}. A chat prompt is slower, and the model "
                     "tends to repeat code or add explanations.",
                     f"Use a code model with `insert`: {self._install(SMALL_CODE_MODEL)}; then "
                     f"set `completion.model = \"{SMALL_CODE_MODEL}\"`.", **data)
        if is_thinking_model(info):
            self.add("completion", "warning", f"'{model}' is a thinking model, used for "
                     "completion", "Thinking models are tuned to reason before answering; "
                     "even with `think: false` they are slow and chatty for ghost text.",
                     f"Set `completion.model = \"{SMALL_CODE_MODEL}\"` (a code model with "
                     "`insert`).", model=model)
        elif plan.mode is not FimMode.CHAT and is_chat_tuned(info):
            kind = "an instruct/chat model" if is_code_model(info) else "a general chat model"
            # nobody chose it when it is the only model there is (a fresh embedded install):
            # worth knowing, with the same fix, but not the user's mistake
            only_choice = not self._user_chose_model("completion") and len(self.installed) <= 1
            self.add("completion", "info" if only_choice else "warning",
                     f"'{model}' is {kind}, used for completion",
                     "Chat-tuned models answer rather than continue code: expect "
                     "explanations, Markdown fences or repeated lines in suggestions.",
                     f"Prefer a base code model with `insert`, e.g. {SMALL_CODE_MODEL}.",
                     model=model)

    def check_served_context(self, status: EngineStatus, models: Mapping[Task, str]) -> None:
        """A server started with a small context (llama.cpp's `--ctx-size`) refuses longer
        prompts, whatever `contextSize` says: `contextSize` cannot grow it, only cut to it."""
        if status.engine != "openai":
            return
        wanted = self.settings.context_size
        for entry in status.running:
            served = entry.context_length
            if entry.name not in models.values() or not served or served >= wanted:
                continue
            origin = describe_origin(self.config, "contextSize", self.env)
            self.add("models", "warning", f"The server runs {entry.name} with a {served}-token "
                     f"context, smaller than contextSize {wanted}",
                     "This engine does not take `contextSize` from us: prompts longer than the "
                     "server's context are refused.",
                     f"Set `contextSize = {served}` (it comes from {origin}), or restart the "
                     "server with a larger context (llama.cpp `--ctx-size`, vLLM "
                     "`--max-model-len`).", model=entry.name, contextSize=wanted,
                     servedContext=served)

    # -- speed -----------------------------------------------------------------------

    async def check_speed(self, models: Mapping[Task, str]) -> None:
        keep_alive = self.settings.keep_alive_value
        for model in dict.fromkeys(models.values()):
            info = self.infos.get(model)
            if info is not None and info.capabilities and not info.has("completion"):
                continue
            self.step(f"Probing {model}")
            probe = await probe_model(self.engine, model, keep_alive=keep_alive,
                                      stats=self.stats, timeout_s=self.probe_timeout_s)
            self.probes[model] = probe
            if not probe.ok:
                self.add("speed", "error", f"The probe of {model} failed", probe.error or "",
                         "Try `aethel-lsp generate --model " + model + " hello` to see the "
                         "error in full; check the engine's log.", model=model)
                continue
            if probe.estimate_ms(1) is None:
                self.add("speed", "info", f"The speed of {model} is unknown",
                         "The engine reported no token counts or durations for the probe.",
                         **probe.to_json())
                continue
            self.add("speed", "info", f"{model}: {probe.summary()}",
                     "Measured with a 16-token generation: load time and generation speed "
                     "as reported by the engine, time to first token as seen here.",
                     **probe.to_json())
            if probe.load_ms is not None and probe.load_ms >= SLOW_LOAD_MS:
                self.add("speed", "info", f"Loading {model} takes {probe.load_ms / 1000:.1f} s",
                         "Every time the model is unloaded, the next request waits this long.",
                         "Keep it loaded: `keepAlive = \"30m\"` or longer.", model=model)
        for task, model in models.items():
            measured = self.probes.get(model)
            if measured is None or not measured.ok or measured.estimate_ms(1) is None:
                continue  # a failed or unknown probe was reported once, above
            if task == "completion":
                self._completion_verdict(model, measured)
            else:
                self._action_verdict(model, measured)

    def _completion_verdict(self, model: str, probe: ProbeMeasurement) -> None:
        deadline = float(self.settings.completion.deadline_ms)
        estimate = probe.estimate_ms(COMPLETION_TOKENS) or math.inf
        numbers = (f"A {COMPLETION_TOKENS}-token completion takes ≈{estimate:.0f} ms here "
                   f"({probe.summary()}); `completion.deadlineMs` is {deadline:.0f} ms.")
        data: dict[str, Any] = {"model": model, "estimatedMs": round(estimate, 1),
                                "deadlineMs": deadline}
        if estimate > deadline:
            raise_to = int(math.ceil(estimate * 1.25 / 100.0) * 100)
            self.add("speed", "warning", f"{model} is too slow for inline completion on this "
                     "machine", numbers,
                     f"Use {self._faster_model(model, deadline)}, or raise "
                     f"`completion.deadlineMs` to {raise_to} (then suggestions arrive later, "
                     "cut at the deadline).", **data)
        elif estimate > deadline / 2:
            self.add("speed", "info", f"{model} is just fast enough for inline completion",
                     numbers, "A busy machine will cut suggestions at the deadline; for "
                     f"headroom, use {self._faster_model(model, deadline)}.", **data)
        else:
            self.add("speed", "ok", f"{model} is fast enough for inline completion", numbers,
                     **data)

    def _action_verdict(self, model: str, probe: ProbeMeasurement) -> None:
        estimate = probe.estimate_ms(ACTION_TOKENS) or math.inf
        numbers = (f"A {ACTION_TOKENS}-token explanation takes ≈{estimate / 1000:.1f} s here "
                   f"({probe.summary()}).")
        data: dict[str, Any] = {"model": model, "estimatedMs": round(estimate, 1)}
        if estimate > ACTION_BUDGET_MS:
            self.add("speed", "warning", f"{model} is slow for actions on this machine", numbers,
                     "Actions stream as they generate, so they still work; for quicker answers "
                     "choose a smaller model (`aethel-lsp recommend --measure`).", **data)
        else:
            self.add("speed", "ok", f"{model} is fast enough for actions", numbers, **data)

    def _faster_model(self, current: str, deadline: float) -> str:
        """A measured faster installed code model if we know one, else a small one to pull."""
        installed = {normalize_name(name) for name in self.infos}
        if self.stats is not None:
            for probe in self.stats.probes():
                name = normalize_name(probe.model)
                if name == normalize_name(current) or name not in installed:
                    continue
                rate = probe.tokens_per_second
                if rate and COMPLETION_TOKENS / rate * 1000.0 <= deadline / 2:
                    return f"{probe.model} (measured {rate:.0f} tok/s here)"
        return self._smaller_code_model(current)

    def _smaller_code_model(self, current: str) -> str:
        """A code model that really is smaller than `current`, installed ones named as such;
        never a "smaller" model that is larger, nor a pull of what is already there."""
        size = parameter_count(self.infos[current]) if current in self.infos else None
        installed = self.installed | {normalize_name(name) for name in self.infos}
        ladder = ((SMALL_CODE_MODEL, 1.5e9), (TINY_CODE_MODEL, 0.5e9))
        smaller = [name for name, parameters in ladder
                   if (size is None or parameters < size * 0.9)
                   and normalize_name(name) != normalize_name(current)]
        for name in smaller:
            if normalize_name(name) in installed:
                return f"a smaller code model: {name} is installed"
        if smaller:
            return f"a smaller code model ({self._install(smaller[0])})"
        return ("fewer tokens per suggestion (`completion.maxTokens`), a longer "
                "`completion.deadlineMs`, or a faster machine: the model is already small")

    # -- residency -------------------------------------------------------------------

    async def check_residency(self, models: Mapping[Task, str]) -> None:
        if self.engine.kind != "ollama":
            self._keep_alive_unused()
            return
        self._check_keep_alive()
        try:
            running = await self.engine.running()
        except EngineError as exc:
            self.add("residency", "warning", "Could not read the loaded models (/api/ps)",
                     str(exc))
            return
        loaded = {normalize_name(r.name): r for r in running}
        for model in dict.fromkeys(models.values()):
            entry = loaded.get(normalize_name(model))
            if entry is None:
                self.add("residency", "info", f"{model} is not loaded right now",
                         "The next request loads it first"
                         + self._load_note(model) + ".", model=model)
                continue
            self._loaded(model, entry)
        self._check_together(models, loaded)

    def _keep_alive_unused(self) -> None:
        """Only Ollama gets `keep_alive`; say so only when someone set it."""
        if self.config.origin("keepAlive") is ConfigSource.DEFAULT:
            return
        origin = describe_origin(self.config, "keepAlive", self.env)
        self.add("residency", "info", f"keepAlive is not used with the {self.engine.kind} "
                 "engine", f"It is sent to Ollama only; this engine keeps its models loaded "
                 f"itself (the setting comes from {origin}).",
                 keepAlive=self.settings.keep_alive_value)

    def _install(self, model: str, *, cli: bool = False) -> str:
        """How to install `model` on this engine (`aethel-lsp pull` too, where it works)."""
        advice = install_advice(self.engine.kind, model)
        if cli and self.engine.kind == "ollama":
            advice += f" (or `aethel-lsp pull {model}`)"
        return advice

    def _check_keep_alive(self) -> None:
        value = self.settings.keep_alive_value
        seconds = keep_alive_seconds(value)
        origin = describe_origin(self.config, "keepAlive", self.env)
        fix = f"Set `keepAlive = \"30m\"` (it is {value!r}, from {origin})."
        if seconds is None:
            self.add("residency", "info", f"keepAlive = {value!r}: models stay loaded until "
                     "Ollama stops", "They keep their memory (VRAM) even when you are not "
                     "typing.", keepAlive=value)
        elif seconds == 0:
            self.add("residency", "warning", "keepAlive = 0: the model unloads after every "
                     "request", "Each completion waits for the model to load again (seconds "
                     "per keystroke).", fix, keepAlive=value)
        elif seconds < SHORT_KEEP_ALIVE_S:
            self.add("residency", "warning", f"keepAlive = {value!r}: the model unloads after "
                     f"{seconds:.0f} s without a request", "A pause to read or think is "
                     "enough for the next completion to wait for a reload.", fix,
                     keepAlive=value)
        else:
            self.add("residency", "ok", f"keepAlive = {value!r}: models stay loaded between "
                     "requests", f"From {origin}.", keepAlive=value)

    def _load_note(self, model: str) -> str:
        probe = self.probes.get(model)
        if probe is not None and probe.load_ms:
            return f" (measured load: {probe.load_ms:.0f} ms)"
        return ""

    def _loaded(self, model: str, entry: RunningModel) -> None:
        size, vram = entry.size_bytes, entry.size_vram
        detail = f"Expires {entry.expires_at or 'never'}; uses {_gb(size)} of memory"
        if size and vram is not None and vram < size:
            share = 100.0 * vram / size
            self.add("residency", "warning", f"{model} is only {share:.0f}% in GPU memory",
                     detail + f", {_gb(vram)} of it on the GPU; the rest runs on the CPU, "
                     "which is several times slower.",
                     "Use a smaller model or quantization, a smaller `contextSize`, or unload "
                     "other models (`ollama ps`).", model=model, sizeBytes=size, sizeVram=vram)
            return
        self.add("residency", "ok", f"{model} is loaded", detail + ".", model=model,
                 sizeBytes=size, sizeVram=vram, expiresAt=entry.expires_at)

    def _check_together(self, models: Mapping[Task, str],
                        loaded: Mapping[str, RunningModel]) -> None:
        distinct = list(dict.fromkeys(models.values()))
        if len(distinct) < 2:
            if distinct:
                self.add("residency", "ok", "Completion and actions share one model",
                         "Switching between them never reloads a model.")
            return
        entries = [loaded.get(normalize_name(m)) for m in distinct]
        sizes = [e.size_bytes if e else None for e in entries]
        if all(entries):
            total = sum(s or 0 for s in sizes)
            self.add("residency", "ok", "The completion and action models fit in memory "
                     "together", f"Both are loaded at once ({_gb(total)} in all).",
                     models=distinct)
        elif self.probe and sum(1 for e in entries if e) == 1:
            gone = distinct[entries.index(None)]
            self.add("residency", "warning", f"{gone} was unloaded to make room: the "
                     "completion and action models do not fit in memory together",
                     "Each switch between completion and an action reloads a model.",
                     "Use one model for both (leave `completion.model` empty), choose smaller "
                     "models, or give Ollama more memory (OLLAMA_MAX_LOADED_MODELS).",
                     models=distinct)
        else:
            disk = sum(self.infos[m].size_bytes or 0 for m in distinct if m in self.infos)
            unloading = keep_alive_seconds(self.settings.keep_alive_value) == 0
            why = ("keepAlive = 0 unloads each model right after its request" if unloading
                   else "they are not both loaded now")
            self.add("residency", "info", "Whether both models fit together is not known yet",
                     f"Not measurable: {why}. On disk they take {_gb(disk)} (loaded, add "
                     "their context cache).",
                     "" if unloading else "Run the doctor again after using both (the speed "
                     "probe loads both).", models=distinct)


def _issue_title(issue: ConfigIssue) -> str:
    message = issue.message
    where = issue.where()
    if message.startswith("Invalid setting"):
        return f"Invalid setting `{issue.key}` at {where}"
    if message.startswith("Unknown setting"):
        return f"Unknown setting `{issue.key}` at {where}"
    if message.startswith("Refused"):
        return f"Refused `{issue.key}` from a workspace file ({where})"
    if "not valid TOML" in message:
        return f"{where} is not valid TOML"
    return f"Config problem at {where}"


def _issue_fix(issue: ConfigIssue) -> str:
    message = issue.message
    where = issue.where()
    if message.startswith("Invalid setting"):
        return (f"Edit {where}: give `{issue.key}` a valid value (see docs/configuration.md); "
                "until then the value shown above is used.")
    if message.startswith("Unknown setting"):
        close = re.search(r"Did you mean `([^`]+)`", message)
        return (f"Rename it to `{close.group(1)}` in {where}." if close
                else f"Remove it from {where} (docs/configuration.md lists every setting).")
    if message.startswith("Refused"):
        return ("If you trust this repository, set `allowRemoteHostFromWorkspace = true` in "
                "your user config; otherwise remove the host from the workspace file.")
    if "not valid TOML" in message:
        return f"Fix the TOML syntax at {where}; the whole file is ignored until then."
    return f"Edit {where}."


def _first_upper(text: str) -> str:
    """`str.capitalize` would lowercase the model names inside."""
    return text[:1].upper() + text[1:]


def _gb(size: int | None) -> str:
    if not size:
        return "? GB"
    return f"{size / 1e9:.1f} GB"
