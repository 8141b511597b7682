"""The report of `make loadtest` (infra/local/loadtest.sh): one line per run, then the check that
every acknowledged write is stored. Exits 1 when an acknowledged write is missing."""

import collections
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
acked_all = set()
print(f"{'run':<18} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses / socket errors / recovery")
for name in ["steady", "saturation", "postgres-restart", "dynamodb-restart", "s3-restart"]:
    d = out / name
    if not (d / "wrk.txt").exists():
        continue
    summary = json.loads((d / "wrk.txt").read_text().strip().splitlines()[-1])
    statuses = collections.Counter()
    for f in d.glob("status-*"):
        statuses.update(line.strip() for line in f.open() if line.strip())
    for f in d.glob("acked-*"):
        acked_all.update(line.strip() for line in f.open() if line.strip())
    rps = summary["requests"] / max(summary["duration_s"], 0.001)
    recovery = ""
    if (d / "fault-end").exists():
        start = int((d / "fault-start").read_text())
        end = int((d / "fault-end").read_text())
        probes = [tuple(l.split()) for l in (d / "probe").open() if len(l.split()) == 2]
        failed = [int(t) for t, s in probes if s != "200" and int(t) >= start]
        last_failure = max(failed) if failed else None
        recovered = (
            "no failed probe"
            if last_failure is None
            else f"last failed probe {max(0, last_failure - end) / 1000:.1f} s after the restart"
        )
        bad = collections.Counter(s for t, s in probes if s != "200" and int(t) >= start)
        recovery = f" | down {(end - start) / 1000:.1f} s, probes failed: {dict(bad)}, {recovered}"
    errors = {k: v for k, v in summary["socket_errors"].items() if v}
    print(
        f"{name:<18} {summary['requests']:>8} {summary['p50_ms']:>8.1f} {summary['p95_ms']:>8.1f} "
        f"{summary['p99_ms']:>8.1f}  {rps:.0f} req/s {dict(sorted(statuses.items()))} {errors or ''}{recovery}"
    )

stored = {l.strip() for l in (out / "stored-titles").open() if l.strip()}
stored_stems = {t[:-4] if t.endswith(".txt") else t for t in stored}
missing = sorted(acked_all - stored_stems)
print(f"acknowledged writes: {len(acked_all)}, stored: {len(acked_all) - len(missing)}, missing: {len(missing)}")
if missing:
    print("missing:", missing[:20])
    sys.exit(1)
