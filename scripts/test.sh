#!/usr/bin/env bash
# The test command from the README: installs what the tests need on a fresh Debian machine
# (the real registry binary, the package with its test extras), then lints, type-checks,
# checks the architecture contracts and runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/docker-registry ]; then
  echo "installing docker-registry (Debian package) for the registry tests"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# mypy sees the namespace package through a symlink view (the editable install's hook is invisible to it).
mkdir -p .typecheck/cachescope
ln -sfn ../../core .typecheck/cachescope/core
ln -sfn ../../tui .typecheck/cachescope/tui

python3 -m ruff check .
python3 -m ruff format --check .
lint-imports
python3 -m mypy
python3 -m pytest "$@"
