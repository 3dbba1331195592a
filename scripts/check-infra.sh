#!/usr/bin/env bash
# Offline checks of the deployment: lint and validate infra/template.yaml, then `sam build`
# the functions for both architectures - arm64 (the template's default, into .aws-sam/build,
# ready for `sam deploy`) and x86_64 (into .aws-sam/build-x86_64) - through the Makefile's one
# cargo build per architecture, and check each zipped bootstrap is an executable of its
# architecture that stays small. Needs no AWS account, credentials or Docker. The arm64 build
# also leaves target/lambda/arm64/<binary>/bootstrap, which tests/tests/arm64_bootstraps.rs
# starts under qemu-user.
#
#   bash scripts/check-infra.sh            # everything
#   SKIP_BUILD=1 bash scripts/check-infra.sh   # lint and validate only
#
# Exits non-zero when a step fails, a bootstrap is not built for its architecture, or a zipped
# function exceeds MAX_ZIP_BYTES (default 5 MiB).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"

template="infra/template.yaml"
max_zip_bytes="${MAX_ZIP_BYTES:-5242880}"

# cargo-lambda finds zig through the first python3 on PATH: the venv's comes first.
if [ ! -x .venv/bin/sam ] || [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/cargo-lambda ] ||
    ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    bash scripts/install-tools.sh
fi
export PATH="$repo_root/.venv/bin:$PATH"

# sam and the SAM translator want a region even offline; no credentials are used.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
export SAM_CLI_TELEMETRY=0

step() { printf '\n== %s\n' "$*"; }

step "cfn-lint $template"
cfn-lint "$template"
echo "ok"

step "sam validate --lint"
sam validate --lint --template-file "$template"

# cfn-lint on the SAM template does not see through every SAM expansion: a
# function whose environment refers to its own function URL (a circular
# dependency, E3004) passes there and fails here. So also lint the template as
# CloudFormation will receive it, transformed offline.
step "cfn-lint on the SAM-transformed template"
transformed="$(mktemp --suffix=.json)"
trap 'rm -f "$transformed"' EXIT
python3 - "$template" "$transformed" <<'PY'
import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicies:
    """Stands in for the IAM call that lists AWS managed policies."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        }


source, target = sys.argv[1], sys.argv[2]
with open(source) as f:
    template = yaml_parse(f.read())
# Local CodeUri paths are replaced by the S3 location only at package time.
for resource in template["Resources"].values():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://sondeo-artifacts/code.zip"
output = transform(template, {"Architecture": "x86_64"}, OfflinePolicies())
with open(target, "w") as f:
    json.dump(output, f)
print(f"{len(output['Resources'])} CloudFormation resources")
PY
# W2001: a parameter that only the SAM transform reads (Tracing) looks unused after it.
cfn-lint --ignore-checks W2001 -- "$transformed"
echo "ok"

if [ "${SKIP_BUILD:-0}" = "1" ]; then
    echo "SKIP_BUILD=1: not building"
    exit 0
fi

# template_file and build_in_source come from samconfig.toml, as for a user. x86_64 first, so
# that on a cold cache its time compares with earlier x86_64-only runs; arm64 last, so
# .aws-sam/build (what `sam deploy` picks up) holds the template's default.
step "sam build (x86_64) into .aws-sam/build-x86_64"
x86_64_start=$(date +%s)
sam build --parameter-overrides Architecture=x86_64 --build-dir .aws-sam/build-x86_64
x86_64_seconds=$(($(date +%s) - x86_64_start))

step "sam build (arm64, the template's default) into .aws-sam/build"
arm64_start=$(date +%s)
sam build
arm64_seconds=$(($(date +%s) - arm64_start))

step "bootstraps: architecture and zipped size (limit $max_zip_bytes bytes)"
python3 - "$template" "$max_zip_bytes" <<'PY'
import os
import sys
import tempfile
import zipfile

from samtranslator.yaml_helper import yaml_parse

template_path, limit = sys.argv[1], int(sys.argv[2])
with open(template_path) as f:
    template = yaml_parse(f.read())
functions = sorted(
    name
    for name, resource in template["Resources"].items()
    if resource.get("Type") == "AWS::Serverless::Function"
)
# (architecture, build directory, ELF e_machine)
builds = [
    ("arm64", os.path.join(".aws-sam", "build"), 183),
    ("x86_64", os.path.join(".aws-sam", "build-x86_64"), 62),
]
problems = []
print(f"{'function':<22} {'arch':<7} {'bootstrap bytes':>15} {'zipped bytes':>13}")
for name in functions:
    for arch, build_dir, machine in builds:
        binary = os.path.join(build_dir, name, "bootstrap")
        if not os.path.isfile(binary):
            problems.append(f"missing {binary}")
            continue
        with open(binary, "rb") as f:
            header = f.read(20)
        if header[:4] != b"\x7fELF" or int.from_bytes(header[18:20], "little") != machine:
            problems.append(f"{binary} is not an {arch} executable")
        if not os.access(binary, os.X_OK):
            problems.append(f"{binary} is not executable")
        with tempfile.TemporaryDirectory() as tmp:
            archive = os.path.join(tmp, "function.zip")
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
                zf.write(binary, "bootstrap")
            zipped = os.path.getsize(archive)
        raw = os.path.getsize(binary)
        print(f"{name:<22} {arch:<7} {raw:>15} {zipped:>13}")
        if zipped > limit:
            problems.append(f"{name} ({arch}) zipped is {zipped} bytes, over the {limit}-byte limit")
if problems:
    sys.exit("\n".join(problems))
PY

printf '\nsam build wall time: x86_64 %ss, arm64 %ss\n' "$x86_64_seconds" "$arm64_seconds"
echo "check-infra: all checks passed"
