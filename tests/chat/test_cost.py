"""Tokens and estimated cost: the price table (unknown stays unknown, never 0), the cost on each
answer, and per-task sums in the runs metrics."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from polaris_jupyter.agent.pricing import BUILTIN_PRICES, PriceTable, check_price_table
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.testing import Response
from tests.chat.conftest import ChatEnv


def test_known_prices_give_a_cost_and_unknown_ones_none() -> None:
    table = PriceTable({"openai/scripted-1": {"inputPerMTok": 2, "outputPerMTok": 8}, "acme/*": {"inputPerMTok": 1, "outputPerMTok": 1}})
    assert table.cost_usd("openai", "scripted-1", 1_000, 500) == pytest.approx(0.006)
    assert table.cost_usd("acme", "any-model", 1_000_000, 0) == pytest.approx(1.0)
    assert table.cost_usd("openai", "no-such-model", 1_000, 500) is None
    assert table.cost_usd("openai", "scripted-1", None, 500) is None  # a count the server did not send
    assert table.cost_usd("bundled", "smollm", 10_000, 10_000) == 0.0  # on this machine: free, and known
    assert table.price("openai", "gpt-4o-mini") == BUILTIN_PRICES["openai/gpt-4o-mini"]
    assert BUILTIN_PRICES["openai/gpt-4o-mini"].source == "built-in estimate"
    override = PriceTable({"openai/gpt-4o-mini": {"inputPerMTok": 1, "outputPerMTok": 1}})
    assert override.price("openai", "gpt-4o-mini").source == "config"  # type: ignore[union-attr]
    assert table.with_cost(None, "openai", "scripted-1") is None
    assert table.with_cost({"promptTokens": 10, "completionTokens": 5}, "x", "y") == {
        "promptTokens": 10, "completionTokens": 5, "costUsd": None}


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ([], "must be an object"),
        ({"gpt-4o": {"inputPerMTok": 1, "outputPerMTok": 1}}, "'provider/model'"),
        ({"openai/x": 3}, "must be an object with"),
        ({"openai/x": {"inputPerMTok": 1}}, "outputPerMTok must be a number"),
        ({"openai/x": {"inputPerMTok": -1, "outputPerMTok": 1}}, "0 or more"),
        ({"openai/x": {"inputPerMTok": True, "outputPerMTok": 1}}, "inputPerMTok must be a number"),
        ({"openai/x": {"inputPerMTok": 1, "outputPerMTok": 1, "cached": 1}}, "unknown field"),
    ],
)
def test_a_bad_price_table_is_refused_with_the_entry(table: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_price_table(table)
    with pytest.raises(TraitError):
        PolarisConfig(prices=table)


@pytest.mark.asyncio
async def test_each_answer_carries_tokens_and_cost_and_metrics_sum_them(chat_env: ChatEnv) -> None:
    models = chat_env.runtime.models
    models.prices = PriceTable({"openai/scripted-1": {"inputPerMTok": 3, "outputPerMTok": 15}})
    chat_env.model.enqueue(
        Response(text="priced", usage={"prompt_tokens": 2_000, "completion_tokens": 400}),
        Response(text="no price", usage={"prompt_tokens": 100, "completion_tokens": 10}),
        Response(text="no usage", send_usage=False),
    )
    priced = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(priced.id, "one")
    await chat_env.settle(run_id)
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and stored.usage is not None
    assert stored.usage["promptTokens"] == 2_000 and stored.usage["completionTokens"] == 400
    assert stored.usage["costUsd"] == pytest.approx((2_000 * 3 + 400 * 15) / 1e6)
    [final] = [d for d in chat_env.of("message.status", message.id) if d["final"]]
    assert final["usage"]["costUsd"] == pytest.approx(0.012)  # the live event says it too

    unpriced = await chat_env.chat.create_conversation()
    await chat_env.runtime.api.dispatch("update_conversation", path={"conversationId": unpriced.id},
                                        body={"model": "mystery-model"})
    second, run2 = await chat_env.chat.post_message(unpriced.id, "two")
    await chat_env.settle(run2)
    stored2 = await chat_env.chat.store.get_message(second.id)
    assert stored2 is not None and stored2.model == "mystery-model"
    assert stored2.usage == {"promptTokens": 100, "completionTokens": 10, "totalTokens": 110, "costUsd": None}

    third, run3 = await chat_env.chat.post_message(priced.id, "three")
    await chat_env.settle(run3)
    stored3 = await chat_env.chat.store.get_message(third.id)
    assert stored3 is not None and stored3.usage is None  # no usage reported: unknown, not zero

    metrics = (await chat_env.runtime.api.dispatch("metrics")).body
    [chat] = [t for t in metrics["tasks"] if t["taskId"] == "process-message"]
    assert chat["usage"] == {"runs": 2, "promptTokens": 2_100, "completionTokens": 410,
                             "costUsd": pytest.approx(0.012), "unpricedRuns": 1}
    others = [t for t in metrics["tasks"] if t["taskId"] != "process-message"]
    assert all(t["usage"] is None for t in others)
