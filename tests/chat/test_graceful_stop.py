"""A server stopped gracefully mid-answer (SIGTERM, `jupyter server stop`) leaves the turn as a
kill -9 would: the message is not marked cancelled, the run is interrupted, and the next server
answers it to the end. Only a user's Stop (or a cancelled run) cancels a message."""

from __future__ import annotations

import pytest

from polaris_jupyter.chat.store import MessageStatus
from polaris_jupyter.jobs import RunStatus, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.testing import Response
from tests.chat.conftest import ChatEnv, until

pytestmark = pytest.mark.asyncio


async def test_a_graceful_stop_mid_answer_is_answered_after_the_restart(chat_env: ChatEnv) -> None:
    slow = Response(text=" ".join(f"word{i}" for i in range(400)), delay_s=0.02)
    chat_env.model.enqueue(slow, Response(text="The whole answer, after the restart."))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "write a long answer")
    await until(lambda: any(d.get("delta") for d in chat_env.of("message.delta")))
    await chat_env.runtime.stop()
    assert chat_env.final_statuses(message.id) == []  # not "cancelled": nobody stopped it

    again = PolarisRuntime(chat_env.runtime.config, root_dir=chat_env.runtime.root_dir, registry=TaskRegistry(),
                           clock=chat_env.clock)
    await again.start()
    try:
        final = await again.engine.wait_for(run_id, timeout_s=30)
        assert final.status is RunStatus.COMPLETED, final.error
        assert final.output and "skipped" not in final.output
        answered = await again.chat.store.get_message(message.id)
        assert answered is not None
        assert answered.status is MessageStatus.COMPLETED
        assert answered.content == "The whole answer, after the restart."  # the new attempt's, once
    finally:
        await again.stop()
