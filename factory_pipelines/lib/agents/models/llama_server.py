"""llama.cpp's own OpenAI-compatible HTTP server over a GGUF, in process, on a free loopback port.

What the factory's OpenAI-compatible provider talks to when no remote endpoint is at hand: the same GGUF the
local provider runs, behind `/v1/chat/completions`, so provider parity and the routing cascade are tested
over real HTTP with no network (the production profile points `base_url` at vLLM or a hosted API instead).
"""

from __future__ import annotations

import gc
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the OS picks it; a race with another process is possible but rare)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    """A running server; `base_url` is what a manifest's `base_url` takes (it ends in /v1). `close()` stops it
    (xllamacpp stops the server when the object is freed)."""

    model_path: Path
    port: int
    _server: Any = field(repr=False, default=None)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        self._server = None
        gc.collect()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_gguf(model_path: Path, *, n_ctx: int = 2048, threads: int = 2, port: int | None = None) -> LlamaServer:
    """Start llama.cpp's HTTP server over `model_path` on the loopback interface (one slot, quiet logs); it
    answers once this returns (the model is loaded first, about 2 s for Gemma 3 270M)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.verbosity = -1
    params.port = port or free_port()
    params.hostnames = [LOOPBACK]
    return LlamaServer(Path(model_path), params.port, xllamacpp.Server(params))
