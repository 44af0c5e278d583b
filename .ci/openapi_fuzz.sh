#!/usr/bin/env bash
# The published contract is the served one: start the debug binary on loopback with a test token
# and a throwaway SQLite file, and let schemathesis (pinned in .ci/run) fuzz every operation of
# the document the service itself serves at /openapi.json. Any disagreement — an undocumented
# status, a body that does not match its schema, a wrong content type, a 5xx, or an operation
# that answers without the token it documents — fails the step.
#
# Usage: .ci/openapi_fuzz.sh <schemathesis executable> [<portcullis binary>]
# Bounded: a fixed number of examples per operation and a hard time limit for the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."

st=${1:?usage: .ci/openapi_fuzz.sh <schemathesis> [<portcullis>] [<python with cryptography>]}
bin=${2:-target/debug/portcullis}
max_examples=${OPENAPI_FUZZ_EXAMPLES:-15}
time_limit=${OPENAPI_FUZZ_SECONDS:-300}
seed=${OPENAPI_FUZZ_SEED:-20261130}

if [ ! -x "$bin" ]; then
  echo "openapi fuzz: $bin is missing; run the test step (cargo nextest run) first" >&2
  exit 1
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "openapi fuzz: service stopped"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The checkpoint signing key the service refuses to start without: the private PEM block of a
# fresh `portcullis audit keygen`.
"$bin" audit keygen | sed -n '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/p' >"$work/audit-key.pem"

token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
sha=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
cat >"$work/config.yaml" <<EOF
server:
  http_addr: 127.0.0.1:0
  grpc_addr: 127.0.0.1:0
store:
  url: sqlite://$work/fuzz.db
auth:
  tokens:
    - name: openapi-fuzz
      sha256: $sha
      roles: [admin]
audit:
  signing_key:
    file: $work/audit-key.pem
telemetry:
  log_format: json
  log_level: warn,portcullis::cli=info
EOF

"$bin" serve --config "$work/config.yaml" >"$work/serve.log" 2>&1 &
pid=$!

# The service binds port 0 and logs the address it got.
url=""
for _ in $(seq 1 100); do
  addr=$(grep -o '"http":"127.0.0.1:[0-9]*"' "$work/serve.log" | head -n1 | cut -d'"' -f4 || true)
  if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then
    url="http://$addr"
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
if [ -z "$url" ]; then
  echo "openapi fuzz: the service did not become ready; its log:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "openapi fuzz: service at $url (pid $pid); $max_examples examples per operation, seed $seed, at most ${time_limit}s"

status=0
timeout --kill-after=10 "$time_limit" "$st" run "$url/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --generation-database none \
  --workers 2 \
  --request-timeout 65 \
  --no-color \
  --output-sanitize true || status=$?

# While the service is up, with the decisions the fuzzing left: a decision's proof and the audit
# export checked by a verifier written from docs/audit.md alone (.ci/independent_verify.py), with
# the Python given as the third argument.
if [ "$status" -eq 0 ] && [ -n "${3:-}" ]; then
  auth="Authorization: Bearer $token"
  id=$(curl -fsS -H "$auth" "$url/v1/decisions?page_size=1" \
    | "$3" -c 'import json,sys; print(json.load(sys.stdin)["decisions"][0]["id"])')
  curl -fsS -H "$auth" "$url/v1/decisions/$id/proof" >"$work/proof.json"
  curl -fsS "$url/v1/audit/public-key" \
    | "$3" -c 'import json,sys; print(json.load(sys.stdin)["public_key_pem"], end="")' >"$work/public.pem"
  curl -fsS -H "$auth" "$url/v1/audit/export" >"$work/export.jsonl"
  if ! "$3" .ci/independent_verify.py "$work/public.pem" "$work/proof.json" "$work/export.jsonl"; then
    echo "independent verification: FAILED — a verifier written from docs/audit.md disagrees" >&2
    status=1
  fi
fi

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "openapi fuzz: FAILED — schemathesis ran past ${time_limit}s" >&2
elif [ "$status" -ne 0 ]; then
  echo "openapi fuzz: FAILED — the served document and the server disagree (see the failures above; 'st replay <id>' does not work after this script stops the service, use the curl line instead)" >&2
else
  echo "openapi fuzz: the served document and the server agree"
fi
exit "$status"
