"""Warm pools kept per function version, created on first use and evicted when idle."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import PoolClosedError
from .spec import FunctionSpec

if TYPE_CHECKING:
    from .pool import WorkerPool


def _default_factory() -> Callable[..., WorkerPool]:
    from .pool import WorkerPool

    return WorkerPool


class PoolManager:
    """Warm pools keyed by e.g. ``f"{function_arn}:{code_sha256}"``, evicted when idle.

    A pool is created (and started) on the first ``get`` for its key; a pool nobody used for
    ``idle_timeout_s`` and that has no caller waiting is closed by a background reaper. All pools
    are closed at interpreter exit.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 600.0,
        pool_factory: Callable[..., WorkerPool] | None = None,
        **pool_kwargs: Any,
    ) -> None:
        self._idle = idle_timeout_s
        self._factory = pool_factory or _default_factory()
        self._pool_kwargs = pool_kwargs
        self._lock = threading.Lock()
        self._pools: dict[str, WorkerPool] = {}
        self._creating: dict[str, threading.Event] = {}
        self._closed = False
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        _managers.add(self)

    def get(self, key: str, spec_factory: Callable[[], FunctionSpec]) -> WorkerPool:
        """The warm pool for ``key``; built from ``spec_factory()`` on first use."""
        while True:
            with self._lock:
                if self._closed:
                    raise PoolClosedError("the pool manager is closed")
                pool = self._pools.get(key)
                if pool is not None and not pool.stats()["closed"]:
                    pool.last_used = time.monotonic()
                    return pool
                pending = self._creating.get(key)
                if pending is None:
                    pending = threading.Event()
                    self._creating[key] = pending
                    break
            pending.wait()
        try:
            pool = self._factory(spec_factory(), **self._pool_kwargs)
            pool.start()
        except BaseException:
            with self._lock:
                self._creating.pop(key, None)
            pending.set()
            raise
        with self._lock:
            self._pools[key] = pool
            self._creating.pop(key, None)
            self._ensure_reaper()
        pending.set()
        return pool

    def discard(self, key: str) -> None:
        """Close and forget the pool for ``key`` (e.g. after its code was updated or deleted)."""
        with self._lock:
            pool = self._pools.pop(key, None)
        if pool is not None:
            pool.close()

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._pools)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        self._stop.set()
        for pool in pools:
            pool.close()

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Close pools idle for longer than the idle timeout; returns their keys."""
        now = time.monotonic() if now is None else now
        victims: list[tuple[str, WorkerPool]] = []
        with self._lock:
            for key, pool in list(self._pools.items()):
                if not pool.busy and now - pool.last_used >= self._idle:
                    victims.append((key, pool))
                    del self._pools[key]
        for _, pool in victims:
            pool.close()
        return [k for k, _ in victims]

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(
                target=self._reap_loop, name="airegistry-pool-reaper", daemon=True
            )
            self._reaper.start()

    def _reap_loop(self) -> None:
        interval = max(0.05, min(60.0, self._idle / 4))
        while not self._stop.wait(interval):
            self.evict_idle()
            with self._lock:
                if not self._pools:
                    self._reaper = None
                    return


_managers: weakref.WeakSet[PoolManager] = weakref.WeakSet()


@atexit.register
def _close_everything() -> None:
    for manager in list(_managers):
        with contextlib.suppress(Exception):
            manager.close_all()
