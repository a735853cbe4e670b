#!/usr/bin/env bash
# Side-by-side benchmark, one run: the same clients against
#   direct   the disk itself (cp to write, cat to read)
#   hansa-1  hansa serve, one local replica
#   hansa-2  hansa serve, two local replicas (the embedded default)
#   rclone   rclone serve s3 on a local directory (a peer S3 server, one copy)
# and reports throughput and ratios. Large objects go through `aws s3api put-object` /
# `get-object` (single PUT); small ones through boto3 (sequential PUT/GET of 16 KiB objects).
#
#   scripts/bench.sh [SIZE_MIB] [SMALL_COUNT]     (defaults: 1024, 300)
#
# HANSA_BIN (default target/release/hansa; build it with `cargo build --release`) and the
# conformance venv (aws cli, boto3, rclone; made by conformance/clients.sh) are used.
# Everything listens on 127.0.0.1 and is stopped at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-1024}
small_count=${2:-300}
hansa=${HANSA_BIN:-$repo/target/release/hansa}
venv=${HANSA_VENV:-$repo/target/conformance-venv}
aws="$venv/bin/aws"
python="$venv/bin/python"
rclone="$venv/bin/rclone"
work=$(mktemp -d "$repo/target/bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

export AWS_ACCESS_KEY_ID=HANSABENCH AWS_SECRET_ACCESS_KEY=bench-secret-0123456789abcdefghijklmnopq
export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1 AWS_CONFIG_FILE=/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
now() { python3 -c 'import time; print(time.monotonic())'; }
mibs() { python3 -c "print(f'{$size_mib / ($2 - $1):.1f}')"; }

hansa_config() { # replicas port dir
	{
		printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata_dir = "%s/data"\n' "$2" "$3"
		printf '[[credential]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
		for i in $(seq "$1"); do printf '[[backend]]\nid = "disk-%s"\nkind = "local"\npath = "%s/b%s"\n' "$i" "$3" "$i"; done
	} >"$3.toml"
}

declare -A put_rate get_rate small_put small_get
head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
sync

t0=$(now); cp "$work/file" "$work/copy"; sync; t1=$(now); put_rate[direct]=$(mibs "$t0" "$t1")
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); cat "$work/copy" >/dev/null; t1=$(now); get_rate[direct]=$(mibs "$t0" "$t1")
rm -f "$work/copy"

run_server() { # name endpoint-port
	local name=$1 port=$2 ep="http://127.0.0.1:$2"
	"$aws" --endpoint-url "$ep" s3api create-bucket --bucket bench >/dev/null
	local t0 t1
	t0=$(now); "$aws" --endpoint-url "$ep" s3api put-object --bucket bench --key big --body "$work/file" >/dev/null; t1=$(now)
	put_rate[$name]=$(mibs "$t0" "$t1")
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	t0=$(now); "$aws" --endpoint-url "$ep" s3api get-object --bucket bench --key big "$work/back" >/dev/null; t1=$(now)
	get_rate[$name]=$(mibs "$t0" "$t1")
	cmp -s "$work/file" "$work/back" || { echo "$name returned different bytes" >&2; exit 1; }
	rm -f "$work/back"
	read -r small_put[$name] small_get[$name] < <("$python" - "$ep" "$small_count" <<'PY'
import os, sys, time, boto3, botocore.config
ep, n = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=ep, config=botocore.config.Config(retries={"max_attempts": 1}))
body = os.urandom(16 << 10)
t = time.monotonic()
for i in range(n):
    s3.put_object(Bucket="bench", Key=f"small/{i}", Body=body)
put = n / (time.monotonic() - t)
t = time.monotonic()
for i in range(n):
    assert s3.get_object(Bucket="bench", Key=f"small/{i}")["Body"].read() == body
get = n / (time.monotonic() - t)
print(f"{put:.0f} {get:.0f}")
PY
)
}

for replicas in 1 2; do
	port=$(free_port); dir="$work/hansa-$replicas"; mkdir -p "$dir"
	hansa_config "$replicas" "$port" "$dir"
	"$hansa" serve --config "$dir.toml" >"$dir.log" 2>&1 & pids+=($!)
	wait_port "$port"
	run_server "hansa-$replicas" "$port"
	kill "${pids[-1]}"
done

port=$(free_port); mkdir -p "$work/rclone"
"$rclone" serve s3 --addr "127.0.0.1:$port" --auth-key "$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY" \
	"$work/rclone" >"$work/rclone.log" 2>&1 & pids+=($!)
wait_port "$port"
run_server rclone "$port"

echo
echo "single PUT/GET of $size_mib MiB (aws s3api), and $small_count × 16 KiB (boto3, sequential)"
printf '%-9s %12s %12s %14s %14s\n' target "PUT MiB/s" "GET MiB/s" "small PUT/s" "small GET/s"
for t in direct hansa-1 hansa-2 rclone; do
	printf '%-9s %12s %12s %14s %14s\n' "$t" "${put_rate[$t]}" "${get_rate[$t]}" "${small_put[$t]:--}" "${small_get[$t]:--}"
done
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
echo "ratios (higher is better for hansa):"
echo "  hansa-1 / rclone: PUT $(ratio "${put_rate[hansa-1]}" "${put_rate[rclone]}")  GET $(ratio "${get_rate[hansa-1]}" "${get_rate[rclone]}")  small PUT $(ratio "${small_put[hansa-1]}" "${small_put[rclone]}")  small GET $(ratio "${small_get[hansa-1]}" "${small_get[rclone]}")"
echo "  hansa-2 / rclone: PUT $(ratio "${put_rate[hansa-2]}" "${put_rate[rclone]}")  GET $(ratio "${get_rate[hansa-2]}" "${get_rate[rclone]}")"
echo "  hansa-1 / direct: PUT $(ratio "${put_rate[hansa-1]}" "${put_rate[direct]}")  GET $(ratio "${get_rate[hansa-1]}" "${get_rate[direct]}")"
