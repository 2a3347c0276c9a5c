#!/usr/bin/env bash
# `make run`: starts the three-process service (coordinator + GPU worker +
# CPU worker) on the default model, sends one chat request through gRPC,
# streams the answer, then keeps serving until Ctrl-C.
set -euo pipefail
BUILD=${1:?build dir}
MODEL=${2:?model path}
PROMPT=${3:?prompt}
ADDR=${TANDEM_ADDR:-127.0.0.1:50051}
METRICS=${TANDEM_METRICS:-127.0.0.1:9400}
GPU_LAYERS=${GPU_LAYERS:-10}

"$BUILD/tandem-coordinator" -m "$MODEL" --listen "$ADDR" --metrics "$METRICS" --gpu-layers "$GPU_LAYERS" \
  --gpu-worker-metrics 127.0.0.1:9401 --cpu-worker-metrics 127.0.0.1:9402 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
trap 'echo; echo "run: stopping"; exit 0' INT TERM

for _ in $(seq 600); do
  kill -0 $PID 2>/dev/null || { echo "run: the coordinator exited (see the messages above)" >&2; exit 1; }
  "$BUILD/tandem" client health --addr "$ADDR" --timeout 1 >/dev/null 2>&1 && break
  sleep 0.2
done
"$BUILD/tandem" client health --addr "$ADDR" --timeout 1 >/dev/null || { echo "run: the service did not become ready" >&2; exit 1; }

echo "run: > $PROMPT"
"$BUILD/tandem" client chat --addr "$ADDR" -n 128 "$PROMPT"
echo
"$BUILD/tandem" client info --addr "$ADDR" | python3 -c '
import json, sys
info = json.load(sys.stdin)
print("run: serving %s (%s, %d layers) on gRPC %s" % (info["name"], info["architecture"], info["n_layer"], sys.argv[1]))
print("run: metrics  coordinator http://%s/metrics" % sys.argv[2])
for s in info["stages"]:
    print("run:          %s worker  %s  (layers %d-%d%s, %s)" % (s["worker"], s["metrics_url"], s["layer_begin"],
          s["layer_end"] - 1, " + head" if s["head"] else "", s["device"]))
print("run: try      %s/tandem client generate --addr %s \"Once upon a time\"" % (sys.argv[3], sys.argv[1]))
print("run: Ctrl-C stops the service")
' "$ADDR" "$METRICS" "$BUILD"
wait $PID
