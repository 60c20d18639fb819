"""Logging setup shared by every component: one human-readable format by default, JSON lines with
--headless. TITAN_LOG_FORMAT=json|human (set by `titan up` for every child) overrides a component's
own choice, so one run logs in one format."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, separators=(",", ":"))


class HumanFormatter(logging.Formatter):
    """`12:00:01 INFO    titan.up: message key=value ...` (the structured fields after the message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")]
        if extra:
            head, sep, tail = line.partition("\n")
            line = head + " " + " ".join(extra) + sep + tail
        return line


def log_format_json(json_lines: bool) -> bool:
    """The format to use: TITAN_LOG_FORMAT when set, else the component's own choice."""
    chosen = os.environ.get("TITAN_LOG_FORMAT", "").strip().lower()
    return json_lines if chosen not in ("json", "human") else chosen == "json"


HANDLER_NAME = "titan"  # the root handler setup_logging installs


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """A component's logging: one handler on the root logger, to the stderr of this moment, in the
    format :func:`log_format_json` picks. Called again, it replaces its own earlier handler and leaves
    any other (an embedding program's, a test runner's) as it was."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format_json(json_lines) else HumanFormatter())
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(earlier)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("asyncio", "kopf.objects", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
