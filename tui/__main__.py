"""`python -m cachescope.tui [REF]`: the TUI without the command-line front end."""

from __future__ import annotations

import sys

from cachescope.tui.cli import start_preload


def main() -> int:
    plain_http = "--plain-http" in sys.argv[1:]
    args = [a for a in sys.argv[1:] if a != "--plain-http"]
    target = args[0] if args else None
    preload = start_preload(target, plain_http=plain_http, fork=True)  # before Textual, as the cachescope command does
    from cachescope.tui.app import run  # noqa: PLC0415 - after the preload has started

    try:
        return run(target, plain_http=plain_http, preload=preload)
    finally:
        if preload is not None:
            preload.close()


if __name__ == "__main__":
    sys.exit(main())
