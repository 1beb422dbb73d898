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


def test_a_declared_length_bounds_what_the_app_reads_on_a_real_server() -> None:
    """A body within its declared Content-Length is not counted (no wrapper): uvicorn
    hands the app exactly the declared bytes, whatever the client sends after them
    (those are read as a next request, and refused)."""
    import socket
    import threading
    import time

    import uvicorn

    client, seen = _client([])
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start within 10 s"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
                         + b"z" * 5000)
            while sock.recv(4096):  # until the server closes the connection
                pass
        assert seen == [10]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
