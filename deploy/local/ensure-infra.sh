#!/usr/bin/env bash
# Starts the local PostgreSQL and RabbitMQ when they are not running (they usually are).
set -u
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
(exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null || { echo "RabbitMQ is not reachable on 127.0.0.1:5672" >&2; exit 1; }
