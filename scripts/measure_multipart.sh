#!/usr/bin/env bash
# Peak memory and throughput of one large multipart upload and its download through
# `hansa serve` (embedded default: two local replicas), next to the same transfers through a
# peer server on the same disk (`rclone serve s3`, one copy) and `cp`.
#
#   scripts/measure_multipart.sh [SIZE_MIB]      (default 5120: the 5 GiB of issue 4)
#
# Transfers use `aws s3 cp` with the cli's defaults (multipart above 8 MiB, 8 MiB parts, 10
# requests at once). The peak resident memory of each server is its VmHWM (/proc/PID/status),
# reset before each transfer where the kernel allows it (clear_refs), and sampled every 0.2 s
# together with VmRSS, so that upload and download get a peak each.
#
# Needs a release build (HANSA_BIN, default target/release/hansa: `cargo build --release`) and
# the conformance venv (aws cli, rclone; made by conformance/clients.sh; HANSA_VENV). Files go
# to a temporary directory under MEASURE_DIR (default target/), which needs about 5 × SIZE free
# (the file, two replicas plus their staged parts, the download). Everything listens on
# 127.0.0.1 and is stopped and removed at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-5120}
[[ "$size_mib" =~ ^[0-9]+$ && "$size_mib" -gt 0 ]] || { echo "usage: $0 [SIZE_MIB]" >&2; exit 2; }
hansa=${HANSA_BIN:-$repo/target/release/hansa}
venv=${HANSA_VENV:-$repo/target/conformance-venv}
aws=${AWS_CLI:-$venv/bin/aws}
rclone=${RCLONE:-$venv/bin/rclone}
for tool in "$hansa" "$aws" "$rclone"; do
	[[ -x "$tool" ]] || { echo "missing $tool (see the header of $0)" >&2; exit 1; }
done
mkdir -p "${MEASURE_DIR:-$repo/target}"
work=$(mktemp -d "${MEASURE_DIR:-$repo/target}/measure-mpu.XXXXXX")
need_kib=$((size_mib * 1024 * 5))
free_kib=$(df -Pk "$work" | awk 'NR == 2 {print $4}')
if ((free_kib < need_kib)); then
	echo "$work: $((free_kib >> 10)) MiB free, about $((need_kib >> 10)) MiB needed" >&2
	rmdir "$work"
	exit 1
fi

pids=()
sampler=
peak_kib=0
cleanup() {
	set +e
	[[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
now() { python3 -c 'import time; print(time.monotonic())'; }
mibs() { python3 -c "print(f'{$size_mib / ($2 - $1):.1f}')"; }
kib_to_mib() { python3 -c "print(f'{$1 / 1024:.1f}')"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# Peak memory of PID while a command runs: VmHWM reset first (where allowed), then sampled
# every 0.2 s with VmRSS; the larger of the sampled maxima and the final VmHWM, in KiB.
status_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
start_sampling() { # PID FILE
	echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true
	(
		max=0
		while kill -0 "$1" 2>/dev/null; do
			for f in VmHWM VmRSS; do
				v=$(status_kib "$1" "$f")
				((${v:-0} > max)) && max=$v
			done
			echo "$max" >"$2.tmp" && mv "$2.tmp" "$2"
			sleep 0.2
		done
	) &
	sampler=$!
}
stop_sampling() { # PID FILE; sets peak_kib
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=
	local sampled final
	sampled=$(cat "$2" 2>/dev/null || echo 0)
	final=$(status_kib "$1" VmHWM)
	peak_kib=$((sampled > final ? sampled : final))
}

echo "writing $size_mib MiB of random bytes to $work"
head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
sync
declare -A up down rss_up rss_down etag

t0=$(now); cp "$work/file" "$work/copy"; sync; t1=$(now)
up[cp]=$(mibs "$t0" "$t1")
drop_caches
t0=$(now); cat "$work/copy" >/dev/null; t1=$(now)
down[cp]=$(mibs "$t0" "$t1")
rm -f "$work/copy"

# One server: upload with `aws s3 cp`, download, compare, remove. NAME PID PORT
measure() {
	local name=$1 pid=$2 ep="http://127.0.0.1:$3" t0 t1
	local -a cli=("$aws" --endpoint-url "$ep" --cli-read-timeout 600)
	"${cli[@]}" s3 mb s3://measure >/dev/null
	drop_caches
	start_sampling "$pid" "$work/$name.up.peak"
	t0=$(now); "${cli[@]}" s3 cp --only-show-errors "$work/file" s3://measure/big; t1=$(now)
	stop_sampling "$pid" "$work/$name.up.peak"
	rss_up[$name]=$peak_kib
	up[$name]=$(mibs "$t0" "$t1")
	etag[$name]=$("${cli[@]}" s3api head-object --bucket measure --key big --query ETag --output text)
	drop_caches
	start_sampling "$pid" "$work/$name.down.peak"
	t0=$(now); "${cli[@]}" s3 cp --only-show-errors s3://measure/big "$work/back"; t1=$(now)
	stop_sampling "$pid" "$work/$name.down.peak"
	rss_down[$name]=$peak_kib
	down[$name]=$(mibs "$t0" "$t1")
	cmp "$work/file" "$work/back" || { echo "$name returned different bytes" >&2; exit 1; }
	rm -f "$work/back"
	"${cli[@]}" s3 rm --only-show-errors s3://measure/big
	"${cli[@]}" s3 rb s3://measure >/dev/null
	echo "$name: upload ${up[$name]} MiB/s, download ${down[$name]} MiB/s, peak RSS" \
		"$(kib_to_mib "${rss_up[$name]}") / $(kib_to_mib "${rss_down[$name]}") MiB, ETag ${etag[$name]}"
}

export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1 AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER=""
unset AWS_PROFILE AWS_ENDPOINT_URL 2>/dev/null || true

# hansa serve: the embedded default, two local replicas under --data
port=$(free_port)
"$hansa" serve --data "$work/hansa" --listen "127.0.0.1:$port" >"$work/hansa.log" 2>&1 &
hansa_pid=$!
pids+=("$hansa_pid")
wait_port "$port"
for _ in $(seq 50); do [[ -s "$work/hansa/credentials.toml" ]] && break; sleep 0.1; done
AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key_id = "\(.*\)"/\1/p' "$work/hansa/credentials.toml")
AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_access_key = "\(.*\)"/\1/p' "$work/hansa/credentials.toml")
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
measure hansa "$hansa_pid" "$port"
rss_idle=$(status_kib "$hansa_pid" VmRSS)
kill "$hansa_pid"
wait "$hansa_pid" 2>/dev/null || true
rm -rf "$work/hansa"

# rclone serve s3 on a directory of the same disk
port=$(free_port)
mkdir -p "$work/rclone"
"$rclone" serve s3 --addr "127.0.0.1:$port" --auth-key "$AWS_ACCESS_KEY_ID,$AWS_SECRET_ACCESS_KEY" \
	"$work/rclone" >"$work/rclone.log" 2>&1 &
rclone_pid=$!
pids+=("$rclone_pid")
wait_port "$port"
measure rclone "$rclone_pid" "$port"
kill "$rclone_pid"
wait "$rclone_pid" 2>/dev/null || true

echo
echo "$size_mib MiB with aws s3 cp (multipart, 8 MiB parts), $(nproc) cores"
printf '%-28s %12s %14s %16s %18s\n' target "upload MiB/s" "download MiB/s" "peak RSS up MiB" "peak RSS down MiB"
printf '%-28s %12s %14s %16s %18s\n' "cp / cat (the disk)" "${up[cp]}" "${down[cp]}" - -
printf '%-28s %12s %14s %16s %18s\n' "hansa serve (2 replicas)" "${up[hansa]}" "${down[hansa]}" \
	"$(kib_to_mib "${rss_up[hansa]}")" "$(kib_to_mib "${rss_down[hansa]}")"
printf '%-28s %12s %14s %16s %18s\n' "rclone serve s3 (1 copy)" "${up[rclone]}" "${down[rclone]}" \
	"$(kib_to_mib "${rss_up[rclone]}")" "$(kib_to_mib "${rss_down[rclone]}")"
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
up_kib=${rss_up[hansa]} down_kib=${rss_down[hansa]}
peak_hansa=$((up_kib > down_kib ? up_kib : down_kib))
echo
echo "hansa serve peak RSS: $(kib_to_mib "$peak_hansa") MiB (target: under 200 MiB); RSS after the transfers: $(kib_to_mib "${rss_idle:-0}") MiB"
echo "ratios hansa / rclone (higher is better for hansa): upload $(ratio "${up[hansa]}" "${up[rclone]}"), download $(ratio "${down[hansa]}" "${down[rclone]}")"
echo "ratios hansa / disk: upload $(ratio "${up[hansa]}" "${up[cp]}"), download $(ratio "${down[hansa]}" "${down[cp]}")"
echo "ETags: hansa ${etag[hansa]}, rclone ${etag[rclone]}"
