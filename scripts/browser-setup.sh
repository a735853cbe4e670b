#!/usr/bin/env bash
# Headless Chromium for the browser tests (CORS across origins, HTML form uploads): Debian's
# chromium package (apt, when /usr/bin/chromium is missing; needs root) and playwright-core
# from npm (the driver the tests' Node scripts use), under target/browser/ (HANSA_BROWSER_DIR
# overrides). Idempotent: a second run installs nothing.
#
# Usage: scripts/browser-setup.sh
# The tests find Chromium at $HANSA_CHROMIUM (default /usr/bin/chromium) and playwright-core
# under target/browser/node_modules; without them they fail with this script's name as the
# hint (HANSA_SKIP_BROWSER_TESTS=1 skips them knowingly).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${HANSA_BROWSER_DIR:-$REPO/target/browser}"
CHROMIUM="${HANSA_CHROMIUM:-/usr/bin/chromium}"
PLAYWRIGHT_VERSION=1.65.2

say() { printf 'browser-setup.sh: %s\n' "$*" >&2; }

if [[ ! -x "$CHROMIUM" ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		say "$CHROMIUM is missing; install Debian's chromium package (apt-get install chromium) as root"
		exit 1
	fi
	say "installing Debian's chromium"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
"$CHROMIUM" --version >&2

command -v npm >/dev/null || {
	say "npm (Node.js) is needed for playwright-core"
	exit 1
}
if [[ ! -f "$DIR/node_modules/playwright-core/package.json" ]]; then
	say "installing playwright-core $PLAYWRIGHT_VERSION into $DIR"
	mkdir -p "$DIR"
	npm install --silent --no-audit --no-fund --prefix "$DIR" "playwright-core@$PLAYWRIGHT_VERSION" >&2
fi
say "ready: chromium $CHROMIUM, playwright-core in $DIR/node_modules"
