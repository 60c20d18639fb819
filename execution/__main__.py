"""``python -m titan.execution``: run the execution service with settings from the environment."""

from __future__ import annotations

import sys

from titan.core.config import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    from titan.execution.runtime import main as serve_main

    return serve_main(settings)


if __name__ == "__main__":
    sys.exit(main())
