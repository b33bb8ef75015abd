"""Handing a retired model's memory back to the system, and keeping the garbage collector off the request path.

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
    """Give the pages of freed blocks back to the system. No `gc.collect()`: a full collection holds the GIL for
    about 250 ms in a worker with a model loaded (measured), which every request would wait out; a retired model is
    freed by reference counting (the servable holds no cycle). ctypes releases the GIL during the trim."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)


def settle() -> None:
    """After loading a model, before it serves: collect once, then freeze what survives.

    Loading creates about a million long-lived objects. Left alone, the next full collection comes a few requests
    later and holds the GIL for ~250 ms (measured: the first 8 requests after job 4's deploy took 350 ms instead
    of 20). Frozen objects are skipped by later collections and still freed by reference counting when a model
    retires."""
    gc.collect()
    gc.freeze()
