"""Model commands: status, throughput, list, select, pull (shapes shared with the CLI)."""

from __future__ import annotations

import contextlib
from typing import Any

from aethel_lsp.config.providers import split_model
from aethel_lsp.engine import EngineError
from aethel_lsp.engine.factory import unbuilt_status
from aethel_lsp.engine.recommend import install_advice
from aethel_lsp.engine.types import EngineKind
from aethel_lsp.lsp.handlers import Args, UserError, command, require_str
from aethel_lsp.lsp.progress import Progress
from aethel_lsp.lsp.session import TASKS, AethelServer, Task, engine_config
from aethel_lsp.protocol import (
    CMD_LIST_MODELS,
    CMD_MODEL_STATUS,
    CMD_PULL_MODEL,
    CMD_SELECT_MODEL,
    CMD_THROUGHPUT,
)


def register(server: AethelServer) -> None:
    @command(server, CMD_MODEL_STATUS)
    async def model_status(ls: AethelServer, args: Args) -> dict[str, Any]:
        status = await ls.refresh_engine_state()
        if status is None:  # refresh_engine_state reported the failure
            try:
                status = await ls.engine.status()
            except EngineError as exc:  # no engine to ask (e.g. a missing embedded.modelPath)
                status = unbuilt_status(engine_config(ls.session.settings), exc)
        out = status.to_json()
        if status.available:
            # The same model objects as aethel.listModels (show is cached per model).
            with contextlib.suppress(EngineError):
                detailed = await ls.engine.list_models_detailed()
                out["models"] = [m.to_json() for m in detailed]
        from aethel_lsp.engine.providers.router import router_of  # loaded at first use

        try:
            router = router_of(ls.engine)
        except EngineError:  # no engine built, so no providers behind it
            router = None
        out["providers"] = await router.providers_json(check=False) if router else []
        out["activeModel"] = ls.session.model_for("chat") or None
        out["activeModels"] = {task: ls.session.model_for(task) or None for task in TASKS}
        return out

    @command(server, CMD_THROUGHPUT)
    async def throughput(ls: AethelServer, args: Args) -> dict[str, Any]:
        last = ls.session.last_metrics or ls.engine.last_metrics
        stats = ls.stats
        usage = stats.models() if stats is not None else {}
        models = {name: one.to_json() for name, one in usage.items()}
        total = stats.total_cost_usd() if stats is not None else None
        return {"last": last.to_json() if last else None, "models": models,
                "totalCostUsd": None if total is None else round(total, 6)}

    @command(server, CMD_LIST_MODELS)
    async def list_models(ls: AethelServer, args: Args) -> list[dict[str, Any]]:
        models = await ls.engine.list_models_detailed()
        ls.engine_succeeded()
        return [m.to_json() for m in models]

    @command(server, CMD_SELECT_MODEL)
    async def select_model(ls: AethelServer, args: Args) -> dict[str, Any]:
        model = require_str(args, "model").strip()
        task = _task(args)
        provider, _ = split_model(model, ls.session.settings.providers)
        if provider is not None:  # `provider/model`: the provider must serve it
            await ls.engine.show(model)
            ls.session.selected_models[task] = model
            ls.publish_status()
            ls.log(f"Model for {task}: {model} (provider {provider}).")
            return {"activeModel": model, "task": task}
        installed = [m.name for m in await ls.engine.list_models()]
        name = _match(model, installed)
        if name is None:
            listed = ", ".join(installed) or "none"
            raise UserError(
                f"Unknown model {model!r}: it is not installed at {ls.engine.host} "
                f"(installed: {listed}). Install it ({_install(ls.engine.kind, model)}), "
                "then select it again."
            )
        ls.session.selected_models[task] = name
        ls.publish_status()
        ls.log(f"Model for {task}: {name}.")
        return {"activeModel": name, "task": task}

    @command(server, CMD_PULL_MODEL)
    async def pull_model(ls: AethelServer, args: Args) -> dict[str, Any]:
        model = require_str(args, "model").strip()
        last = ""
        async with Progress(
            ls, f"Pulling {model}", enabled=ls.session.client.work_done_progress, budget=None
        ) as progress:
            async for step in ls.engine.pull(model):
                last = step.status
                progress.status(step.status, step.percentage)
            progress.summary = f"{model}: {last or 'success'}"
        ls.engine_succeeded()
        return {"model": model, "status": "success" if last in ("", "success") else last}


def _task(args: Args) -> Task:
    raw = args.get("task") or "chat"
    for task in TASKS:
        if raw == task:
            return task
    raise UserError(f"Argument `task` must be one of {', '.join(TASKS)}; got {raw!r}.")


def _match(model: str, installed: list[str]) -> str | None:
    """`llama3.2` names `llama3.2:latest`; exact names win."""
    if model in installed:
        return model
    if ":" not in model and f"{model}:latest" in installed:
        return f"{model}:latest"
    return None


def _install(kind: EngineKind, model: str) -> str:
    """Ollama downloads models (also through aethel.pullModel); other engines cannot."""
    advice = install_advice(kind, model)
    return f"{advice} or the aethel.pullModel command" if kind == "ollama" else advice
