#!/usr/bin/env bash
# make build: every function as a Lambda bootstrap zip (cargo-lambda, release) and the model layer.
# Builds for the host architecture (rustup cannot add targets on this machine kind); deploy with
# the template's Architecture parameter set to match (x86_64 on an x86_64 host).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash infra/local/install.sh build >&2
bash infra/local/install.sh stack >&2   # the model files for the layer
export PATH="$ROOT/.local/venv/bin:$PATH"
case "$(uname -m)" in
  x86_64) arch_flag=--x86-64; arch=x86_64 ;;
  aarch64|arm64) arch_flag=--arm64; arch=arm64 ;;
  *) echo "build: unsupported host architecture $(uname -m)" >&2; exit 1 ;;
esac
# Every crate under functions/ (the template test checks each has a resource in template.yaml).
FUNCTIONS=(); for d in functions/*/; do FUNCTIONS+=("$(basename "$d")"); done
# One build per function: cargo unifies the features of packages built together, and each function
# links only the ragbot features its Cargo.toml names (health: none; embed: model, parsers, Bedrock).
for f in "${FUNCTIONS[@]}"; do
  cargo lambda build --release "$arch_flag" --output-format zip -p "$f"
done
bash infra/local/model-layer.sh >&2
echo "build: artifacts for $arch (template parameter Architecture=$arch)"
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  printf '  %-10s %s  %s\n' "$f" "$(du -h "$zip" | cut -f1)" "$zip"
done
printf '  %-10s %s  %s\n' "layer" "$(du -h .local/build/model-layer.zip | cut -f1)" ".local/build/model-layer.zip"
