#!/usr/bin/env bash
# Idempotent set-up: system packages (when root), virtual env, Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

apt_pkgs=(fonts-noto-cjk chromium poppler-utils git libpango-1.0-0 libpangoft2-1.0-0)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node/npm (for axe-core) may come from outside Debian; only ask apt when there is none.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: not root; please install: ${missing[*]}" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.sitegen-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch first, pinned: the CPU wheel is on local disk; an unpinned torch pulls CUDA.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
# axe-core for the accessibility tests (npm registry; the version pinned in tests/browser/package.json),
# kept out of git. Reinstalled only when the pin and the installed copy differ.
axe_want=$(sed -n 's/.*"axe-core": *"\([^"]*\)".*/\1/p' tests/browser/package.json 2>/dev/null || true)
axe_have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' tests/browser/node_modules/axe-core/package.json 2>/dev/null | head -n 1 || true)
if [ -n "$axe_want" ] && { [ "$axe_want" != "$axe_have" ] || [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; }; then
  if command -v npm >/dev/null 2>&1; then
    (cd tests/browser && npm install --silent --no-audit --no-fund --no-package-lock >/dev/null) || echo "setup: warning: axe-core not installed" >&2
  else
    echo "setup: warning: npm missing; the accessibility tests need axe-core (tests/browser/package.json)" >&2
  fi
fi
