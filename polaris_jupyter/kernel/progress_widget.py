"""The notebook widget of a project generation: steps, a progress bar, files as they are written
(``%polaris generate``). The state and its reducer are ``_progress.ProgressState``, shared with
the text view."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from traitlets import Int, Unicode

from polaris_jupyter.kernel._progress import ProgressState
from polaris_jupyter.kernel._widget_base import BATCH_WINDOW_S, PolarisWidget, batched, bundle

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["UNSYNCED_SNAPSHOT_INTERVAL_S", "GenerationProgress"]

#: Until the browser asked for its first snapshot, the progress widget pushes whole snapshots
#: (a view that rendered while the kernel was busy must not miss the start), at most this often.
UNSYNCED_SNAPSHOT_INTERVAL_S = 0.5


class GenerationProgress(PolarisWidget):
    """Live progress of a project generation: steps, a progress bar, files as they are written."""

    _esm = bundle("progress-widget.js")
    _css = bundle("progress-widget.css")

    run_id = Unicode("").tag(sync=True)
    status = Unicode("QUEUED").tag(sync=True)
    done = Int(0).tag(sync=True)
    total = Int(0).tag(sync=True)

    def __init__(self, client: Polaris, run_id: str, **kwargs: Any) -> None:
        super().__init__(client, run_id=run_id, **kwargs)
        self.state = ProgressState(run_id)
        self._synced = False
        self._loaded = asyncio.Event()
        self._start_pump(self._pump_events())

    def __repr__(self) -> str:
        s = self.state
        return f"GenerationProgress({self.run_id}: {s.status}, {s.done}/{s.total} steps, {len(s.files)} files)"

    def _publish_traits(self) -> None:
        self.status, self.done, self.total = self.state.status, self.state.done, self.state.total

    async def _pump_events(self) -> None:
        backend = self._client.backend
        since = await backend.last_event_seq()
        await self.state.load(backend)
        self._loaded.set()
        self._publish_traits()
        self._push(self.state.snapshot())
        if self.state.final:
            return
        loop = asyncio.get_running_loop()
        pushed_at = loop.time()
        stream = backend.events(run_id=self.run_id, since=max(since, self.state.last_seq))
        async for batch in batched(stream, BATCH_WINDOW_S):
            fresh = [e for e in batch if self.state.apply(e)]
            self._publish_traits()
            if not self._synced:
                if self.state.final or loop.time() - pushed_at >= UNSYNCED_SNAPSHOT_INTERVAL_S:
                    self._push(self.state.snapshot())
                    pushed_at = loop.time()
            elif fresh:
                self._push({"kind": "events", "events": fresh})
            if self.state.final:
                return

    async def _do_refresh(self, args: dict[str, Any]) -> None:
        await asyncio.wait_for(self._loaded.wait(), 30)
        self._synced = True
        self._push(self.state.snapshot())
