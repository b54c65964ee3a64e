#!/usr/bin/env bash
# Stops the emulator started by start-moto.sh: by the PID it printed (MOTO_PID), or the one
# given as the first argument. Never by name, so other sessions' servers are left alone.
set -euo pipefail
pid="${1:-${MOTO_PID:-}}"
if [ -z "$pid" ]; then
  echo "usage: stop-moto.sh PID (or set MOTO_PID)" >&2
  exit 2
fi
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
fi
