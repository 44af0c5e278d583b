#!/usr/bin/env bash
# README's test command. Needs only the Rust toolchain: installs cargo-nextest from crates.io when
# it is missing, runs the whole suite, and says loudly when the PostgreSQL-backed tests could not
# run because no server is reachable (they return early; everything else runs).
# PORTCULLIS_REQUIRE_POSTGRES=1 (set by .ci/run) turns a missing server into a failure instead.
# Extra arguments go to `cargo nextest run` (a filter, --locked, …).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo-nextest is missing: installing it from crates.io (once per machine) =="
  cargo install cargo-nextest --locked
fi

url="${PORTCULLIS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
# host:port of the URL, for a plain TCP probe (no psql needed).
authority="${url#*://}"
authority="${authority%%/*}"
authority="${authority##*@}"
host="${authority%:*}"
port="${authority##*:}"
[ "$port" = "$authority" ] && port=5432
postgres_up=no
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  postgres_up=yes
fi

banner() {
  cat <<TXT

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! No PostgreSQL at $host:$port (PORTCULLIS_TEST_DATABASE_URL): the PostgreSQL-backed tests
!! (store suite postgres::*, replicas::*, store_outage::*) were SKIPPED — they returned early.
!! Start a server (trust auth, database \`test\`) or point PORTCULLIS_TEST_DATABASE_URL at one.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

TXT
}

if [ "$postgres_up" = no ]; then
  if [ -n "${PORTCULLIS_REQUIRE_POSTGRES:-}" ] && [ "${PORTCULLIS_REQUIRE_POSTGRES}" != 0 ]; then
    echo "PORTCULLIS_REQUIRE_POSTGRES is set but nothing answers at $host:$port" >&2
    exit 1
  fi
  banner
fi

status=0
cargo nextest run "$@" || status=$?
[ "$postgres_up" = no ] && banner
exit "$status"
