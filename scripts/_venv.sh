# Sourced by the scripts: make ./.venv with Python >= 3.11 and install dphub into it (editable).
# Usage: ensure_venv [extra]   e.g. ensure_venv test

ensure_venv() {
  local extra="${1:-}"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dphub needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      else
        echo "Python's venv module is missing: install python3-venv (apt-get install python3-venv)." >&2
        exit 1
      fi
    fi
    "$python" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
  fi
  local target="."
  [ -n "$extra" ] && target=".[$extra]"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
}

# Install a Debian package as root with apt; fails (status 1) when that is not possible here.
apt_install() {
  local package="$1" purpose="$2"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  echo "Installing $purpose (apt-get install $package)..." >&2
  apt-get update -qq
  # shellcheck disable=SC2086 # a list of packages, split on purpose
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $package >/dev/null
}

# The test suite starts its own throwaway PostgreSQL cluster (tests/services.py), which needs the
# server binaries (initdb, pg_ctl, postgres). Install Debian's package when none is found, unless
# DPHUB_TEST_DATABASE_URL names a server to use instead.
ensure_postgres() {
  if [ -n "${DPHUB_TEST_DATABASE_URL:-}" ]; then
    return 0
  fi
  if [ -n "${DPHUB_TEST_PG_BINDIR:-}" ] && [ -x "$DPHUB_TEST_PG_BINDIR/initdb" ]; then
    return 0
  fi
  if command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    return 0
  fi
  if ! apt_install postgresql "the PostgreSQL server for the tests"; then
    echo "The tests need PostgreSQL's server binaries (initdb) and none were found." >&2
    echo "Install them (Debian/Ubuntu: sudo apt-get install postgresql), point" >&2
    echo "DPHUB_TEST_PG_BINDIR at their directory, or set DPHUB_TEST_DATABASE_URL to a server" >&2
    echo "(postgresql+psycopg://user:password@host:port/db, a role that may CREATE DATABASE)." >&2
    exit 1
  fi
}

# The browser tests (tests/browser) drive Debian's Chromium through Playwright; Playwright's own
# browser download is never used. Install the package when it is missing.
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  if ! apt_install chromium "Chromium for the browser tests"; then
    echo "The browser tests need Chromium at /usr/bin/chromium: install it" >&2
    echo "(Debian/Ubuntu: sudo apt-get install chromium)." >&2
    exit 1
  fi
}

# tests/e2e/test_datahub_api.py runs DataHub's own client library (datahub-client, from the npm
# registry) with Node.js.
ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then
    return 0
  fi
  if ! apt_install "nodejs npm" "Node.js and npm for the DataHub client tests"; then
    echo "The tests need Node.js and npm: install them (Debian/Ubuntu: sudo apt-get install nodejs npm)." >&2
    exit 1
  fi
}
