"""Tornado handlers generated from the route table: thin, one per path, all logic in ``PolarisAPI``.

Each generated method reads the path parameters, the declared query parameters and the JSON
body, hands them to :meth:`PolarisAPI.dispatch` (which validates and serves), and writes the
answer. WebSocket and streaming routes map to the classes the server passes in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from itertools import groupby
from typing import Any

from tornado import web

from polaris_jupyter.api import ROUTES, PolarisAPI, Route
from polaris_jupyter.errors import Unavailable
from polaris_jupyter.server.base import PolarisHandler

__all__ = ["RouteHandler", "make_handlers"]


class RouteHandler(PolarisHandler):
    """Base of the generated handlers."""

    @property
    def api(self) -> PolarisAPI:
        api = self.settings.get("polaris_api")
        if api is None:
            raise Unavailable("the Polaris extension is not loaded in this server")
        return api  # type: ignore[no-any-return]

    async def serve(self, route: Route, path: Mapping[str, str]) -> None:
        body = self.json_body(required=False, parse_only=True) if route.body is not None else None
        query = {p.name: self.get_query_argument(p.name, None) for p in route.query}
        answer = await self.api.dispatch(route.op, path=path, query=query, body=body)
        if answer.status == 204:
            self.set_status(204)
            self.finish()
        else:
            self.send_json(answer.body, answer.status)


def _method(route: Route) -> Callable[..., Awaitable[None] | None]:
    async def handle(self: RouteHandler, **path: str) -> None:
        await self.serve(route, path)

    handle.__name__ = handle.__qualname__ = route.method.lower()
    handle.__doc__ = route.summary
    return web.authenticated(handle)


def make_handlers(sockets: Mapping[str, type[Any]], routes: tuple[Route, ...] = ROUTES) -> list[tuple[str, type[Any]]]:
    """One tornado handler per path of ``routes``; ``sockets`` maps WebSocket and streaming ops to their classes."""
    handlers: list[tuple[str, type[Any]]] = []
    ordered = sorted(routes, key=lambda r: r.path)
    for path, group in groupby(ordered, key=lambda r: r.path):
        same_path = list(group)
        sockets_here = [r for r in same_path if r.websocket or r.stream]
        if sockets_here:
            (route,) = sockets_here
            handlers.append((route.pattern, sockets[route.op]))
            continue
        methods = {r.method.lower(): _method(r) for r in same_path}
        name = "".join(part.title() for part in route_name(path)) + "Handler"
        handlers.append((same_path[0].pattern, type(name, (RouteHandler,), methods)))
    missing = set(sockets) - {r.op for r in routes if r.websocket or r.stream}
    if missing:
        raise ValueError(f"socket classes for unknown routes: {sorted(missing)}")
    return handlers


def route_name(path: str) -> list[str]:
    return [p.strip("{}").replace("-", "_").replace(".", "_") for p in path.split("/") if p and p not in ("polaris", "api", "v1")]
