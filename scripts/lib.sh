# Shared steps of scripts/run and scripts/test. Sourced, not executed.
# Every step is idempotent and fast when its work is already done.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Debian keeps daemons and `service` in sbin, which a CI environment's PATH may leave out.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Create .venv and install a requirements file; reinstall only when the file changed.
ensure_venv() {
  local requirements="$1" stamp
  if [ ! -x "$VENV/bin/python" ]; then
    local python=""
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
        python="$candidate"; break
      fi
    done
    [ -n "$python" ] || { echo "Sorya needs Python 3.11 or newer (python3.11 or python3 on PATH)." >&2; exit 1; }
    say "Creating the virtual environment in .venv"
    "$python" -m venv "$VENV"
  fi
  stamp="$VENV/.installed-$(basename "$requirements")"
  local digest
  digest="$(cat "$ROOT/requirements.txt" "$ROOT/$requirements" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    say "Installing Python packages from $requirements"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/$requirements" 2>&1 \
      | grep -v "^WARNING: Location 'file:" || true
    "$VENV/bin/python" -c "import flask, sqlalchemy" || { echo "Python packages failed to install." >&2; exit 1; }
    echo "$digest" > "$stamp"
  fi
}

# Install the Debian packages given as "command-or-path:package" pairs when the command (or file) is missing.
ensure_debian_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -e "${pair%%:*}" ] || missing+=("${pair##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() {
  local what="$1"; shift
  for _ in $(seq 1 60); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$what did not become ready within 30 seconds." >&2
  exit 1
}

ensure_mariadb() {
  if ! mariadb-admin ping --silent >/dev/null 2>&1; then
    say "Starting MariaDB"
    service mariadb start >/dev/null 2>&1 || (mysqld_safe >/dev/null 2>&1 &)
    wait_for MariaDB mariadb-admin ping --silent
  fi
  # Debian lets root in only through the socket; the app and tests use a password user over TCP.
  mariadb --protocol=socket -u root <<'SQL'
CREATE USER IF NOT EXISTS 'sorya'@'127.0.0.1' IDENTIFIED BY 'sorya';
CREATE USER IF NOT EXISTS 'sorya'@'localhost' IDENTIFIED BY 'sorya';
GRANT ALL PRIVILEGES ON `sorya%`.* TO 'sorya'@'127.0.0.1';
GRANT ALL PRIVILEGES ON `sorya%`.* TO 'sorya'@'localhost';
SQL
}

ensure_redis() {
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    say "Starting Redis"
    service redis-server start >/dev/null 2>&1 || true
    redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
    wait_for Redis redis-cli -h 127.0.0.1 ping
  fi
}
