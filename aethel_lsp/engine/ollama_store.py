"""The models Ollama has already downloaded, read straight from its store on disk.

Where Ollama is installed but not running, its store still holds every model the user
pulled, as plain GGUF files: `manifests/<registry>/<namespace>/<model>/<tag>` is a JSON
manifest whose layer with media type `application/vnd.ollama.image.model` names a blob
`blobs/sha256-<hex>`, and that blob is the GGUF file llama.cpp loads. The embedded engine
offers these models under Ollama's own names (`llama3:8b`, `user/model:tag`), so a
configured `model` keeps working when Ollama is down. Pure stdlib; no llama-cpp needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from aethel_lsp.engine.gguf import is_gguf

MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEFAULT_REGISTRY = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
# Where `ollama serve` keeps models: per user, and for the Linux systemd service.
DEFAULT_ROOTS = (Path("~/.ollama/models"), Path("/usr/share/ollama/.ollama/models"))


@dataclass(frozen=True)
class StoredModel:
    """One model of Ollama's store: its Ollama name and the GGUF blob that holds it."""

    name: str
    gguf_path: Path
    size: int


def ollama_store_roots(root: str | Path | None = None) -> list[Path]:
    """Where to look: `root` if given, else `$OLLAMA_MODELS`, else Ollama's default places."""
    if root is not None:
        return [Path(root).expanduser()]
    configured = os.environ.get("OLLAMA_MODELS", "").strip()
    if configured:
        return [Path(configured).expanduser()]
    return [path.expanduser() for path in DEFAULT_ROOTS]


def ollama_store_models(root: str | Path | None = None) -> list[StoredModel]:
    """Every model in the store whose model layer is a readable GGUF blob, sorted by name.

    Never raises: a missing store is an empty list, and a broken manifest (bad JSON, no
    model layer, missing or non-GGUF blob) is skipped, because one half-pulled model must
    not hide the others.
    """
    found: dict[str, StoredModel] = {}
    for store in ollama_store_roots(root):
        manifests = store / "manifests"
        if not manifests.is_dir():
            continue
        for manifest in sorted(manifests.rglob("*")):
            model = _read_manifest(store, manifests, manifest)
            if model is not None and model.name not in found:
                found[model.name] = model
    return sorted(found.values(), key=lambda model: model.name)


def find_stored_model(name: str, root: str | Path | None = None) -> StoredModel | None:
    """The stored model called `name`, accepting Ollama's shorthand (`llama3` = `llama3:latest`)."""
    wanted = canonical_name(name)
    for model in ollama_store_models(root):
        if canonical_name(model.name) == wanted:
            return model
    return None


def canonical_name(name: str) -> str:
    """`llama3` -> `llama3:latest`, `library/llama3:8b` -> `llama3:8b` (Ollama's equivalences)."""
    name = name.strip()
    prefix = f"{DEFAULT_REGISTRY}/"
    if name.startswith(prefix):
        name = name[len(prefix) :]
    if name.startswith(f"{DEFAULT_NAMESPACE}/"):
        name = name[len(DEFAULT_NAMESPACE) + 1 :]
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _read_manifest(store: Path, manifests: Path, manifest: Path) -> StoredModel | None:
    parts = manifest.relative_to(manifests).parts
    if len(parts) != 4 or not manifest.is_file():
        return None
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list):
        return None
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != MODEL_MEDIA_TYPE:
            continue
        digest = layer.get("digest")
        if not isinstance(digest, str) or ":" not in digest:
            return None
        blob = store / "blobs" / digest.replace(":", "-", 1)
        if not is_gguf(blob):
            return None
        size = layer.get("size")
        if not isinstance(size, int):
            size = blob.stat().st_size
        return StoredModel(_display_name(*parts), blob, size)
    return None


def _display_name(registry: str, namespace: str, model: str, tag: str) -> str:
    """The name `ollama list` shows: the default registry and namespace are left out."""
    if registry == DEFAULT_REGISTRY and namespace == DEFAULT_NAMESPACE:
        return f"{model}:{tag}"
    if registry == DEFAULT_REGISTRY:
        return f"{namespace}/{model}:{tag}"
    return f"{registry}/{namespace}/{model}:{tag}"
