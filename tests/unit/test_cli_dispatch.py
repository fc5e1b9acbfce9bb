"""The command table in cli.py decides which plug-in a command imports; it must not drift."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cachescope.tui import cli


def test_command_table_matches_what_plugins_register() -> None:
    registered: dict[str, str] = {}
    for module in cli._PLUGINS:
        _, commands = cli.build_parser((module,))
        for command in commands:
            registered[command] = module
    assert registered == cli.COMMANDS


def test_inspect_imports_neither_diagnosis_nor_the_write_side() -> None:
    code = (
        "import sys; from cachescope.tui import cli; cli.build_parser((cli.COMMANDS['inspect'],)); "
        "print(sorted(m for m in sys.modules if m.startswith(('cachescope.core.diagnose', 'cachescope.core.ops', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_unknown_command_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["nonsense", "x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for command in cli.COMMANDS:
        assert command in err


@pytest.mark.parametrize(("command", "expected"), [("ls", 0), ("inspect", 0), ("recompress", 1), ("prune", 1)])
def test_closed_output_is_success_only_for_commands_that_change_nothing(
    command: str, expected: int, capsys: pytest.CaptureFixture[str]
) -> None:
    async def handler(args: object) -> int:
        raise BrokenPipeError

    assert cli._run(handler, argparse.Namespace(command=command), debug=False) == expected
    err = capsys.readouterr().err
    assert ("output closed" in err) == (expected != 0)
