#!/usr/bin/env bash
# PUT latency with a write quorum of 1 of 2 local replicas: healthy, then with one replica
# silent (its writes and publishes hang, through the fault-injection wrapper). The quorum
# should keep a silent replica from slowing writes down (target: under 2 × healthy).
#
#   scripts/measure_silent_replica.sh [SMALL_COUNT] [LARGE_MIB] [LARGE_COUNT]
#       (defaults: 50 × 1 KiB, 3 × 64 MiB; medians)
#
# HANSA_BIN (default target/release/hansa; build it with `cargo build --release`) and the
# conformance venv (boto3; made by conformance/clients.sh) are used. Everything listens on
# 127.0.0.1 and is stopped at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
small_count=${1:-50}
large_mib=${2:-64}
large_count=${3:-3}
hansa=${HANSA_BIN:-$repo/target/release/hansa}
venv=${HANSA_VENV:-$repo/target/conformance-venv}
python="$venv/bin/python"
mkdir -p "$repo/target"
work=$(mktemp -d "$repo/target/silent.XXXXXX")
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=HANSABENCH AWS_SECRET_ACCESS_KEY=bench-secret-0123456789abcdefghijklmnopq
export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1 AWS_CONFIG_FILE=/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

run() { # name faults-of-disk-b
	local name=$1 faults=$2 port dir
	port=$(free_port); dir="$work/$name"; mkdir -p "$dir"
	{
		printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata_dir = "%s/data"\n' "$port" "$dir"
		printf '[[credential]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
		printf '[[backend]]\nid = "disk-a"\nkind = "local"\npath = "%s/a"\n' "$dir"
		printf '[[backend]]\nid = "disk-b"\nkind = "local"\npath = "%s/b"\n%s\n' "$dir" "$faults"
		printf '[policy.default]\nreplicas = 2\nwrite_quorum = 1\n'
	} >"$dir.toml"
	"$hansa" serve --config "$dir.toml" >"$dir.log" 2>&1 & pid=$!
	wait_port "$port"
	"$python" - "http://127.0.0.1:$port" "$name" "$small_count" "$large_mib" "$large_count" <<'PY'
import os, statistics, sys, time, boto3, botocore.config
ep, name, n_small, large_mib, n_large = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s3 = boto3.client("s3", endpoint_url=ep, config=botocore.config.Config(retries={"max_attempts": 1}))
s3.create_bucket(Bucket="silent")
def median_put(body, n, prefix):
    times = []
    for i in range(n):
        t = time.monotonic()
        s3.put_object(Bucket="silent", Key=f"{prefix}/{i}", Body=body)
        times.append(time.monotonic() - t)
    return statistics.median(times)
small = os.urandom(1024)
large = os.urandom(large_mib << 20)
median_put(small, 5, "warm")
print(f"{name} {median_put(small, n_small, 'small') * 1000:.2f} {median_put(large, n_large, 'large') * 1000:.1f}")
PY
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

healthy=$(run healthy "")
silent=$(run silent 'faults = { writes = "hang", publishes = "hang" }')
read -r _ hs hl <<<"$healthy"
read -r _ ss sl <<<"$silent"
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "PUT median latency, W = 1 of 2 local replicas (ms)"
printf '%-28s %12s %12s\n' "" "1 KiB" "${large_mib} MiB"
printf '%-28s %12s %12s\n' "healthy" "$hs" "$hl"
printf '%-28s %12s %12s\n' "one replica silent" "$ss" "$sl"
printf '%-28s %12s %12s\n' "silent / healthy" "$(ratio "$ss" "$hs")" "$(ratio "$sl" "$hl")"
