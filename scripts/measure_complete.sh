#!/usr/bin/env bash
# How long CompleteMultipartUpload takes through `hansa serve` on one cloud backend, with the
# provider's native multipart upload and with staged parts (`native_multipart = false`), next
# to the same upload sent to the S3 server directly. The servers are the test servers (moto
# for `s3`, Azurite for `azure`), so this runs inside scripts/test-servers.sh:
#
#   scripts/test-servers.sh scripts/measure_complete.sh [SIZE_MIB]     (default 256)
#
# The upload is boto3 with 8 MiB parts, sent one after the other; the table gives the time of
# the parts and of the completion. HANSA_BIN (default target/release/hansa) and a Python with
# boto3 (HANSA_PYTHON, default the conformance venv's) are used. Everything listens on
# 127.0.0.1 and is stopped at exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
[[ "$size_mib" =~ ^[0-9]+$ && "$size_mib" -ge 8 ]] || { echo "usage: $0 [SIZE_MIB >= 8]" >&2; exit 2; }
hansa=${HANSA_BIN:-$repo/target/release/hansa}
python=${HANSA_PYTHON:-$repo/target/conformance-venv/bin/python}
for tool in "$hansa" "$python"; do
	[[ -x "$tool" ]] || { echo "missing $tool (see the header of $0)" >&2; exit 1; }
done
for v in HANSA_TEST_S3_ENDPOINT HANSA_TEST_S3_BUCKET HANSA_TEST_AZURE_ENDPOINT; do
	[[ -n "${!v:-}" ]] || { echo "$v is not set: run this inside scripts/test-servers.sh" >&2; exit 1; }
done
work=$(mktemp -d "$repo/target/measure-complete.XXXXXX")
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

key_id=HANSAMEASURE
secret=measure-secret-0123456789abcdefghijklmnop
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# upload ENDPOINT ACCESS_KEY SECRET BUCKET LABEL: one multipart upload, prints a table row.
upload() {
	"$python" - "$@" "$size_mib" <<'PY'
import os, sys, time, boto3
from botocore.config import Config
endpoint, key_id, secret, bucket, label, size_mib = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id,
                  aws_secret_access_key=secret, region_name="us-east-1",
                  config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
try:
    s3.create_bucket(Bucket=bucket)
except Exception:
    pass
key = f"measure/{label}-{time.time_ns()}"
part = os.urandom(8 << 20)
count = int(size_mib) // 8
upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
start = time.monotonic()
parts = []
for n in range(1, count + 1):
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=part)
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
sent = time.monotonic()
s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                             MultipartUpload={"Parts": parts})
done = time.monotonic()
size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
assert size == count * (8 << 20), size
print(f"| {label} | {count * 8} | {sent - start:.2f} | {done - sent:.3f} |")
PY
}

# serve NAME BACKEND_TOML: hansa serve with that one backend as its only replica.
serve() {
	local port dir=$work/$1
	port=$(free_port)
	mkdir -p "$dir"
	{
		printf '[server]\nlisten = ["127.0.0.1:%s"]\ndata_dir = "%s/data"\n' "$port" "$dir"
		printf '[[credential]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\n' "$key_id" "$secret"
		printf '%s\n' "$2"
	} >"$dir/hansa.toml"
	"$hansa" serve --config "$dir/hansa.toml" >"$dir/log" 2>&1 &
	pid=$!
	wait_port "$port"
	upload "http://127.0.0.1:$port" "$key_id" "$secret" measure "$1"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
}

s3_backend() { # native_multipart
	cat <<TOML
[[backend]]
id = "moto"
kind = "s3"
endpoint = "$HANSA_TEST_S3_ENDPOINT"
bucket = "$HANSA_TEST_S3_BUCKET"
prefix = "measure-complete"
allow_http = true
access_key_id_env = "HANSA_TEST_S3_ACCESS_KEY"
secret_access_key_env = "HANSA_TEST_S3_SECRET_KEY"
native_multipart = $1
TOML
}
azure_backend() { # native_multipart
	cat <<TOML
[[backend]]
id = "azurite"
kind = "azure"
endpoint = "$HANSA_TEST_AZURE_ENDPOINT"
account = "$HANSA_TEST_AZURE_ACCOUNT"
container = "$HANSA_TEST_AZURE_CONTAINER"
prefix = "measure-complete"
allow_http = true
access_key_env = "HANSA_TEST_AZURE_KEY"
native_multipart = $1
TOML
}

echo "| path | MiB | parts s | complete s |"
echo "|---|---|---|---|"
upload "$HANSA_TEST_S3_ENDPOINT" "$HANSA_TEST_S3_ACCESS_KEY" "$HANSA_TEST_S3_SECRET_KEY" \
	"$HANSA_TEST_S3_BUCKET" "moto direct"
serve "hansa → moto, native" "$(s3_backend true)"
serve "hansa → moto, staged" "$(s3_backend false)"
serve "hansa → Azurite, native" "$(azure_backend true)"
serve "hansa → Azurite, staged" "$(azure_backend false)"
