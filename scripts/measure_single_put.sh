#!/usr/bin/env bash
# Peak memory and throughput of one large single PUT and GET through `hansa serve`
# (embedded default: two local replicas), next to `cp` of the same file on the same disk.
#
#   scripts/measure_single_put.sh [SIZE_MIB]      (default 2048)
#
# Needs the aws cli (AWS_CLI, default: the conformance venv's) and a built gateway
# (HANSA_BIN, default target/release/hansa). Peak resident memory is read from the gateway's
# /proc/PID/status (VmHWM) after the transfers.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-2048}
hansa=${HANSA_BIN:-$repo/target/release/hansa}
aws=${AWS_CLI:-$repo/target/conformance-venv/bin/aws}
work=$(mktemp -d "${MEASURE_DIR:-$repo/target}/measure.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$hansa" serve --data "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key_id = "\(.*\)"/\1/p' "$work/data/credentials.toml")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_access_key = "\(.*\)"/\1/p' "$work/data/credentials.toml")
export AWS_DEFAULT_REGION=us-east-1
s3api() { "$aws" --endpoint-url "http://127.0.0.1:$port" s3api "$@"; }

head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
sync
seconds() { python3 -c 'import time; print(time.monotonic())'; }
rate() { python3 -c "print(f'{$size_mib / ($2 - $1):.1f} MiB/s ({$2 - $1:.1f} s)')"; }

t0=$(seconds); cp "$work/file" "$work/copy"; sync; t1=$(seconds)
echo "cp:   $(rate "$t0" "$t1")"
rm -f "$work/copy"

s3api create-bucket --bucket measure >/dev/null
t0=$(seconds); s3api put-object --bucket measure --key big --body "$work/file" >/dev/null; t1=$(seconds)
echo "PUT:  $(rate "$t0" "$t1")   (2 replicas, fsynced)"
t0=$(seconds); s3api get-object --bucket measure --key big "$work/back" >/dev/null; t1=$(seconds)
echo "GET:  $(rate "$t0" "$t1")"
cmp "$work/file" "$work/back" && echo "bytes: identical"
echo "hansa serve peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
