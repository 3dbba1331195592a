#!/usr/bin/env bash
# Install the deployment tool chain into the repository's virtualenv (.venv):
# moto (local DynamoDB and SQS for tests), aws-sam-cli (sam), cfn-lint, cargo-lambda and
# ziglang (the linker cargo-lambda uses); and, through rustup, the Rust target
# aarch64-unknown-linux-gnu (arm64 is the template's default architecture).
# Idempotent: an existing .venv (for example one that already holds moto) is reused,
# and only the missing tools are installed.
#
# Afterwards put .venv/bin first on PATH: cargo-lambda finds zig through the first
# `python3` on PATH.
#   export PATH="$PWD/.venv/bin:$PATH"
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo_root/.venv"

if [ ! -x "$venv/bin/python3" ]; then
    echo "creating virtualenv $venv"
    python3 -m venv "$venv"
fi

py="$venv/bin/python3"

# package name -> module or command that proves it is installed
missing=()
[ -x "$venv/bin/moto_server" ] || missing+=("moto[server]")
[ -x "$venv/bin/sam" ] || missing+=(aws-sam-cli)
[ -x "$venv/bin/cfn-lint" ] || missing+=(cfn-lint)
[ -x "$venv/bin/cargo-lambda" ] || missing+=(cargo-lambda)
"$py" -c 'import ziglang' >/dev/null 2>&1 || missing+=(ziglang)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing into $venv: ${missing[*]}"
    "$py" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
else
    echo "all tools already installed in $venv"
fi

# The Rust target of the template's default architecture (arm64): `sam build` cross-compiles
# the functions for it with cargo-lambda and zig.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        echo "adding the Rust target aarch64-unknown-linux-gnu"
        rustup target add aarch64-unknown-linux-gnu
    fi
else
    echo "rustup not found: install the Rust target aarch64-unknown-linux-gnu yourself" >&2
fi

PATH="$venv/bin:$PATH"
export PATH
echo "sam:          $(sam --version 2>/dev/null || echo missing)"
echo "cfn-lint:     $(cfn-lint --version 2>/dev/null || echo missing)"
echo "cargo-lambda: $(cargo-lambda lambda --version 2>/dev/null || cargo lambda --version 2>/dev/null || echo missing)"
echo "zig:          $("$py" -m ziglang version 2>/dev/null || echo missing)"
