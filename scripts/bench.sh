#!/usr/bin/env bash
# The published SLO's benchmark (docs/performance.md): builds once in release (the `slo` bench
# and the `portcullis` binary it spawns), then runs it and prints one table, every throughput
# also as a ratio to an HTTP + JSON floor measured in the same run. The run takes about three
# minutes once built (a cold release build takes much longer).
#
# PostgreSQL at $PORTCULLIS_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) is
# used in a schema made and dropped by the run; its rows are skipped with a line saying so when
# nothing answers. PORTCULLIS_SLO_ROUNDS (3) and PORTCULLIS_SLO_SECONDS per cell (2) size the run.
# Timings are only as quiet as the machine: the table prints the load average beside them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (release, once) =="
cargo bench --locked --bench slo --no-run

echo "== running (load average now: $(cut -d' ' -f1-3 /proc/loadavg)) =="
# Built above, so this only runs it.
exec cargo bench --locked --bench slo
