"""Schema per user: on one shared PostgreSQL database, a user's engine cannot list, read or
cancel another user's runs, nor see their events."""

from __future__ import annotations

from typing import Any

import pytest

from polaris_jupyter.jobs import (
    RunContext,
    RunFilter,
    RunNotFound,
    TaskRegistry,
    TriggerOptions,
    list_runs,
    task,
)


@pytest.mark.asyncio
async def test_users_in_their_own_schemas_do_not_see_each_other(pg_url: str) -> None:
    from polaris_jupyter.jobs.pg import PgEngine

    registry = TaskRegistry()

    @task(id="later", registry=registry)
    async def later(payload: Any, ctx: RunContext) -> None:
        return None

    ada = PgEngine(pg_url, registry, schema="polaris_ada_iso")
    await ada.start()
    try:
        handle = await ada.trigger("later", None, TriggerOptions(delay_s=3600))
        # The bus hands a committed batch out asynchronously when a fetch is in flight; the
        # store's own maximum is the number that is on disk once trigger() has returned.
        ada_seq = await ada.store.max_event_seq()
    finally:
        await ada.stop()
    bob = PgEngine(pg_url, registry, schema="polaris_bob_iso")
    await bob.start()
    try:
        with pytest.raises(RunNotFound):
            await bob.get_run(handle.id)
        with pytest.raises(RunNotFound):
            await bob.cancel(handle.id)
        assert (await list_runs(bob.store, RunFilter(), None, 50)).data == []
        assert ada_seq > 0
        assert await bob.store.events_since(0) == []
        assert bob.bus.last_seq == 0 and await bob.store.max_event_seq() == 0
    finally:
        await bob.stop()
    ada = PgEngine(pg_url, registry, schema="polaris_ada_iso")
    await ada.start()
    try:
        assert (await ada.get_run(handle.id)).status.value == "DELAYED"
        assert (await ada.cancel(handle.id)).status.value == "CANCELED"
    finally:
        await ada.stop()
