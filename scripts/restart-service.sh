#!/usr/bin/env bash
# restart-service.sh pg|pg-stop|pg-start|moto
#
# Restarts one service that scripts/with-services.sh started, in place, for
# tests of faults (the soak): it reads $NEXUS_TEST_WORKDIR/services.env,
# which with-services.sh writes, and returns once the service answers again.
#
#   pg    pg_ctl restart -m fast of the throwaway cluster (as the postgres
#         user when root), with the options it was started with: every
#         connection is cut and the transactions in flight roll back.
#   pg-stop, pg-start
#         the two halves of that restart, for an outage as long as the
#         caller waits between them (pg-start returns once it answers).
#   moto  stops moto_server and starts a new one on the same port. moto keeps
#         its state in memory: the queues and every message not yet
#         consumed are gone (real SQS loses nothing; whoever needs the
#         queues creates them again).
#
# It exits 3 when the service is not one with-services.sh runs here (a
# PostgreSQL server named by DATABASE_URL, moto_server not started).
set -euo pipefail

WORK=${NEXUS_TEST_WORKDIR:?run under scripts/with-services.sh}
# shellcheck source=/dev/null
source "$WORK/services.env"

log() { printf 'restart-service: %s\n' "$*" >&2; }
# running PID: the process exists and has not exited (a zombie, not yet
# reaped by with-services.sh, whose child it is, has).
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }

case "${1:-}" in
pg | pg-stop | pg-start)
	if [[ -z "$PGDATA" ]]; then
		log "PostgreSQL is not a throwaway cluster of with-services.sh (DATABASE_URL): not restarted"
		exit 3
	fi
	case "$1" in
	pg) args=(-m fast restart) ;;
	pg-stop) args=(-m fast stop) ;;
	# A start is given the options with-services.sh started it with (a
	# restart reuses them itself).
	pg-start) args=(-o "$PG_OPTS" start) ;;
	esac
	# shellcheck disable=SC2086 # AS_PG is a command prefix ("runuser -u postgres --") or empty
	$AS_PG "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/postgres.log" -w -t 60 "${args[@]}" >/dev/null ||
		{ tail -20 "$WORK/pg/postgres.log" >&2; log "PostgreSQL did not ${args[-1]}"; exit 1; }
	;;
moto)
	if [[ -z "$MOTO_PORT" || ! -f "$WORK/moto.pid" ]]; then
		log "moto_server is not running under with-services.sh: not restarted"
		exit 3
	fi
	pid=$(cat "$WORK/moto.pid")
	pkill -TERM -P "$pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		running "$pid" || break
		sleep 0.1
	done
	if running "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	moto_server -H 127.0.0.1 -p "$MOTO_PORT" >>"$WORK/moto.log" 2>&1 </dev/null &
	echo $! >"$WORK/moto.pid"
	for ((i = 0; i < 300; i++)); do
		if curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/"; then exit 0; fi
		sleep 0.1
	done
	tail -20 "$WORK/moto.log" >&2
	log "moto_server did not start again on port $MOTO_PORT"
	exit 1
	;;
*)
	log "usage: restart-service.sh pg|pg-stop|pg-start|moto"
	exit 2
	;;
esac
