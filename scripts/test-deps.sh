#!/usr/bin/env bash
# Installs what the tests run besides cargo: Python packages for the channel adapter tests
# (tests/channels.rs: a real SMTP server with aiosmtpd, test certificates with cryptography,
# request bodies checked against the providers' OpenAPI descriptions with jsonschema and
# PyYAML), and PostgreSQL's server binaries for the store tests (tests/conformance, which start
# throwaway clusters with them: tests/harness/pg.rs, scripts/pg-cluster.sh), and the npm tools
# in tests/tools (Prism mocks of the providers' OpenAPI descriptions, handlebars.js as the
# reference renderer), with Node.js from Debian's packages when there is none, and headless
# Chromium for the HTML report's browser test (tests/report: DOM, screenshot, console).
# Idempotent and quiet: does nothing when the pinned versions and a server are already there.
set -euo pipefail

# Installs Debian packages, updating the package lists once when apt-get knows none yet.
apt_install() {
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq >/dev/null
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

# PostgreSQL: any server found in PATH or in Debian's versioned folders will do.
have_postgres() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if ! have_postgres; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no PostgreSQL server (initdb) found and no apt-get to install one; install PostgreSQL's server binaries" >&2
    exit 1
  fi
  apt_install postgresql
fi

# Chromium: Debian's package, at the path tests/report/browser.rs runs (or $CHROMIUM).
if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no Chromium at ${CHROMIUM:-/usr/bin/chromium} and no apt-get to install it; install Chromium or set CHROMIUM" >&2
    exit 1
  fi
  apt_install chromium
fi

PYTHON="${PYTHON:-python3}"
PINS=(
  "aiosmtpd==1.4.6"
  "cryptography==48.0.0"
  "dkimpy==1.1.8"
  "dnspython==2.8.0"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
  "standardwebhooks==1.1.0"
)

missing=()
for pin in "${PINS[@]}"; do
  name="${pin%%==*}"
  want="${pin##*==}"
  have="$("$PYTHON" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print('')" "$name")"
  if [[ "$have" != "$want" ]]; then
    missing+=("$pin")
  fi
done

if ((${#missing[@]})); then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore "${missing[@]}"
fi

# npm tools, pinned by tests/tools/package-lock.json; reinstalled when the lock changes.
TOOLS="$(cd "$(dirname "$0")/.." && pwd)/tests/tools"
if ! command -v npm >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no npm found and no apt-get to install Node.js; install Node.js 18 or later with npm" >&2
    exit 1
  fi
  apt_install nodejs npm
fi
stamp="$TOOLS/node_modules/.lock-sha256"
want_lock="$(sha256sum "$TOOLS/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_lock" || ! -x "$TOOLS/node_modules/.bin/prism" ]]; then
  (cd "$TOOLS" && npm ci --no-audit --no-fund --silent)
  echo "$want_lock" >"$stamp"
fi
