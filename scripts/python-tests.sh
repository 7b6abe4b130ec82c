#!/usr/bin/env bash
# The Python package's tests: builds `umx` (crates/umx-python) into a virtual environment with
# maturin, in the dev profile and cargo's own target directory (so it reuses what
# `cargo test --workspace` built), and runs its pytest suite. Needs python3 (3.9 or newer)
# with venv; installs maturin, pytest and numpy into the environment itself.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${UMX_PYTHON_VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" pytest numpy
VIRTUAL_ENV="$(cd "$venv" && pwd)" PATH="$(cd "$venv" && pwd)/bin:$PATH" \
    maturin develop --quiet --manifest-path crates/umx-python/Cargo.toml
"$venv/bin/python" -m pytest -q crates/umx-python/tests "$@"
