"""``python -m titan.execution``: run the execution service with settings from the environment."""

from __future__ import annotations

import asyncio
import signal
import sys

from titan.core.config import ConfigError, load_settings


async def _main() -> None:
    from titan.execution.runtime import ExecutionRuntime

    settings = load_settings()
    rt = ExecutionRuntime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rt.start()
    print(f"execution listening on {settings.execution_host}:{rt.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await rt.stop()


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    from titan.core.logging import setup_logging

    setup_logging(settings.log_level)

    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    with runner:
        runner.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
