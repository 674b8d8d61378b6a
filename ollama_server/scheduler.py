"""Which models are loaded, for how long, and who may run now: Ollama's scheduler, in miniature.

* A model is loaded by its first request (that request pays ``load_duration``) and stays loaded
  until ``keep_alive`` after its last request ends: 5 minutes by default, ``0`` = unload at once,
  negative = forever. Expiry is checked lazily (``/api/ps`` and the next request see it).
* Each model runs at most ``num_parallel`` requests at once (``None`` = unlimited); the others wait
  in a queue shared by all models. When ``max_queue`` requests already wait, the next one is refused
  (``QueueFull``, 503 in Ollama's words). A waiter whose client leaves is dropped from the queue.
"""
from __future__ import annotations

import asyncio
import collections
import time

DEFAULT_KEEP_ALIVE_NS = 5 * 60 * 1_000_000_000
MAX_QUEUE = 512


class QueueFull(Exception):
    """Ollama's ``ErrMaxQueue``."""

    text = "server busy, please try again.  maximum pending requests exceeded"


class Runner:
    """A loaded model: its session length, open requests and expiry (wall-clock ns)."""

    __slots__ = ("model", "session_ns", "refs", "expires_ns", "loaded_ns")

    def __init__(self, model, session_ns: int):
        self.model, self.session_ns, self.refs = model, session_ns, 0
        self.expires_ns = 0
        self.loaded_ns = time.time_ns()

    def expiry(self, now_ns: int) -> int:
        """When it unloads: ``session_ns`` from now while requests are open, else the set time."""
        if self.refs:
            return now_ns + self.session_ns   # Go's Time.Add: keep_alive < 0 lands in year 2318
        return self.expires_ns


class Scheduler:
    """Loaded runners, per-model parallelism and the shared wait queue."""

    def __init__(self, max_queue: int = MAX_QUEUE, on_unload=None):
        self.max_queue = max_queue
        self.on_unload = on_unload            # backend hook: free a model's memory
        self.runners: dict[str, Runner] = {}
        self.active: collections.Counter = collections.Counter()
        self.waiters: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.pending = 0
        self._loading: dict[str, asyncio.Future] = {}   # model name → its load task

    def reset(self) -> None:
        """Forget every loaded model (open requests finish normally)."""
        for name in list(self.runners):
            self._drop(name)

    def _drop(self, name: str) -> None:
        runner = self.runners.pop(name)
        if self.on_unload is not None:
            self.on_unload(runner.model)

    def loaded(self) -> list[Runner]:
        """Runners not yet expired, longest remaining first (as ``/api/ps`` lists them)."""
        now = time.time_ns()
        for name in [n for n, r in self.runners.items() if not r.refs and r.expires_ns <= now]:
            self._drop(name)
        return sorted(self.runners.values(), key=lambda r: -r.expiry(now))

    def is_loaded(self, name: str) -> bool:
        """Whether ``name`` is loaded and not expired."""
        return any(r.model.name == name for r in self.loaded())

    async def acquire(self, model, cancel: asyncio.Event) -> bool:
        """Wait for a slot of ``model``; ``False`` if ``cancel`` was set first. Raises ``QueueFull``."""
        limit = model.num_parallel
        if (limit is None or self.active[model.name] < limit) and not self.waiters[model.name]:
            self.active[model.name] += 1
            return True
        if self.pending >= self.max_queue:
            raise QueueFull(QueueFull.text)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[model.name].append(fut)
        self.pending += 1
        gone = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait((fut, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            self.pending -= 1
        if fut.done():
            return True                       # the slot was handed over by release()
        self.waiters[model.name].remove(fut)
        fut.cancel()
        return False

    def release(self, model) -> None:
        """Give the slot to the next waiter of this model, or free it."""
        queue = self.waiters[model.name]
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(True)
                return
        self.active[model.name] -= 1

    async def ensure_loaded(self, model, keep_alive_ns: int | None, load, cancel: asyncio.Event) -> int | None:
        """Load ``model`` unless loaded; returns ns spent waiting for it, ``None`` if ``cancel`` came first.

        ``load(stop)`` is a coroutine function doing the work. The load runs as a task of its own, so
        a client that leaves does not cut it short (Ollama's scheduler finishes a load nobody waits
        for) and concurrent requests for an unloaded model wait for the same one. Opens a reference
        on the runner, closed by ``finish``.
        """
        model = getattr(model, "base", model)   # a one-request script override loads its model
        runner = self.runners.get(model.name)
        waited = 0
        if runner is None or (not runner.refs and runner.expires_ns <= time.time_ns()) or runner.model is not model:
            t0 = time.perf_counter_ns()
            task = self._loading.get(model.name)
            if task is None:
                task = self._loading[model.name] = asyncio.ensure_future(self._load(model, load))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())   # retrieved, even if unwaited
            gone = asyncio.ensure_future(cancel.wait())
            try:
                await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
            if not task.done():
                return None
            task.result()                     # re-raises a failed load
            waited = max(1, time.perf_counter_ns() - t0)
        runner = self.runners[model.name]
        if keep_alive_ns is not None:
            runner.session_ns = keep_alive_ns
        runner.refs += 1
        return waited

    async def _load(self, model, load) -> None:
        try:
            await load(asyncio.Event())       # never set: a load is not cancelled by its requester
            self.runners[model.name] = Runner(model, DEFAULT_KEEP_ALIVE_NS)
            self.runners[model.name].expires_ns = time.time_ns() + DEFAULT_KEEP_ALIVE_NS
        finally:
            del self._loading[model.name]

    def finish(self, model) -> None:
        """Close a reference; the keep-alive clock starts when the last one closes."""
        runner = self.runners.get(model.name)
        if runner is None:
            return
        runner.refs = max(0, runner.refs - 1)
        if not runner.refs:
            if runner.session_ns == 0:
                self._drop(model.name)
            else:
                runner.expires_ns = time.time_ns() + runner.session_ns

    def unload(self, model) -> None:
        """``keep_alive: 0`` with no messages: unload now (or when open requests end)."""
        runner = self.runners.get(model.name)
        if runner is not None:
            runner.session_ns = 0
            if not runner.refs:
                self._drop(model.name)
