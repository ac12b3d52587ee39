"""``python -m polaris_jupyter.testing --port 8765 --script replies.json``: a scripted model for manual use.

The script file is a JSON list of responses (fields of :class:`Response`) or an object
``{"responses": [...], "model": "...", "repeat": true}``. Without a script (or once it is used
up and ``repeat`` is off) the server echoes the last user message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from polaris_jupyter.testing._script import Response, load_script
from polaris_jupyter.testing._server import ScriptedModelServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polaris-scripted-model", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", help="JSON file with the scripted responses")
    parser.add_argument("--model", default=None, help="model id reported by the server")
    parser.add_argument("--repeat", action="store_true", help="cycle through the script forever")
    parser.add_argument("--api-key", default=None, help="require this bearer key (default: none)")
    parser.add_argument(
        "--generation",
        action="store_true",
        help="answer project-generation steps (each step writes one file) instead of a script",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    responses: list[Response] = []
    options: dict[str, object] = {}
    if args.script:
        responses, options = load_script(args.script)
    model = args.model or str(options.get("model") or "scripted-model")
    responder = None
    if args.generation:
        from polaris_jupyter.tasks.generate_script import ScriptedGeneration  # imported only when asked

        responder = ScriptedGeneration(tokens_per_file=120)
    server = ScriptedModelServer(
        responses, responder=responder, model=model, host=args.host, port=args.port, api_key=args.api_key,
        repeat_script=bool(args.repeat or options.get("repeat")),
    )
    async with server:
        print(f"scripted model {model!r} listening on {server.base_url} "
              f"({len(responses)} scripted responses)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
