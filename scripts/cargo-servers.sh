# shellcheck shell=bash
# Peer S3 servers compiled from crates.io, installed once into a cache directory and reused.
# Sourced by scripts/test-servers.sh (HANSA_FULL_SERVERS=1) and scripts/bench-peers.sh.
#
#   install_cargo_server ROOT BUILD_DIR NAME   (NAME: s3s-fs | garage)
# installs ROOT/bin/NAME when it is missing (cargo install --locked, pinned version) and
# returns non-zero when cargo is missing or the install fails. BUILD_DIR is cargo's target
# directory: keep it until every server is installed, so an interrupted build resumes.

CARGO_SERVER_S3S_FS_VERSION=0.14.1
CARGO_SERVER_GARAGE_VERSION=2.5.0

install_cargo_server() {
	local root=$1 build=$2 name=$3
	[[ -x "$root/bin/$name" ]] && return 0
	command -v cargo >/dev/null || {
		echo "cargo-servers: cargo is needed to install $name" >&2
		return 1
	}
	case "$name" in
	s3s-fs)
		echo "cargo-servers: installing s3s-fs $CARGO_SERVER_S3S_FS_VERSION into $root (cargo install, a few minutes)" >&2
		cargo install --locked --root "$root" --target-dir "$build" \
			s3s-fs --version "$CARGO_SERVER_S3S_FS_VERSION" --features binary >&2
		;;
	garage)
		echo "cargo-servers: installing garage $CARGO_SERVER_GARAGE_VERSION into $root (cargo install, about a quarter of an hour)" >&2
		cargo install --locked --root "$root" --target-dir "$build" \
			garage --version "$CARGO_SERVER_GARAGE_VERSION" >&2
		;;
	*)
		echo "cargo-servers: unknown server $name" >&2
		return 1
		;;
	esac
}
