"""`python -m cachescope.tui [REF]`: the TUI without the command-line front end."""

from __future__ import annotations

import sys

from cachescope.tui.app import run

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--plain-http"]
    sys.exit(run(args[0] if args else None, plain_http="--plain-http" in sys.argv[1:]))
