#!/usr/bin/env bash
# The demo: a MySQL table -> Kafka -> Redis pipeline when MariaDB/MySQL and Redis are
# reachable (starting them where they are installed but stopped), otherwise a SQLite table
# -> Kafka -> file pipeline. Kafka is the worker's embedded cluster; REST on :8083. A row
# is inserted every two seconds so that the pipeline keeps moving.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/demo
worker=${WASMCONNECT_BIN:-target/release/wasmconnect}

mysql_client() {
  if command -v mariadb >/dev/null 2>&1; then
    mariadb -h 127.0.0.1 -u root "$@"
  else
    mysql -h 127.0.0.1 -u root "$@"
  fi
}

sqlite_exec() {
  if command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 target/demo/demo.db "$1"
  else
    python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' \
      target/demo/demo.db "$1"
  fi
}

# WASMCONNECT_DEMO=sqlite forces the fallback.
mode=sqlite
if [ "${WASMCONNECT_DEMO:-}" != sqlite ] &&
  { command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1; } &&
  scripts/services.sh --no-install mariadb redis 2>/dev/null; then
  mode=mysql
fi

if [ "$mode" = mysql ]; then
  echo "MariaDB/MySQL and Redis are reachable: running MySQL -> Kafka -> Redis."
  mysql_client -e "CREATE DATABASE IF NOT EXISTS wasmconnect_demo;
    CREATE TABLE IF NOT EXISTS wasmconnect_demo.users (
      id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(255) NOT NULL,
      email varchar(255), created_at datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3));
    INSERT INTO wasmconnect_demo.users (name, email)
      SELECT 'alice', 'alice@example.com' FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM wasmconnect_demo.users);"
  insert_row() {
    mysql_client -e "INSERT INTO wasmconnect_demo.users (name, email) VALUES ('user-$1', 'user-$1@example.com')"
  }
  connectors=(config/demo/mysql-source.properties config/demo/redis-sink.properties)
  names=(mysql-users users-to-redis)
  cat <<MSG
wasmconnect demo
  pipeline : MariaDB wasmconnect_demo.users -> JdbcSourceConnector -> embedded Kafka
             (topic "mysql-users") -> RedisSinkConnector -> Redis hashes user:<id>
  look     : redis-cli HGETALL user:1
             redis-cli --scan --pattern 'user:*' | wc -l
             mariadb -h 127.0.0.1 -u root -e "INSERT INTO wasmconnect_demo.users (name) VALUES ('you')"
MSG
else
  echo "MariaDB/MySQL or Redis is not available here: running SQLite -> Kafka -> file instead."
  sqlite_exec "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL, email TEXT, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
    INSERT INTO users (name, email) SELECT 'alice', 'alice@example.com'
      WHERE NOT EXISTS (SELECT 1 FROM users);"
  insert_row() {
    sqlite_exec "INSERT INTO users (name, email) VALUES ('user-$1', 'user-$1@example.com')"
  }
  connectors=(config/demo/sqlite-source.properties config/demo/sqlite-file-sink.properties)
  names=(sqlite-users users-to-file)
  cat <<MSG
wasmconnect demo
  pipeline : SQLite target/demo/demo.db (table users) -> JdbcSourceConnector -> embedded
             Kafka (topic "sqlite-users") -> FileStreamSink
  look     : tail -f $(pwd)/target/demo/users.jsonl
MSG
fi
cat <<MSG
  REST API : http://localhost:8083
    curl -s localhost:8083/connectors?expand=status
    curl -s localhost:8083/connectors/${names[0]}/status
    curl -s localhost:8083/connectors/${names[1]}/status
    curl -s localhost:8083/connectors/${names[0]}/offsets
    curl -s localhost:8083/connector-plugins
  Offsets  : target/demo/connect.offsets
  A new row every 2 s. Stop with Ctrl-C.

MSG

"$worker" standalone config/demo/worker.properties "${connectors[@]}" &
worker_pid=$!
(
  n=$(date +%s)
  while sleep 2; do
    n=$((n + 1))
    insert_row "$n" >/dev/null 2>&1 || true
  done
) &
inserter_pid=$!
stop() {
  kill "$inserter_pid" 2>/dev/null || true
  kill -TERM "$worker_pid" 2>/dev/null || true
  wait "$worker_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT
wait "$worker_pid"
