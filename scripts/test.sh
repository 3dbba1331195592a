#!/usr/bin/env bash
# Runs every test of Sondeo on a fresh machine: installs what it needs into .venv (moto, SAM CLI,
# cfn-lint, cargo-lambda, zig), checks formatting and lints, lints/validates/builds the SAM
# template, starts a moto server on 127.0.0.1 for the DynamoDB and SQS adapter tests, runs the
# whole cargo test suite (including a headless Chromium test of the one-click page), and stops
# moto again.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
# One build per run: incremental-compilation caches would only take disk.
export CARGO_INCREMENTAL=0
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

bash scripts/install-tools.sh
export PATH="$PWD/.venv/bin:$PATH"

# Headless Chromium for the browser tests of the one-click page, and its WebDriver (Debian's
# packages) for the test that types a comment and presses Send like a person.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver (apt)"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# arm64 (the template's default architecture): the functions are cross-compiled for it (the
# Rust target comes with install-tools.sh) and each arm64 bootstrap is started under qemu-user
# (tests/tests/arm64_bootstraps.rs); the binaries link glibc dynamically, so qemu also needs
# the arm64 C library (libc6-arm64-cross, in /usr/aarch64-linux-gnu).
if ! command -v qemu-aarch64 >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    echo "== installing qemu-user and libc6-arm64-cross (apt)"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== dependency boundaries (cargo tree) and module import cycles"
bash scripts/check-deps.sh

echo "== infrastructure: cfn-lint, sam validate --lint, sam build (arm64 and x86_64), zip sizes"
bash scripts/check-infra.sh
# The release builds' intermediate files (LTO objects of every dependency, per architecture)
# are not needed once the bootstraps are in target/lambda/ and .aws-sam/: with
# SONDEO_PRUNE_BUILDS=1 (CI sets it) they are removed to leave disk for the test binaries.
if [ "${SONDEO_PRUNE_BUILDS:-0}" = "1" ]; then
    rm -rf target/aarch64-unknown-linux-gnu target/x86_64-unknown-linux-gnu target/release
    echo "== pruned release intermediates: $(df -h --output=avail . | tail -1 | tr -d ' ') free"
fi

echo "== moto server (DynamoDB, SQS) on 127.0.0.1"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
python3 scripts/moto_server.py -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
    sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

echo "== cargo test (unit, adapters on moto, handlers, exactly-once proof, local mode end to end)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.log
test_status=${PIPESTATUS[0]}
set -e
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target/ $(du -sh target | cut -f1)"
# One closing line with the totals over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' target/test-output.log
exit "$test_status"
