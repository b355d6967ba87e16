"""Shared helpers for bench/store_*: a scratch dir on the store's filesystem, timing, output."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def scratch() -> Path:
    """A fresh directory under $PIPEX_BENCH_DIR (default /tmp; same filesystem as /work here)."""
    return Path(tempfile.mkdtemp(prefix="pipex-bench-", dir=os.environ.get("PIPEX_BENCH_DIR", "/tmp")))


def timed(func: Callable[[], object]) -> float:
    """Seconds ``func`` takes (wall clock)."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def emit(name: str, value: float | int | str) -> None:
    """Print one ``name: value`` line."""
    if isinstance(value, float):
        value = f"{value:.4f}"
    print(f"{name}: {value}", flush=True)
