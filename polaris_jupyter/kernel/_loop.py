"""An asyncio loop on a daemon thread: the kernel-side home of the client, streams and engine.

Why a thread of its own: magics are synchronous code running *inside* the kernel's event loop,
so they could never wait for a coroutine scheduled on that same loop. Everything Polaris does in
a kernel (REST calls, the event WebSocket, the in-kernel engine, widget pumps, claimed tasks)
runs on this loop instead; the kernel's own loop is never blocked by it, and a magic that must
wait (``%polaris ask``) blocks only its own cell, like any running cell does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Runs one asyncio loop forever on a daemon thread; hands coroutines to it from any thread."""

    def __init__(self, name: str = "polaris-kernel") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; returns a thread-safe future."""
        if not self.running:
            coro.close()
            raise RuntimeError("the Polaris kernel loop is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = 60.0) -> T:
        """Run ``coro`` on the loop and wait for its result (from any thread but the loop's).

        Ctrl-C (a kernel interrupt) cancels the coroutine and re-raises ``KeyboardInterrupt``.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking Polaris call was made from code running on the Polaris loop (e.g. inside a task); "
                "await the async form instead, e.g. `await polaris.aio.trigger(...)` or `await ctx.trigger(...)`"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the Polaris request did not finish within {timeout_s:g} s") from None
        except KeyboardInterrupt:
            future.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` (run on this loop) from another event loop, e.g. a notebook cell."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel what still runs on the loop, stop it and join the thread."""
        if not self.running:
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout_s)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout_s + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
