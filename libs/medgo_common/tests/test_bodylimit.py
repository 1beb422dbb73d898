"""The shared body limit: refused by Content-Length before reading, and while streaming a
chunked body, with one error shape; a body under the limit reaches the app intact."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from medgo_common.bodylimit import BodyLimitMiddleware
from medgo_common.errors import install_error_handlers


def _client(rejected: list[str]) -> tuple[TestClient, list[int]]:
    app = FastAPI()
    install_error_handlers(app)
    seen: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    app.add_middleware(BodyLimitMiddleware, max_bytes=1000, on_reject=rejected.append)
    return TestClient(app), seen


def test_under_the_limit_passes_whole() -> None:
    client, seen = _client([])
    assert client.post("/echo", content=b"x" * 1000).json() == {"bytes": 1000}
    assert seen == [1000]


def test_declared_and_streamed_oversize_bodies_get_one_413() -> None:
    rejected: list[str] = []
    client, seen = _client(rejected)

    def chunks():
        for _ in range(20):
            yield b"y" * 100

    for response in (client.post("/echo", content=b"x" * 1001),
                     client.post("/echo", content=chunks())):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"
        assert "exceeds 1000 bytes" in response.json()["error"]["message"]
    assert rejected == ["body_too_large", "body_too_large"]
    assert seen == []  # the app never finished reading either body
