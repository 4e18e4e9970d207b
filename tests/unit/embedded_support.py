"""Helpers shared by the embedded-engine tests: a tiny GGUF writer and a fake Ollama store.

The writer produces valid GGUF headers (no tensor data is needed to read a header), so
the GGUF reader and the Ollama store scan are tested without xllamacpp or any model
download; the real SmolLM2 file is used where it was fetched (`aethel-lsp pull --engine
embedded`, or `AETHEL_LSP_MODELS_DIR` pointing at a directory that holds it).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from aethel_lsp.engine.embedded import default_model_path
from aethel_lsp.engine.llama_server import xllamacpp_installed

Value = str | int | float | bool | list[str] | list[int]


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(value: Value) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _string(value)
    if all(isinstance(item, str) for item in value):
        items = b"".join(_string(str(item)) for item in value)
        return struct.pack("<IIQ", 9, 8, len(value)) + items
    items = b"".join(struct.pack("<i", int(item)) for item in value)
    return struct.pack("<IIQ", 9, 5, len(value)) + items


def write_gguf(
    path: Path, metadata: dict[str, Value], tensors: dict[str, tuple[int, ...]]
) -> Path:
    """A GGUF v3 header with `metadata` and tensor infos of the given shapes."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, value in metadata.items():
        out += _string(key) + _value(value)
    for name, dims in tensors.items():
        out += _string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", dim) for dim in dims)
        out += struct.pack("<IQ", 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


TINY_METADATA: dict[str, Value] = {
    "general.architecture": "llama",
    "general.name": "Tiny",
    "general.file_type": 15,
    "llama.context_length": 2048,
    "tokenizer.ggml.tokens": ["<s>", "</s>", "a", "b"],
    "tokenizer.ggml.token_type": [1, 1, 1, 1],
    "tokenizer.ggml.add_bos_token": True,
    "llama.rope.freq_base": 10000.0,
}
TINY_TENSORS = {"token_embd.weight": (4, 8), "output_norm.weight": (8,)}  # 40 parameters


def add_stored_model(root: Path, name: str, tag: str, blob_source: Path, *,
                     namespace: str = "library", registry: str = "registry.ollama.ai",
                     link: bool = False) -> Path:
    """Put a model into a fake Ollama store at `root`, like `ollama pull` lays it out."""
    digest = hashlib.sha256(f"{registry}/{namespace}/{name}:{tag}".encode()).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.symlink(blob_source, blob)
    else:
        blob.write_bytes(blob_source.read_bytes())
    manifest = root / "manifests" / registry / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model",
             "digest": f"sha256:{digest}", "size": blob.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.license",
             "digest": "sha256:" + "1" * 64, "size": 5},
        ],
    }))
    return blob


SHIPPED_MODEL = default_model_path()
XLLAMACPP = xllamacpp_installed()
requires_shipped_model = pytest.mark.skipif(
    SHIPPED_MODEL is None,
    reason="the SmolLM2 model is not fetched: aethel-lsp pull --engine embedded",
)
requires_embedded = pytest.mark.skipif(
    SHIPPED_MODEL is None or not XLLAMACPP,
    reason="the embedded engine needs xllamacpp and the SmolLM2 model: "
    "pip install 'aethel-lsp[embedded]' && aethel-lsp pull --engine embedded",
)


def model_env() -> dict[str, str]:
    """Lets a server subprocess with an isolated HOME find the fetched model."""
    return {"AETHEL_LSP_MODELS_DIR": str(SHIPPED_MODEL.parent)} if SHIPPED_MODEL else {}
