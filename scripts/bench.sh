#!/usr/bin/env bash
# The published SLO's benchmark (docs/performance.md): builds once in release, prints the SLO
# table (benches/slo.rs), then the pending-reviews scenario (benches/store.rs with 100,000 pending
# reviews: checks/s without and with them while the expiry sweeper and a review follower run).
# PORTCULLIS_BENCH_SKIP_PENDING=1 leaves the second part out (it seeds 100,000 reviews per store).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (release, once) =="
cargo bench --locked --bench slo --bench store --no-run

echo "== running (load average now: $(cut -d' ' -f1-3 /proc/loadavg)) =="
cargo bench --locked --bench slo

if [ "${PORTCULLIS_BENCH_SKIP_PENDING:-0}" != 1 ]; then
  echo "== 100,000 pending reviews (load average now: $(cut -d' ' -f1-3 /proc/loadavg)) =="
  PORTCULLIS_BENCH_PENDING="${PORTCULLIS_BENCH_PENDING:-100000}" \
    PORTCULLIS_BENCH_PLAN="${PORTCULLIS_BENCH_PLAN:-1:1000,16:4000}" \
    cargo bench --locked --bench store
fi
