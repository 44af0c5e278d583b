#!/usr/bin/env bash
# README's test command. Needs only the Rust toolchain: installs cargo-nextest from crates.io when
# it is missing, runs the whole suite, and says loudly when the PostgreSQL-backed tests could not
# run because no server is reachable (they return early; everything else runs): before the run
# when nothing answers on the port, and after it when a test recorded a skip in
# $PORTCULLIS_PG_SKIPPED_FILE (a port that answers while the login fails, say).
# PORTCULLIS_REQUIRE_POSTGRES=1 (set by .ci/run) turns a missing server into a failure instead.
# Likewise the HTML audit report's browser test needs `chromium` (the distribution's package) and
# is skipped loudly without it; PORTCULLIS_REQUIRE_BROWSER=1 makes that a failure.
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

# The integration tests that skip without a server append their names here (tests/it/support/db.rs).
export PORTCULLIS_PG_SKIPPED_FILE="$PWD/target/pg-skipped"
mkdir -p target
rm -f "$PORTCULLIS_PG_SKIPPED_FILE"

banner() {
  cat <<TXT

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! No usable PostgreSQL at $host:$port (PORTCULLIS_TEST_DATABASE_URL): the PostgreSQL-backed
!! tests were SKIPPED — they returned early: the store suite's postgres::* and
!! a_wrong_postgres_database_fails_at_once_without_the_password and
!! replicas_migrating_at_once_share_one_schema, replicas::*, store_outage::*,
!! audit_ledger::an_export_from_replicas_on_postgres_after_mixed_traffic_verifies.
!! Start a server (trust auth, database \`test\`) or point PORTCULLIS_TEST_DATABASE_URL at one.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

TXT
  if [ -s "$PORTCULLIS_PG_SKIPPED_FILE" ]; then
    echo "!! Skipped in this run ($PORTCULLIS_PG_SKIPPED_FILE):"
    sort "$PORTCULLIS_PG_SKIPPED_FILE" | sed 's/^/!!   /'
    echo
  fi
}

if [ "$postgres_up" = no ]; then
  if [ -n "${PORTCULLIS_REQUIRE_POSTGRES:-}" ] && [ "${PORTCULLIS_REQUIRE_POSTGRES}" != 0 ]; then
    echo "PORTCULLIS_REQUIRE_POSTGRES is set but nothing answers at $host:$port" >&2
    exit 1
  fi
  banner
fi

browser_up=no
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  browser_up=yes
fi

browser_banner() {
  cat <<TXT

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! No \`chromium\` on PATH: the HTML audit report was NOT opened in a browser
!! (audit_report::the_html_report_renders_in_a_real_browser_… returned early).
!! Install the distribution's \`chromium\` package (apt-get install chromium).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

TXT
}

if [ "$browser_up" = no ]; then
  if [ -n "${PORTCULLIS_REQUIRE_BROWSER:-}" ] && [ "${PORTCULLIS_REQUIRE_BROWSER}" != 0 ]; then
    echo "PORTCULLIS_REQUIRE_BROWSER is set but no chromium is on PATH" >&2
    exit 1
  fi
  browser_banner
fi

status=0
cargo nextest run "$@" || status=$?
if [ "$postgres_up" = no ] || [ -s "$PORTCULLIS_PG_SKIPPED_FILE" ]; then
  banner
fi
[ "$browser_up" = no ] && browser_banner
exit "$status"
