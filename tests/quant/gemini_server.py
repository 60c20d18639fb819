"""A stand-in for the Gemini REST API on 127.0.0.1: ``POST /{version}/models/{model}:generateContent``.

It answers with scripted replies in the service's shapes — ``candidates[].content.parts[].text``,
``finishReason``, ``usageMetadata``, ``promptFeedback`` and error bodies ``{"error": {"code",
"message", "status"}}`` — and records every request (path, headers, JSON body) for assertions.
The real ``google-genai`` client talks to it over HTTP.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    delay_s: float = 0.0      # answer this late (a timeout on the client's side)


def usage(prompt: int = 120, output: int = 40) -> dict[str, int]:
    return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}


def text_reply(text: str, finish: str = "STOP", prompt_tokens: int = 120, output_tokens: int = 40) -> Reply:
    return Reply(200, {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage(prompt_tokens, output_tokens),
        "modelVersion": "stand-in",
    })


def json_reply(answer: Any, **kw: Any) -> Reply:
    return text_reply(json.dumps(answer), **kw)


def refusal_reply() -> Reply:
    """A safety stop: the candidate has no parts, finishReason SAFETY, with safety ratings."""
    return Reply(200, {
        "candidates": [{"content": {"role": "model"}, "finishReason": "SAFETY", "index": 0,
                        "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                           "blocked": True}]}],
        "usageMetadata": usage(120, 0),
    })


def blocked_prompt_reply() -> Reply:
    return Reply(200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage(120, 0)})


def empty_reply() -> Reply:
    return Reply(200, {"candidates": [], "usageMetadata": usage(120, 0)})


def error_reply(code: int, message: str = "stand-in error") -> Reply:
    return Reply(code, {"error": {"code": code, "message": message, "status": STATUS_NAMES.get(code, "UNKNOWN")}})


@dataclass
class GeminiStandIn:
    """Scripted replies, served in order; when the script runs out, ``default`` answers."""

    default: Callable[[dict[str, Any]], Reply] | None = None
    script: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    release: threading.Event = field(default_factory=threading.Event)   # set: delayed replies go at once

    def then(self, *replies: Reply) -> GeminiStandIn:
        self.script.extend(replies)
        return self

    def _next(self, body: dict[str, Any]) -> Reply:
        if self.script:
            return self.script.popleft()
        if self.default is not None:
            return self.default(body)
        return error_reply(500, "no scripted reply left")


def _handler(stand_in: GeminiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            body = json.loads(raw or b"{}")
            stand_in.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if not self.path.endswith(":generateContent"):
                reply = error_reply(404, f"no such method: {self.path}")
            else:
                reply = stand_in._next(body)
            if reply.delay_s:
                stand_in.release.wait(reply.delay_s)
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(stand_in: GeminiStandIn) -> Iterator[GeminiStandIn]:
    """Serve ``stand_in`` on a free loopback port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
    thread = threading.Thread(target=server.serve_forever, name="gemini-stand-in", daemon=True)
    thread.start()
    stand_in.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        stand_in.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
