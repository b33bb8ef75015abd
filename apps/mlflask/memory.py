"""Handing a retired model's memory back to the system.

Measured: without this, a worker's RSS grew with every redeploy, because glibc keeps freed model buffers in
per-thread arenas (one per thread that ever allocated: request threads, batchers, the warmer) and does not return
them. Two arenas are enough for a worker whose compute runs in ONNX Runtime's or torch's own pools, and a trim
after a model is retired returns the freed pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)
_M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # not glibc (musl, macOS): no-op


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (what MALLOC_ARENA_MAX does, but after start)."""
    libc = _libc()
    return bool(libc and libc.mallopt(_M_ARENA_MAX, arenas))


def release_freed() -> None:
    """Collect cycles, then give the pages of freed blocks back to the system."""
    gc.collect()
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
