#!/usr/bin/env bash
# Run fedchain through Flower's own CLI (`flwr run .`) on a local simulation SuperLink, then stop
# the SuperLink and SuperExec that `flwr run` leaves behind, by PID.
#   scripts/flwr_run.sh [--run-config "num-server-rounds=3 he=false"] [--federation-config "num-supernodes=5"]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
export FLWR_HOME="${FLWR_HOME:-$root/.flwr}"
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 FLWR_TELEMETRY_ENABLED=0 RAY_USAGE_STATS_ENABLED=0

before=$(pgrep -f "flower-super(link|exec).*" || true)
stop_local_superlink() {
  local pid
  for pid in $(pgrep -f "flower-super(link|exec).*" || true); do
    if ! grep -qx "$pid" <<<"$before"; then
      kill "$pid" 2>/dev/null || true
    fi
  done
}
trap stop_local_superlink EXIT
run_config=""
fed_config="num-supernodes=5 client-resources-num-cpus=1"
while [ $# -gt 0 ]; do
  case "$1" in
    --run-config) run_config="$2"; shift 2 ;;
    --federation-config) fed_config="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$root"
args=(run . --stream --federation-config "$fed_config")
[ -n "$run_config" ] && args+=(--run-config "$run_config")
flwr "${args[@]}"
