"""REST routes for project generation: the kinds, and starting a generation run."""

from __future__ import annotations

from typing import Any

from tornado import web

from polaris_jupyter.server.app import EXTRA_HANDLERS
from polaris_jupyter.server.base import ApiError, PolarisHandler
from polaris_jupyter.server.openapi import add_paths, add_schemas, errors, json_body, ok, path_param, ref
from polaris_jupyter.tasks.generate import GenerationService
from polaris_jupyter.tasks.project_kinds import PlanError, get_project_kind, project_kinds

__all__ = ["GENERATE_HANDLERS"]


class GenerateHandler(PolarisHandler):
    @property
    def generation(self) -> GenerationService:
        service = self.runtime.services.get("generation")
        if service is None:
            raise ApiError(503, "project generation is not available in this server")
        return service  # type: ignore[no-any-return]


class ProjectKindsHandler(GenerateHandler):
    @web.authenticated
    async def get(self) -> None:
        self.send_json({"kinds": [kind.to_json() for kind in project_kinds()]})


class ProjectKindHandler(GenerateHandler):
    @web.authenticated
    async def get(self, kind_id: str) -> None:
        try:
            kind = get_project_kind(kind_id)
        except PlanError as exc:
            raise ApiError(404, str(exc)) from None
        self.send_json(kind.to_json(full=True))


class StartGenerationHandler(GenerateHandler):
    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        for name in ("description", "kind", "path"):
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ApiError(400, f"{name} must be a non-empty string")
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise ApiError(400, "overwrite must be true or false")
        plan = body.get("plan")
        if plan is not None and not isinstance(plan, dict):
            raise ApiError(400, "plan must be a project kind object: {id, title, steps: [...]}")
        run_id = await self.generation.start(body["description"], body["kind"], body["path"], overwrite, plan)
        self.send_json({"runId": run_id}, status=202)


GENERATE_HANDLERS: list[tuple[str, type[PolarisHandler]]] = [
    ("/polaris/api/v1/project-kinds", ProjectKindsHandler),
    (r"/polaris/api/v1/project-kinds/([^/]+)", ProjectKindHandler),
    ("/polaris/api/v1/generate", StartGenerationHandler),
]
EXTRA_HANDLERS.extend(GENERATE_HANDLERS)

_STEP: dict[str, Any] = {
    "type": "object",
    "required": ["id", "title", "dependsOn", "action", "maxModelSteps"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "dependsOn": {"type": "array", "items": {"type": "string"}},
        "action": {"type": "string", "enum": ["model", "validate"]},
        "maxModelSteps": {"type": "integer", "minimum": 0},
        "firstTool": {"type": "string", "nullable": True},
        "prompt": {"type": "string"},
        "minFiles": {"type": "integer", "minimum": 0},
    },
}
add_schemas(
    {
        "ProjectStep": _STEP,
        "ProjectKind": {
            "type": "object",
            "required": ["id", "title", "steps"],
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "steps": {"type": "array", "items": ref("ProjectStep")},
            },
        },
    }
)
add_paths(
    {
        "/polaris/api/v1/project-kinds": {
            "get": {
                "summary": "Project kinds a generation can use, with their steps and dependencies",
                "responses": {
                    **ok({"type": "object", "required": ["kinds"],
                          "properties": {"kinds": {"type": "array", "items": ref("ProjectKind")}}}),
                    **errors(),
                },
            }
        },
        "/polaris/api/v1/project-kinds/{kindId}": {
            "get": {
                "summary": "One project kind with its step prompts",
                "parameters": [path_param("kindId")],
                "responses": {**ok(ref("ProjectKind")), **errors(404)},
            }
        },
        "/polaris/api/v1/generate": {
            "post": {
                "summary": "Start generating a project into a folder of the workspace; returns the run id at once "
                "(400: bad input, unknown kind or folder outside the workspace; 409: folder not empty without "
                "overwrite, or already being generated)",
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["description", "kind", "path"],
                        "properties": {
                            "description": {"type": "string", "minLength": 1, "maxLength": 20000},
                            "kind": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "minLength": 1},
                            "overwrite": {"type": "boolean"},
                            "plan": {"type": "object", "description": "A custom kind (same shape as "
                                     "GET project-kinds/{kindId}) whose id equals kind; for kinds this "
                                     "server does not know"},
                        },
                    }
                ),
                "responses": {
                    **ok({"type": "object", "required": ["runId"], "properties": {"runId": {"type": "string"}}},
                         "202", "Accepted"),
                    **errors(400, 409),
                },
            }
        },
    }
)
