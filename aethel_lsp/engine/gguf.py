"""Read a GGUF file's header: its metadata and its exact parameter count, without loading it.

The embedded engine must describe models (`list_models`, `show`) that it has not loaded —
the shipped SmolLM2 file and every model in Ollama's local store — and loading a
multi-gigabyte model just to print its context length would be absurd. The header of a
GGUF file holds everything `ModelInfo` needs: the architecture, the context length, the
file type (quantization), and the shape of every tensor, whose product summed over the
tensors is the exact parameter count (the same number Ollama reports as
`general.parameter_count`). Pure stdlib, so it works without xllamacpp.

Format (little-endian): magic ``GGUF``, u32 version, u64 tensor count, u64 metadata
count, then the metadata key/value pairs, then one info record per tensor.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

GGUF_MAGIC = b"GGUF"

# llama.h: enum llama_ftype (LLAMA_FTYPE_MOSTLY_*), the value of `general.file_type`.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}

# GGUF value types: (struct format, size) for the fixed-size scalars.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),  # uint8
    1: ("<b", 1),  # int8
    2: ("<H", 2),  # uint16
    3: ("<h", 2),  # int16
    4: ("<I", 4),  # uint32
    5: ("<i", 4),  # int32
    6: ("<f", 4),  # float32
    7: ("<?", 1),  # bool
    10: ("<Q", 8),  # uint64
    11: ("<q", 8),  # int64
    12: ("<d", 8),  # float64
}
_STRING = 8
_ARRAY = 9

GgufScalar = int | float | bool | str


class GgufError(ValueError):
    """The file is not a GGUF file, or its header is truncated or corrupt."""


@dataclass(frozen=True)
class GgufArray:
    """An array value; only its element type and length are kept (vocabularies are huge)."""

    item_type: int
    length: int


GgufValue = GgufScalar | GgufArray


@dataclass(frozen=True)
class GgufInfo:
    """What the header of one GGUF file says about the model inside it."""

    path: Path
    version: int
    size_bytes: int
    tensor_count: int
    parameter_count: int
    metadata: dict[str, GgufValue] = field(default_factory=dict)

    def text(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def integer(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value

    @property
    def architecture(self) -> str | None:
        return self.text("general.architecture")

    @property
    def name(self) -> str | None:
        return self.text("general.name")

    @property
    def context_length(self) -> int | None:
        arch = self.architecture
        return self.integer(f"{arch}.context_length") if arch else None

    @property
    def quantization(self) -> str | None:
        file_type = self.integer("general.file_type")
        if file_type is None:
            return None
        return FILE_TYPES.get(file_type, f"file type {file_type}")

    @property
    def chat_template(self) -> str | None:
        return self.text("tokenizer.chat_template")

    @property
    def fim_tokens(self) -> tuple[int, int, int] | None:
        """The (prefix, suffix, middle) token ids of a fill-in-the-middle vocabulary.

        Code models such as Qwen2.5-Coder, StarCoder or CodeLlama declare them (current
        GGUF names `fim_pre/suf/mid`, older ones `prefix/suffix/middle`); a model
        without all three cannot fill in the middle.
        """
        for names in (("fim_pre", "fim_suf", "fim_mid"), ("prefix", "suffix", "middle")):
            ids = [self.integer(f"tokenizer.ggml.{name}_token_id") for name in names]
            if all(i is not None and i >= 0 for i in ids):
                return (ids[0] or 0, ids[1] or 0, ids[2] or 0)
        return None

    @property
    def has_fill_in_the_middle(self) -> bool:
        return self.fim_tokens is not None


def parameter_size(count: int) -> str:
    """Ollama's human form of a parameter count: 134515008 -> "134.52M", 7.6e9 -> "7.6B"."""
    for threshold, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if count >= threshold:
            return f"{count / threshold:.2f}".rstrip("0").rstrip(".") + suffix
    return str(count)


def is_gguf(path: Path) -> bool:
    """Cheap check of the magic bytes (Ollama's store also holds licences and templates)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf_info(path: str | Path) -> GgufInfo:
    """Parse the header of `path`; cached per (path, size, mtime) since files are immutable."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise GgufError(f"Cannot read the model file {resolved}: {exc.strerror}.") from exc
    return _read_cached(resolved, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _read_cached(path: Path, size: int, mtime_ns: int) -> GgufInfo:
    del mtime_ns  # part of the cache key only
    try:
        with path.open("rb", buffering=1 << 16) as handle:
            return _parse(handle, path, size)
    except OSError as exc:
        raise GgufError(f"Cannot read the model file {path}: {exc.strerror}.") from exc


def _parse(handle: BinaryIO, path: Path, size: int) -> GgufInfo:
    reader = _Reader(handle, path, size)
    if reader.take(4) != GGUF_MAGIC:
        raise GgufError(f"{path} is not a GGUF model file (wrong magic bytes).")
    version = reader.scalar(4)
    if not isinstance(version, int) or version not in (2, 3):
        raise GgufError(f"{path} uses GGUF version {version}, which this reader does not know.")
    tensor_count = reader.u64()
    metadata_count = reader.u64()
    metadata: dict[str, GgufValue] = {}
    for _ in range(metadata_count):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    parameters = 0
    for _ in range(tensor_count):
        reader.string()  # tensor name
        dims = [reader.u64() for _ in range(reader.u32())]
        reader.u32()  # ggml type
        reader.u64()  # data offset
        count = 1
        for dim in dims:
            count *= dim
        parameters += count
    return GgufInfo(path, version, size, tensor_count, parameters, metadata)


class _Reader:
    """Sequential little-endian reads that turn a short read into a `GgufError`."""

    def __init__(self, handle: BinaryIO, path: Path, size: int):
        self._handle = handle
        self._path = path
        self._size = size

    def take(self, count: int) -> bytes:
        # A corrupt length (2**63) must not become a read that allocates that much.
        if count > self._size - self._handle.tell():
            raise GgufError(f"{self._path} is truncated: its GGUF header ends too early.")
        data = self._handle.read(count)
        if len(data) != count:
            raise GgufError(f"{self._path} is truncated: its GGUF header ends too early.")
        return data

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack("<Q", self.take(8))[0]
        return value

    def string(self) -> str:
        return self.take(self.u64()).decode("utf-8", errors="replace")

    def scalar(self, value_type: int) -> GgufScalar:
        fmt, width = _SCALARS[value_type]
        value: GgufScalar = struct.unpack(fmt, self.take(width))[0]
        return value

    def value(self, value_type: int) -> GgufValue:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type = self.u32()
            length = self.u64()
            self._skip_items(item_type, length)
            return GgufArray(item_type, length)
        if value_type not in _SCALARS:
            raise GgufError(f"{self._path} has an unknown GGUF value type {value_type}.")
        return self.scalar(value_type)

    def _skip_items(self, item_type: int, length: int) -> None:
        if item_type in _SCALARS:
            self._handle.seek(_SCALARS[item_type][1] * length, 1)
            return
        for _ in range(length):
            self.value(item_type)
