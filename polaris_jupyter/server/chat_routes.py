"""REST routes for conversations, messages, model config and reverting a run's file edits."""

from __future__ import annotations

from tornado import web

from polaris_jupyter.chat.service import ChatService
from polaris_jupyter.server.app import EXTRA_HANDLERS
from polaris_jupyter.server.base import ApiError, PolarisHandler
from polaris_jupyter.server.openapi import add_paths, add_schemas, errors, json_body, ok, path_param, ref

__all__ = ["CHAT_HANDLERS"]


class ChatHandler(PolarisHandler):
    @property
    def chat(self) -> ChatService:
        service = self.runtime.services.get("chat")
        if service is None:
            raise ApiError(503, "chat is not available in this server")
        return service  # type: ignore[no-any-return]


class ConversationsHandler(ChatHandler):
    @web.authenticated
    async def get(self) -> None:
        conversations = await self.chat.store.list_conversations()
        self.send_json({"data": [c.to_json() for c in conversations]})

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body(required=False)
        title = body.get("title")
        if title is not None and not isinstance(title, str):
            raise ApiError(400, "title must be a string")
        conversation = await self.chat.create_conversation(title)
        self.send_json(conversation.to_json(), status=201)


class ConversationHandler(ChatHandler):
    @web.authenticated
    async def get(self, conversation_id: str) -> None:
        self.send_json((await self.chat.conversation(conversation_id)).to_json())

    @web.authenticated
    async def patch(self, conversation_id: str) -> None:
        body = self.json_body()
        self.send_json((await self.chat.rename(conversation_id, body.get("title"))).to_json())

    @web.authenticated
    async def delete(self, conversation_id: str) -> None:
        await self.chat.delete(conversation_id)
        self.set_status(204)
        self.finish()


class MessagesHandler(ChatHandler):
    @web.authenticated
    async def get(self, conversation_id: str) -> None:
        await self.chat.conversation(conversation_id)
        self.send_json({"data": await self.chat.messages_json(conversation_id)})

    @web.authenticated
    async def post(self, conversation_id: str) -> None:
        body = self.json_body()
        message, run_id = await self.chat.post_message(conversation_id, body.get("content"), body.get("context"))
        self.send_json({"messageId": message.id, "runId": run_id}, status=202)


class MessageCancelHandler(ChatHandler):
    @web.authenticated
    async def post(self, message_id: str) -> None:
        self.send_json((await self.chat.cancel_message(message_id)).to_json())


class MessageRetryHandler(ChatHandler):
    @web.authenticated
    async def post(self, message_id: str) -> None:
        message, run_id = await self.chat.retry_message(message_id)
        self.send_json({"messageId": message.id, "runId": run_id}, status=202)


class RevertHandler(ChatHandler):
    @web.authenticated
    async def post(self, run_id: str) -> None:
        force = self.json_body(required=False).get("force", False)
        if not isinstance(force, bool):
            raise ApiError(400, "force must be true or false")
        self.send_json({"reverted": await self.chat.revert_run(run_id, force=force)})


class EditsHandler(ChatHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        await self.runtime.engine.get_run(run_id)
        self.send_json({"edits": await self.chat.journal().edits_for_run(run_id)})


class ConfigHandler(ChatHandler):
    @web.authenticated
    async def get(self) -> None:
        await self._send_config()

    async def _send_config(self) -> None:
        self.send_json(await self.chat.config_snapshot())

    @web.authenticated
    async def put(self) -> None:
        body = self.json_body()
        provider, model = body.get("provider"), body.get("model")
        for name, value in (("provider", provider), ("model", model)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ApiError(400, f"{name} must be a non-empty string")
        if provider is None and model is None:
            raise ApiError(400, "give a provider, a model, or both")
        await self.chat.set_model(provider, model)
        await self._send_config()


_ID = r"([^/]+)"
CHAT_HANDLERS: list[tuple[str, type[PolarisHandler]]] = [
    ("/polaris/api/v1/conversations", ConversationsHandler),
    (f"/polaris/api/v1/conversations/{_ID}", ConversationHandler),
    (f"/polaris/api/v1/conversations/{_ID}/messages", MessagesHandler),
    (f"/polaris/api/v1/messages/{_ID}/cancel", MessageCancelHandler),
    (f"/polaris/api/v1/messages/{_ID}/retry", MessageRetryHandler),
    (f"/polaris/api/v1/runs/{_ID}/revert", RevertHandler),
    (f"/polaris/api/v1/runs/{_ID}/edits", EditsHandler),
    ("/polaris/api/v1/config", ConfigHandler),
]
EXTRA_HANDLERS.extend(CHAT_HANDLERS)

_CONV = [path_param("conversationId")]
_MSG = [path_param("messageId")]
_RUN = [path_param("runId")]
_ACCEPTED = {"type": "object", "required": ["messageId", "runId"], "properties": {"messageId": {"type": "string"}, "runId": {"type": "string"}}}
add_schemas(
    {
        "Conversation": {
            "type": "object",
            "required": ["id", "title", "createdAt", "updatedAt"],
            "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "workspace": {"type": "string"}, "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}},
        },
        "Message": {
            "type": "object",
            "required": ["id", "conversationId", "role", "content", "status", "toolCalls"],
            "properties": {
                "id": {"type": "string"},
                "conversationId": {"type": "string"},
                "role": {"type": "string", "enum": ["user", "assistant", "tool"]},
                "content": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "processing", "completed", "failed", "cancelled"]},
                "runId": {"type": "string", "nullable": True},
                "toolCalls": {"type": "array", "items": {"type": "object"}},
                "error": {"type": "object", "nullable": True},
                "revertedAt": {"type": "string", "description": "set when the answer's file edits were reverted"},
            },
        },
    }
)
add_paths(
    {
        "/polaris/api/v1/conversations": {
            "get": {"summary": "List conversations", "responses": {**ok({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": ref("Conversation")}}}), **errors()}},
            "post": {
                "summary": "Create a conversation",
                "requestBody": json_body({"type": "object", "properties": {"title": {"type": "string"}}}, required=False),
                "responses": {**ok(ref("Conversation"), "201", "Created"), **errors(400)},
            },
        },
        "/polaris/api/v1/conversations/{conversationId}": {
            "get": {"summary": "A conversation", "parameters": _CONV, "responses": {**ok(ref("Conversation")), **errors(404)}},
            "patch": {
                "summary": "Rename a conversation",
                "parameters": _CONV,
                "requestBody": json_body({"type": "object", "required": ["title"], "properties": {"title": {"type": "string", "minLength": 1}}}),
                "responses": {**ok(ref("Conversation")), **errors(400, 404)},
            },
            "delete": {"summary": "Delete a conversation and its messages", "parameters": _CONV, "responses": {"204": {"description": "Deleted"}, **errors(404)}},
        },
        "/polaris/api/v1/conversations/{conversationId}/messages": {
            "get": {"summary": "Messages of a conversation", "parameters": _CONV, "responses": {**ok({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": ref("Message")}}}), **errors(404)}},
            "post": {
                "summary": "Post a user message: triggers process-message and returns at once (409 while busy)",
                "parameters": _CONV,
                "requestBody": json_body(
                    {"type": "object", "required": ["content"], "properties": {"content": {"type": "string", "minLength": 1}, "context": {"type": "object", "properties": {"currentFile": {"type": "string"}}}}}
                ),
                "responses": {**ok(_ACCEPTED, "202", "Accepted"), **errors(400, 404, 409)},
            },
        },
        "/polaris/api/v1/messages/{messageId}/cancel": {
            "post": {"summary": "Cancel an answer in progress", "parameters": _MSG, "responses": {**ok(ref("Message")), **errors(404)}}
        },
        "/polaris/api/v1/messages/{messageId}/retry": {
            "post": {"summary": "Retry a failed or cancelled answer", "parameters": _MSG, "responses": {**ok(_ACCEPTED, "202", "Accepted"), **errors(400, 404, 409)}}
        },
        "/polaris/api/v1/runs/{runId}/revert": {
            "post": {
                "summary": "Undo every file edit a run made",
                "description": "Refused with 409 (nothing changed) when a file changed after the run; `force` overwrites those changes.",
                "parameters": _RUN,
                "requestBody": json_body({"type": "object", "properties": {"force": {"type": "boolean"}}}, required=False),
                "responses": {**ok({"type": "object", "required": ["reverted"], "properties": {"reverted": {"type": "array", "items": {"type": "string"}}}}), **errors(400, 404, 409)},
            }
        },
        "/polaris/api/v1/runs/{runId}/edits": {
            "get": {"summary": "File edits of a run with their diffs", "parameters": _RUN, "responses": {**ok({"type": "object", "required": ["edits"], "properties": {"edits": {"type": "array"}}}), **errors(404)}}
        },
        "/polaris/api/v1/config": {
            "get": {"summary": "Model providers and the active one", "responses": {**ok({"type": "object", "required": ["providers", "active"], "properties": {"providers": {"type": "array"}, "active": {"type": "object"}}}), **errors()}},
            "put": {
                "summary": "Choose the provider and/or model",
                "requestBody": json_body({"type": "object", "properties": {"provider": {"type": "string", "minLength": 1}, "model": {"type": "string", "minLength": 1}}}),
                "responses": {**ok({"type": "object"}), **errors(400)},
            },
        },
    }
)
