#!/usr/bin/env bash
# Installs what the channel adapter tests (tests/channels.rs) run besides cargo: Python
# packages for a real SMTP server (aiosmtpd), test certificates (cryptography) and checking
# request bodies against the providers' OpenAPI descriptions (jsonschema, PyYAML).
# Idempotent and quiet: does nothing when the pinned versions are already there.
set -euo pipefail

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
