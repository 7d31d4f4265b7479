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
