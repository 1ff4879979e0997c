#!/usr/bin/env bash
# Makes sure MariaDB (3306), PostgreSQL (5432) and Redis (6379) listen on 127.0.0.1: starts
# them where they are installed but stopped, installs them from Debian's packages where
# they are missing. The tests connect as MariaDB's root (no password) and PostgreSQL's
# postgres user (trust auth on loopback), as on the development machines.
#
# Usage: scripts/services.sh [--no-install] [mariadb] [postgresql] [redis]
# (no names: all three). With --no-install a missing server is an error (exit 1) instead.
set -euo pipefail

install=1
services=()
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    mariadb | postgresql | redis) services+=("$arg") ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
[ ${#services[@]} -gt 0 ] || services=(mariadb postgresql redis)

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do
    listening "$1" && return 0
    sleep 0.2
  done
  echo "$2 did not start on port $1" >&2
  return 1
}

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  if [ "$install" -eq 0 ]; then
    echo "$* is not installed." >&2
    return 1
  fi
  echo "Installing $* from Debian's packages..." >&2
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_mariadb() {
  listening 3306 && return 0
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || install_packages mariadb-server
  echo "Starting MariaDB..." >&2
  sudo_ mkdir -p /run/mysqld && sudo_ chown mysql:mysql /run/mysqld 2>/dev/null || true
  sudo_ start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >&2
  wait_port 3306 MariaDB
}

ensure_postgresql() {
  if ! listening 5432; then
    ls /etc/postgresql/*/main >/dev/null 2>&1 || install_packages postgresql
    echo "Starting PostgreSQL..." >&2
    sudo_ pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >&2
    wait_port 5432 PostgreSQL
  fi
  # The tests use the database `test` (trust auth on loopback, as the machines are set up).
  if command -v psql >/dev/null 2>&1 && ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1" test >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- createdb test; else sudo -u postgres createdb test; fi 2>/dev/null || true
  fi
}

ensure_redis() {
  listening 6379 && return 0
  command -v redis-server >/dev/null 2>&1 || install_packages redis-server
  echo "Starting Redis..." >&2
  mkdir -p /tmp/wasmconnect-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/wasmconnect-redis --logfile /tmp/wasmconnect-redis/redis.log >&2
  wait_port 6379 Redis
}

for service in "${services[@]}"; do
  "ensure_$service"
done
echo "${services[*]}: up." >&2
