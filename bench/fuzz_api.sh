#!/usr/bin/env bash
# Fuzz the job API with schemathesis (all checks) against a real gateway.
# Not part of CI: schemathesis is installed into a throwaway virtualenv.
#   bash bench/fuzz_api.sh [max-examples]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-200}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/st" && "$work/st/bin/pip" install -q schemathesis
redis-server --port 16399 --save "" --appendonly no >/dev/null &
cat > "$work/tg.yaml" <<'YAML'
redis: {url: redis://127.0.0.1:16399/0}
gateway: {listen: 127.0.0.1:18080, admin_listen: 127.0.0.1:19090}
routes:
  - {name: orders, match: {path_prefix: /orders, methods: [POST]}, mode: async}
YAML
tidegate gateway -c "$work/tg.yaml" > "$work/gateway.log" 2>&1 &
for _ in $(seq 50); do curl -sf localhost:19090/readyz >/dev/null && break; sleep 0.2; done
curl -sf localhost:19090/readyz >/dev/null || { echo "gateway did not start (tidegate on PATH?)" >&2; cat "$work/gateway.log" >&2; exit 1; }
curl -s -X POST localhost:18080/orders -d x >/dev/null
"$work/st/bin/schemathesis" run http://127.0.0.1:18080/_tidegate/openapi.json \
  --checks all --max-examples "$examples"
if grep -q Traceback "$work/gateway.log"; then
  echo "the gateway logged a traceback:" >&2
  cat "$work/gateway.log" >&2
  exit 1
fi
