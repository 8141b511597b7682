#!/usr/bin/env bash
# make validate: cfn-lint and `sam validate --lint` on template.yaml (both offline; installed from
# PyPI into .local/venv by install.sh tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash infra/local/install.sh tools >&2
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
.local/venv/bin/cfn-lint template.yaml
.local/venv/bin/sam validate --lint --region "$AWS_DEFAULT_REGION" --template-file template.yaml
echo "[validate] template.yaml passes cfn-lint and sam validate --lint" >&2
