#!/usr/bin/env bash
# Profiles `hansa serve` (two local replicas, as the benchmark's hansa-2) with `perf record`
# while s3bench drives one workload against it, then prints where the CPU went: the hottest
# functions (self time) and the split between user space and the kernel.
#
# Usage: scripts/profile.sh [workload] [-- s3bench flags]
#   workload: put-large (default), multipart, put-small, get-small, list, get-large, mixed
#   e.g. scripts/profile.sh multipart -- --count 4
# Environment: HANSA_BIN, S3BENCH_BIN (default target/release/{hansa,s3bench}; build with
# `cargo build --release --bin hansa --bin s3bench`), PROFILE_TOP (rows shown, 25).
# Needs perf (apt-get install linux-perf). Everything listens on 127.0.0.1 only and is stopped
# at exit; the data lives in a temporary directory under target/ (the disk being measured),
# removed at exit together with perf.data.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
workload=put-large
if [[ $# -gt 0 && "$1" != "--" ]]; then
	workload=$1
	shift
fi
[[ "${1:-}" == "--" ]] && shift
HANSA=${HANSA_BIN:-$REPO/target/release/hansa}
S3BENCH=${S3BENCH_BIN:-$REPO/target/release/s3bench}
for bin in "$HANSA" "$S3BENCH"; do
	[[ -x "$bin" ]] || {
		echo "profile: no $bin (cargo build --release --bin hansa --bin s3bench)" >&2
		exit 1
	}
done
command -v perf >/dev/null || {
	echo "profile: perf is needed (apt-get install linux-perf)" >&2
	exit 1
}

mkdir -p "$REPO/target"
work=$(mktemp -d "$REPO/target/profile.XXXXXX")
hansa_pid=""
cleanup() {
	[[ -n "$hansa_pid" ]] && kill "$hansa_pid" 2>/dev/null && wait "$hansa_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=profilekey
secret=profilesecret0123456789
cat >"$work/hansa.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
data_dir = "$work/data"

[[credential]]
access_key_id = "$key"
secret_access_key = "$secret"

[[backend]]
id = "disk-1"
kind = "local"
path = "$work/b1"

[[backend]]
id = "disk-2"
kind = "local"
path = "$work/b2"
TOML
RUST_LOG=warn "$HANSA" serve --config "$work/hansa.toml" >"$work/hansa.log" 2>&1 &
hansa_pid=$!
for _ in $(seq 100); do
	(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

bench() {
	"$S3BENCH" --endpoint "http://127.0.0.1:$port" --access-key "$key" --secret-key "$secret" \
		--workload "$workload" --server hansa-2 "$@"
}
# Set-up (objects a read workload needs) happens in a first, unprofiled run.
bench "$@" >/dev/null
perf record -F 499 -g -o "$work/perf.data" -p "$hansa_pid" -- sleep 600 2>"$work/perf.log" &
perf_pid=$!
sleep 1
bench "$@"
kill -INT "$perf_pid"
wait "$perf_pid" || true

echo
echo "== where hansa's CPU went during $workload (self time; perf record -F 499) =="
perf report -i "$work/perf.data" --no-children --sort dso,symbol --percent-limit 0.5 --stdio 2>/dev/null |
	grep -E '^ +[0-9]' | head -n "${PROFILE_TOP:-25}"
echo
echo "== user space against the kernel =="
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 8
