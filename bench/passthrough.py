"""The floor for a Python proxy: forward chat completions to vLLM, nothing else.

One pooled httpx client, the body and the answer passed through as bytes (streams
chunk by chunk). No auth, quotas, safety, redaction or recording: what the gateway
costs beyond this is the price of its policies. Used by bench/gateway.py.

    python bench/passthrough.py --upstream http://127.0.0.1:8001 --port 8100
"""

from __future__ import annotations

import argparse
import contextlib

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


def build_app(upstream: str) -> Starlette:
    client = httpx.AsyncClient(
        base_url=upstream, timeout=300,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
    )

    async def chat(request: Request) -> StreamingResponse:
        forwarded = client.build_request(
            "POST", "/v1/chat/completions", content=await request.body(),
            headers={"content-type": "application/json"},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.upstream), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
