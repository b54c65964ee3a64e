#!/usr/bin/env bash
# Starts the local AWS emulator (moto) on 127.0.0.1 and a free port, waits until it answers,
# and prints the environment that points the AWS SDK at it:
#
#   eval "$(tests/scripts/start-moto.sh)"      # sets AWS_ENDPOINT_URL, MOTO_PID, ...
#   ...                                         # run things against it
#   tests/scripts/stop-moto.sh                  # kills $MOTO_PID
#
# The Rust test harness (seatkeeper-tests, `Moto::start`) does not need this script: it
# starts its own server. This is for shells, demos and CI steps outside `cargo test`.
#
# Options:
#   --port N       use this port instead of a free one
#   --parent PID   also stop the server when process PID ends (default: the calling shell),
#                  so a forgotten server does not outlive the session; --parent 0 disables it
set -euo pipefail

port=""
parent="$PPID"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --parent) parent="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

server="${SEATKEEPER_MOTO_SERVER:-moto_server}"
if ! command -v "$server" >/dev/null 2>&1; then
  echo "$server is not on PATH: pip install 'moto[server]==5.2.1' (see shared/reference/aws-local.md)" >&2
  exit 1
fi

if [ -z "$port" ]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
fi

log="${TMPDIR:-/tmp}/seatkeeper-moto-$port.log"
# MOTO_PORT: moto calls itself through this port (Step Functions tasks).
MOTO_PORT="$port" nohup "$server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
pid=$!

if [ "$parent" != "0" ]; then
  # Watchdog: stops the server once the parent is gone (or the server stopped by itself).
  (
    while kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 2; done
    kill "$pid" 2>/dev/null || true
  ) >/dev/null 2>&1 </dev/null &
  disown $! 2>/dev/null || true
fi

ready=""
for _ in $(seq 1 600); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "moto_server exited; its output ($log):" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  if python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=2).read()
PY
  then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  kill "$pid" 2>/dev/null || true
  echo "moto_server did not answer on port $port within 60 s; its output ($log):" >&2
  tail -n 40 "$log" >&2
  exit 1
fi

cat <<ENV
export MOTO_PID=$pid
export MOTO_PORT=$port
export MOTO_LOG=$log
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
ENV
