"""The floor for a Python proxy: forward chat completions to vLLM, nothing else.

One pooled client, the body and the answer passed through as bytes (streams chunk by
chunk). No auth, quotas, safety, redaction or recording: what the gateway costs beyond
this is the price of its policies. Used by bench/gateway.py, with either client:
`--client httpx` (the issue's floor; the gateway used httpx until 2026-12-06) or
`--client aiohttp` (what the gateway uses for inference now: the lower floor).

    python bench/passthrough.py --upstream http://127.0.0.1:8001 --port 8100
"""

from __future__ import annotations

import argparse
import contextlib

import aiohttp
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

JSON = {"content-type": "application/json"}


def httpx_app(upstream: str) -> Starlette:
    client = httpx.AsyncClient(
        base_url=upstream, timeout=300,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
    )

    async def chat(request: Request) -> StreamingResponse:
        forwarded = client.build_request(
            "POST", "/v1/chat/completions", content=await request.body(), headers=JSON,
        )
        response = await client.send(forwarded, stream=True)
        return StreamingResponse(
            response.aiter_raw(), status_code=response.status_code,
            media_type=response.headers.get("content-type"),
            background=BackgroundTask(response.aclose),
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        async with client:
            yield

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])],
                     lifespan=lifespan)


def aiohttp_app(upstream: str) -> Starlette:
    sessions: list[aiohttp.ClientSession] = []

    async def chat(request: Request) -> StreamingResponse:
        response = await sessions[0].post(upstream + "/v1/chat/completions",
                                          data=await request.body(), headers=JSON)
        return StreamingResponse(
            response.content.iter_any(), status_code=response.status,
            media_type=response.headers.get("content-type"),
            background=BackgroundTask(response.release),
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=4)
        async with aiohttp.ClientSession(connector=connector) as session:
            sessions.append(session)
            yield

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])],
                     lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client", choices=("httpx", "aiohttp"), default="httpx")
    args = parser.parse_args()
    build = aiohttp_app if args.client == "aiohttp" else httpx_app
    uvicorn.run(build(args.upstream), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
