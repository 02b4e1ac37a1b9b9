"""A small A2A agent over real HTTP for the tests of ``call: a2a``: JSON-RPC 2.0 on ``/a2a``
and its agent card at ``/.well-known/agent-card.json``.

It echoes: ``message/send`` creates a completed task whose artifact is ``echo: <text>`` (the
texts of the message's parts), ``message/stream`` answers the same task as a server-sent
event stream (the task submitted, a working status, the artifact, the final completed
status), ``tasks/get`` and ``tasks/resubscribe`` find a task by id (JSON-RPC error -32001
when unknown), ``tasks/cancel`` refuses (-32002, as a finished task cannot be canceled) and
any other method is -32601. Every request is recorded (``requests``), with its
``Idempotency-Key`` header. The server runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a
background thread until the ``serve_agent`` block exits.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["A2aAgent", "serve_agent"]

CARD_PATH = "/.well-known/agent-card.json"


@attrs.define(eq=False)
class A2aAgent:
    """The running agent: ``url`` is its ``http://127.0.0.1:port`` root; ``card_url`` is the
    URL its card gives for the JSON-RPC interface (relative by default)."""

    url: str
    card_url: str = "/a2a"
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    tasks: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def card(self) -> dict[str, Any]:
        """The agent card (A2A 0.3)."""
        return {
            "protocolVersion": "0.3.0",
            "name": "echo-agent",
            "description": "Echoes the text it is sent",
            "url": self.card_url,
            "preferredTransport": "JSONRPC",
            "version": "1.0.0",
            "capabilities": {"streaming": True},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "echo", "name": "Echo", "description": "echo", "tags": ["echo"]}],
        }

    def record(self, request: dict[str, Any], key: str | None) -> None:
        """Remember one JSON-RPC request (called by the handler)."""
        with self._lock:
            self.requests.append({**request, "idempotencyKey": key})

    def methods(self) -> list[str]:
        """The methods received, in order."""
        with self._lock:
            return [str(r.get("method")) for r in self.requests]

    def echo_task(self, message: dict[str, Any]) -> dict[str, Any]:
        """The completed task that answers ``message`` (kept for ``tasks/get``)."""
        text = " ".join(str(p.get("text", "")) for p in message.get("parts") or ())
        with self._lock:
            task_id = f"task-{len(self.tasks) + 1}"
            task = {
                "kind": "task",
                "id": task_id,
                "contextId": "ctx-1",
                "status": {"state": "completed"},
                "artifacts": [
                    {"artifactId": "answer", "parts": [{"kind": "text", "text": f"echo: {text}"}]}
                ],
                "history": [message],
            }
            self.tasks[task_id] = task
        return task


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    agent: A2aAgent

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _events(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream of a task: submitted, working, its artifact, completed (final)."""
    base = {"taskId": task["id"], "contextId": task["contextId"]}
    return [
        {**task, "status": {"state": "submitted"}, "artifacts": []},
        {**base, "kind": "status-update", "status": {"state": "working"}, "final": False},
        {**base, "kind": "artifact-update", "artifact": task["artifacts"][0], "lastChunk": True},
        {**base, "kind": "status-update", "status": {"state": "completed"}, "final": True},
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _send(self, status: int, content_type: str, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == CARD_PATH:
            self._send(200, "application/json", json.dumps(self.server.agent.card()).encode())
        else:
            self._send(404, "text/plain", b"not found")

    def do_POST(self) -> None:
        agent = self.server.agent
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != "/a2a":
            self._send(404, "text/plain", b"not found")
            return
        try:
            request = json.loads(raw)
        except ValueError:
            self._send(400, "text/plain", b"not json")
            return
        agent.record(request, self.headers.get("Idempotency-Key"))
        method, params, rpc_id = request.get("method"), request.get("params") or {}, request["id"]

        def answer(result: Any = None, error: tuple[int, str] | None = None) -> dict[str, Any]:
            if error is not None:
                return {
                    "jsonrpc": "2.0",
                    "id": rpc_id,
                    "error": dict(zip(("code", "message"), error, strict=True)),
                }
            return {"jsonrpc": "2.0", "id": rpc_id, "result": result}

        if method in ("message/stream", "tasks/resubscribe"):
            if method == "message/stream":
                task: dict[str, Any] | None = agent.echo_task(params["message"])
            else:
                task = agent.tasks.get(str(params.get("id")))
            if task is None:
                body = json.dumps(answer(error=(-32001, "Task not found"))).encode()
                self._send(200, "application/json", body)
                return
            stream = "".join(f"data: {json.dumps(answer(e))}\n\n" for e in _events(task))
            self._send(200, "text/event-stream", stream.encode(), close=True)
            return
        if method == "message/send":
            response = answer(agent.echo_task(params["message"]))
        elif method == "tasks/get":
            found = agent.tasks.get(str(params.get("id")))
            response = answer(found) if found else answer(error=(-32001, "Task not found"))
        elif method == "tasks/cancel":
            response = answer(error=(-32002, "Task cannot be canceled"))
        else:
            response = answer(error=(-32601, "Method not found"))
        self._send(200, "application/json", json.dumps(response).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_agent(card_url: str = "/a2a") -> Iterator[A2aAgent]:
    """Serve the agent on a free 127.0.0.1 port until the block exits."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.agent = A2aAgent(url=f"http://127.0.0.1:{server.server_address[1]}", card_url=card_url)
    thread = threading.Thread(target=server.serve_forever, name="a2a-agent", daemon=True)
    thread.start()
    try:
        yield server.agent
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
