"""The state of a generation run as the progress widget shows it, rebuilt from its events.

Mirrors ``ProgressView.applyEvent`` of the JavaScript renderer, so a snapshot built here and the
events applied there agree: steps with their state, files with a preview, progress, log lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polaris_jupyter.kernel._base import FINAL_RUN_STATUSES, PolarisError

if TYPE_CHECKING:
    from polaris_jupyter.kernel._base import Backend

__all__ = ["ProgressState"]

MAX_LOG_LINES = 200
GENERATION_EVENT_TYPES = frozenset(
    {"generation.step", "generation.file", "generation.progress", "generation.info", "generation.error", "run.status"}
)


@dataclass
class ProgressState:
    run_id: str
    status: str = "QUEUED"
    steps: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0
    total: int = 0
    log: list[dict[str, str]] = field(default_factory=list)
    last_seq: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL_RUN_STATUSES

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": "snapshot",
            "runId": self.run_id,
            "status": self.status,
            "steps": [dict(s) for s in self.steps],
            "files": [dict(f) for f in self.files],
            "done": self.done,
            "total": self.total or len(self.steps),
            "log": list(self.log[-MAX_LOG_LINES:]),
        }

    async def load(self, backend: Backend) -> None:
        """The plan (if the kind is known), the run's status and every event stored so far."""
        run = await backend.run(self.run_id)
        self.status = str(run.get("status") or self.status)
        raw = run.get("payload")
        payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = payload.get("kind")
        if kind and not self.steps:
            plan = payload.get("plan") if isinstance(payload.get("plan"), dict) else None
            if plan is None:
                try:
                    kinds = await backend.project_kinds()
                except PolarisError:
                    kinds = []
                plan = next((k for k in kinds if k.get("id") == kind), None)
            for step in (plan or {}).get("steps") or []:
                self.steps.append({"id": step["id"], "state": "pending", "dependsOn": list(step.get("dependsOn") or [])})
            self.total = len(self.steps)
        since = 0
        while True:
            page = await backend.run_events(self.run_id, since)
            events = page.get("events") or []
            for event in events:
                self.apply(event)
            if len(events) < 10_000:
                break
            since = int(page.get("lastSeq") or since)
        final = await backend.run(self.run_id)
        self.status = str(final.get("status") or self.status)

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event of this run; False for duplicates and unrelated events."""
        seq = int(event.get("seq") or 0)
        if seq and seq <= self.last_seq:
            return False
        if event.get("runId") not in (None, self.run_id) or event.get("type") not in GENERATION_EVENT_TYPES:
            return False
        self.last_seq = max(self.last_seq, seq)
        data = event.get("data") or {}
        kind = event["type"]
        if kind == "generation.step":
            step_id = str(data.get("stepId") or "")
            if not step_id:
                return False
            step = next((s for s in self.steps if s["id"] == step_id), None)
            if step is None:
                step = {"id": step_id, "state": "pending"}
                self.steps.append(step)
                self.total = max(self.total, len(self.steps))
            step["state"] = data.get("state") or "started"
            if data.get("durationMs") is not None:
                step["durationMs"] = data["durationMs"]
        elif kind == "generation.file":
            path = str(data.get("path") or "")
            if not path:
                return False
            existing = next((f for f in self.files if f["path"] == path), None)
            if existing is None:
                self.files.append({"path": path, "preview": data.get("preview") or ""})
            else:
                existing["preview"] = data.get("preview") or ""
        elif kind == "generation.progress":
            self.done = int(data.get("done", self.done) or 0)
            self.total = int(data.get("total", self.total) or 0)
        elif kind in ("generation.info", "generation.error"):
            level = "error" if kind == "generation.error" else "info"
            self.log = [*self.log, {"level": level, "message": str(data.get("message") or "")}][-MAX_LOG_LINES:]
        elif kind == "run.status":
            self.status = str(data.get("status") or self.status)
            error = data.get("error")
            if isinstance(error, dict) and error.get("message"):
                self.log = [*self.log, {"level": "error", "message": str(error["message"])}][-MAX_LOG_LINES:]
        return True
