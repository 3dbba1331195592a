#!/usr/bin/env bash
# Offline checks of the deployment: lint and validate infra/template.yaml, then
# `sam build` the four functions (x86_64) and check each zipped bootstrap stays
# small. Needs no AWS account, credentials or Docker.
#
#   bash scripts/check-infra.sh            # everything
#   SKIP_BUILD=1 bash scripts/check-infra.sh   # lint and validate only
#
# Exits non-zero when a step fails or a zipped function exceeds MAX_ZIP_BYTES
# (default 5 MiB).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"

template="infra/template.yaml"
max_zip_bytes="${MAX_ZIP_BYTES:-5242880}"
functions=(CollectFunction AggregateFunction MetricsFunction FloodBreakerFunction)

# cargo-lambda finds zig through the first python3 on PATH: the venv's comes first.
if [ ! -x .venv/bin/sam ] || [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/cargo-lambda ]; then
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

step "sam build (x86_64, rust-cargolambda)"
# template_file and beta_features come from samconfig.toml, as for a user.
build_start=$(date +%s)
sam build --parameter-overrides Architecture=x86_64
build_end=$(date +%s)
build_seconds=$((build_end - build_start))

step "zipped function sizes (limit $max_zip_bytes bytes)"
python3 - "$max_zip_bytes" "${functions[@]}" <<'PY'
import os
import sys
import tempfile
import zipfile

limit = int(sys.argv[1])
too_big = []
for name in sys.argv[2:]:
    binary = os.path.join(".aws-sam", "build", name, "bootstrap")
    if not os.path.isfile(binary):
        sys.exit(f"missing {binary}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "function.zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(binary, "bootstrap")
        zipped = os.path.getsize(archive)
    raw = os.path.getsize(binary)
    print(f"{name:<18} bootstrap {raw:>10} bytes, zipped {zipped:>10} bytes")
    if zipped > limit:
        too_big.append(name)
if too_big:
    sys.exit(f"over the {limit}-byte limit: {', '.join(too_big)}")
PY

printf '\nsam build wall time: %ss\n' "$build_seconds"
echo "check-infra: all checks passed"
