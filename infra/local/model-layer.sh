#!/usr/bin/env bash
# Packages the embedding model as a Lambda layer: .local/build/model-layer/ (directory, for SAM's
# ContentUri) and .local/build/model-layer.zip. Lambda extracts layers under /opt, so the files land
# in /opt/model/all-MiniLM-L6-v2 — the default EMBEDDING_MODEL_DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/.local/models/all-MiniLM-L6-v2"
OUT="$ROOT/.local/build/model-layer"
[ -f "$SRC/model.safetensors" ] || bash "$ROOT/infra/local/install.sh" stack
rm -rf "$OUT" "$OUT.zip"
mkdir -p "$OUT/model/all-MiniLM-L6-v2/1_Pooling"
# Only what the loader reads (plus the licence-bearing README): no ONNX/PyTorch duplicates.
for f in model.safetensors tokenizer.json config.json sentence_bert_config.json modules.json README.md; do
  [ -f "$SRC/$f" ] && cp "$SRC/$f" "$OUT/model/all-MiniLM-L6-v2/"
done
cp "$SRC/1_Pooling/config.json" "$OUT/model/all-MiniLM-L6-v2/1_Pooling/"
(cd "$OUT" && python3 -m zipfile -c "$OUT.zip" model)
echo "model layer: $OUT ($(du -sh "$OUT" | cut -f1)), $OUT.zip ($(du -h "$OUT.zip" | cut -f1))"
