#!/usr/bin/env bash
# Installs what the tests run besides cargo: Python packages for the channel adapter tests
# (tests/channels.rs: a real SMTP server with aiosmtpd, test certificates with cryptography,
# request bodies checked against the providers' OpenAPI descriptions with jsonschema and
# PyYAML), and PostgreSQL's server binaries for the store tests (tests/conformance, which start
# throwaway clusters with them: tests/harness/pg.rs, scripts/pg-cluster.sh).
# Idempotent and quiet: does nothing when the pinned versions and a server are already there.
set -euo pipefail

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
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then SUDO=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  # An apt-get that has never been updated knows no package lists: update once, then install.
  if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3}"
PINS=(
  "aiosmtpd==1.4.6"
  "cryptography==48.0.0"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
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
