#!/usr/bin/env bash
# with-services.sh CMD [ARGS...]
#
# Runs CMD with the services the tests and the local stack need, then stops
# them and removes their files, whatever CMD's outcome (and on Ctrl-C):
#
#   - a throwaway PostgreSQL cluster from the machine's binaries (as root, run
#     as the postgres user), or the server named by DATABASE_URL when set;
#     a template database with every migration applied, which tests clone;
#   - moto_server (SQS and EventBridge Scheduler APIs);
#   - stripe-mock.
#
# It exports for CMD:
#   NEXUS_TEST_DATABASE_URL   admin connection (database "postgres")
#   NEXUS_TEST_TEMPLATE       the migrated template database to clone
#   NEXUS_TEST_SQS_ENDPOINT   moto_server's URL
#   NEXUS_TEST_STRIPE_URL     stripe-mock's URL
#   NEXUS_RIE                 $BIN/aws-lambda-rie, when built (unless set)
#   NEXUS_TEST_WORKDIR        the services' files (logs, data, pid files)
#   NEXUS_TEST_DOCKER_HOST    podman's Docker API (service podman), for sam local
#   NEXUS_TEST_LAMBDA_IMAGE   the Lambda base image sam local runs the functions
#                             on: public.ecr.aws/lambda/provided:al2023-arm64
#                             where it can be pulled, else a local stand-in
#                             (scripts/lambda-base)
#   NEXUS_TEST_RESTART        scripts/restart-service.sh: `$NEXUS_TEST_RESTART pg`
#                             restarts PostgreSQL (pg_ctl restart, as the
#                             postgres user when root), `... moto` restarts
#                             moto_server on the same port (fault tests)
#
# It reads NEXUS_MIGRATE, the migrator binary (make builds it; without it
# the migrations run through go run).
#
# Options (environment): PG_FSYNC=on keeps durability (benchmarks);
# SERVICES="pg moto stripe" picks what to start (podman, the container
# engine of sam local, only when named: make test does). Under CI=true a service that
# cannot be started is an error; elsewhere it is a warning and the tests that
# need it say so and skip.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin}
SERVICES=${SERVICES:-pg moto stripe}
PG_FSYNC=${PG_FSYNC:-off}

log() { printf 'with-services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
want() { [[ " $SERVICES " == *" $1 "* ]]; }
missing() {
	if [[ "${CI:-}" == "true" ]]; then die "$1"; fi
	log "warning: $1 (tests that need it will skip)"
}

# pick_port VAR sets VAR to a free loopback port for a server of ours. It is
# below the kernel's ephemeral range (where the tests' own outgoing
# connections take their ports, one of which could take a port picked and
# not yet bound by a server still starting) and never one this script has
# picked before (moto_server binds its port a second or two after launch).
PICKED=""
pick_port() {
	local p
	p=$(python3 - $PICKED <<'EOF'
import random, socket, sys
taken = {int(p) for p in sys.argv[1:]}
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 0
for tries in range(200):
    port = random.randrange(10000, lo) if lo > 12000 and tries < 100 else 0
    if port in taken:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    port = s.getsockname()[1]
    s.close()
    if port not in taken:
        print(port)
        sys.exit(0)
sys.exit("no free loopback port")
EOF
	) || die "no free loopback port for a service"
	PICKED="$PICKED $p"
	printf -v "$1" %s "$p"
}

wait_http() { # url seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	return 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-usage.XXXXXX")
chmod 755 "$WORK"
PIDS=()
PGDATA=""
PGBIN=""
EXTERNAL_TEMPLATE=""
as_pg=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# moto_server's pid is in its pid file: restart-service.sh replaces the
	# process (the new one is not this shell's child, so it is polled).
	local moto_pid=""
	if [[ -f "$WORK/moto.pid" ]]; then moto_pid=$(cat "$WORK/moto.pid"); fi
	for pid in "${PIDS[@]}" $moto_pid; do
		pkill -TERM -P "$pid" 2>/dev/null || true
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ -n "$moto_pid" ]]; then
		wait "$moto_pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do kill -0 "$moto_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	if [[ -n "$BINFMT_REGISTERED" ]]; then
		echo -1 >"/proc/sys/fs/binfmt_misc/$BINFMT_REGISTERED" 2>/dev/null || true
	fi
	if [[ -n "$PGDATA" && -f "$PGDATA/postmaster.pid" ]]; then
		"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [[ -n "$EXTERNAL_TEMPLATE" ]]; then
		psql -q "$NEXUS_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$EXTERNAL_TEMPLATE\" WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_pg() {
	if [[ -n "${DATABASE_URL:-}" ]]; then
		export NEXUS_TEST_DATABASE_URL=$DATABASE_URL
		EXTERNAL_TEMPLATE="nexus_test_template_$$"
		export NEXUS_TEST_TEMPLATE=$EXTERNAL_TEMPLATE
		log "using the PostgreSQL server of DATABASE_URL"
		return
	fi
	PGBIN=$(pg_config --bindir 2>/dev/null || true)
	if [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" ]]; then
		PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
	fi
	if [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" || ! -x "$PGBIN/pg_ctl" ]]; then
		die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install the Debian package postgresql-15 (apt-get install postgresql-15), or set DATABASE_URL to a server"
	fi
	# Everything the server writes lives in $WORK/pg, owned by the server's user.
	PGDATA=$WORK/pg/data
	mkdir -p "$PGDATA" "$WORK/pg/sock"
	if [[ $(id -u) == 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (apt-get install postgresql-15 creates it)"
		chown -R postgres "$WORK/pg"
		as_pg=(runuser -u postgres --)
	fi
	"${as_pg[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 ||
		{ cat "$WORK/initdb.log" >&2; die "initdb failed"; }
	local port
	pick_port port
	PG_OPTS="-p $port -k $WORK/pg/sock -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=512MB"
	if [[ "$PG_FSYNC" == off ]]; then
		PG_OPTS="$PG_OPTS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/postgres.log" -o "$PG_OPTS" -w -t 60 start >/dev/null ||
		{ cat "$WORK/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
	export NEXUS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	export NEXUS_TEST_TEMPLATE=nexus_template
	log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (fsync=$PG_FSYNC)"
}

make_template() {
	psql -q -v ON_ERROR_STOP=1 "$NEXUS_TEST_DATABASE_URL" -c "CREATE DATABASE \"$NEXUS_TEST_TEMPLATE\"" >/dev/null
	local url=${NEXUS_TEST_DATABASE_URL/\/postgres\?/\/$NEXUS_TEST_TEMPLATE?}
	if [[ -n "${NEXUS_MIGRATE:-}" ]]; then
		"$NEXUS_MIGRATE" -database-url "$url" || die "migrations failed"
	else
		(cd "$ROOT" && CGO_ENABLED=0 go run -trimpath -gcflags=all=-dwarf=false -tags lambda.norpc -ldflags=-w ./cmd/migrate -database-url "$url") || die "migrations failed"
	fi
	# Nobody connects to the template (autovacuum included), so that the
	# tests' CREATE DATABASE ... TEMPLATE never finds it in use.
	psql -q -v ON_ERROR_STOP=1 "$NEXUS_TEST_DATABASE_URL" -c "ALTER DATABASE \"$NEXUS_TEST_TEMPLATE\" WITH ALLOW_CONNECTIONS false" >/dev/null
}

# moto_server and stripe-mock are launched first and waited for after
# PostgreSQL is up, so that their start-ups overlap.
MOTO_URL=""
MOTO_PORT=""
STRIPE_URL=""

launch_moto() {
	if ! command -v moto_server >/dev/null; then
		missing "moto_server not found (pip install 'moto[server]')"
		return
	fi
	local port
	pick_port port
	moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
	echo $! >"$WORK/moto.pid"
	MOTO_PORT=$port
	MOTO_URL="http://127.0.0.1:$port"
}

wait_moto() {
	[[ -n "$MOTO_URL" ]] || return 0
	wait_http "$MOTO_URL/moto-api/" 30 || { cat "$WORK/moto.log" >&2; die "moto_server did not start"; }
	export NEXUS_TEST_SQS_ENDPOINT=$MOTO_URL
	log "moto_server on ${MOTO_URL#http://}"
}

launch_stripe() {
	if [[ ! -x "$BIN/stripe-mock" ]]; then
		missing "stripe-mock not built ($BIN/stripe-mock; make tools builds it)"
		return
	fi
	local port tls_port
	pick_port port
	pick_port tls_port
	# stripe-mock serves HTTPS too; give it a free port rather than its fixed default.
	"$BIN/stripe-mock" -http-addr "127.0.0.1:$port" -https-addr "127.0.0.1:$tls_port" >"$WORK/stripe-mock.log" 2>&1 &
	PIDS+=($!)
	STRIPE_URL="http://127.0.0.1:$port"
}

wait_stripe() {
	[[ -n "$STRIPE_URL" ]] || return 0
	wait_http "$STRIPE_URL/v1/customers" 30 || { cat "$WORK/stripe-mock.log" >&2; die "stripe-mock did not start"; }
	export NEXUS_TEST_STRIPE_URL=$STRIPE_URL
	log "stripe-mock on ${STRIPE_URL#http://}"
}

# podman serves the Docker API sam local needs, as root with the settings
# this kind of machine requires: runc (crun refuses a hybrid cgroup layout),
# lowered ulimits (the defaults of 1048576 cannot be set without
# CAP_SYS_RESOURCE). The functions are arm64, as deployed: on another
# architecture qemu-user-static runs them, registered with binfmt_misc for
# as long as the services run. The base image is pulled where a registry
# can be reached, else built from scripts/lambda-base.
BINFMT_REGISTERED=""
DOCKER_SOCK=""
LAMBDA_IMAGE=public.ecr.aws/lambda/provided:al2023-arm64
STANDIN_IMAGE=localhost/nexus-lambda-base:al2023-arm64
launch_podman() {
	local tool
	for tool in podman runc; do
		command -v "$tool" >/dev/null || { missing "$tool not found (make test installs it: apt-get install podman runc qemu-user-static busybox-static)"; return; }
	done
	cat >"$WORK/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
		[engine]
		runtime = "runc"
	EOF
	export CONTAINERS_CONF=$WORK/containers.conf
	if [[ $(uname -m) != aarch64 && ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
		[[ -e /proc/sys/fs/binfmt_misc/register ]] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
		if [[ -f /usr/lib/binfmt.d/qemu-aarch64.conf && -w /proc/sys/fs/binfmt_misc/register ]] &&
			cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register; then
			BINFMT_REGISTERED=qemu-aarch64
		else
			missing "cannot run arm64 functions: register qemu-user-static's qemu-aarch64 with binfmt_misc (as root, apt-get install qemu-user-static)"
			return
		fi
	fi
	DOCKER_SOCK=$WORK/podman.sock
	podman system service --time=0 "unix://$DOCKER_SOCK" >"$WORK/podman.log" 2>&1 &
	PIDS+=($!)
}

wait_podman() {
	[[ -n "$DOCKER_SOCK" ]] || return 0
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -S "$DOCKER_SOCK" ]] && curl -s -o /dev/null --unix-socket "$DOCKER_SOCK" http://d/_ping && break
		sleep 0.1
	done
	[[ -S "$DOCKER_SOCK" ]] || { cat "$WORK/podman.log" >&2; die "podman's Docker API did not start"; }
	if ! podman image exists "$LAMBDA_IMAGE" && ! timeout 60 podman pull -q --platform linux/arm64 "$LAMBDA_IMAGE" >/dev/null 2>&1; then
		LAMBDA_IMAGE=$STANDIN_IMAGE
		if ! podman image exists "$LAMBDA_IMAGE"; then
			local busybox
			busybox=$(command -v busybox || true)
			if [[ -z "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
				die "no static busybox for the stand-in Lambda base image (apt-get install busybox-static)"
			fi
			mkdir -p "$WORK/lambda-base"
			cp "$busybox" "$WORK/lambda-base/busybox"
			podman build -q --platform linux/arm64 -t "$LAMBDA_IMAGE" -f "$ROOT/scripts/lambda-base/Containerfile" "$WORK/lambda-base" >"$WORK/podman-build.log" 2>&1 ||
				{ cat "$WORK/podman-build.log" >&2; die "the stand-in Lambda base image did not build"; }
		fi
	fi
	export NEXUS_TEST_DOCKER_HOST=unix://$DOCKER_SOCK NEXUS_TEST_LAMBDA_IMAGE=$LAMBDA_IMAGE
	log "podman's Docker API on $DOCKER_SOCK, Lambda base image $LAMBDA_IMAGE"
}

if want podman; then launch_podman; fi
if want moto; then launch_moto; fi
if want stripe; then launch_stripe; fi
if want pg; then
	start_pg
	make_template
fi
wait_moto
wait_stripe
wait_podman
export NEXUS_TEST_WORKDIR=$WORK
# What scripts/restart-service.sh needs to restart a service in place.
{
	printf 'PGBIN=%q\nPGDATA=%q\nPG_OPTS=%q\nAS_PG=%q\nMOTO_PORT=%q\n' "$PGBIN" "$PGDATA" "${PG_OPTS:-}" "${as_pg[*]}" "$MOTO_PORT"
} >"$WORK/services.env"
export NEXUS_TEST_RESTART=$ROOT/scripts/restart-service.sh
# The Lambda emulator for the emulator tests and the local stack.
if [[ -z "${NEXUS_RIE:-}" && -x "$BIN/aws-lambda-rie" ]]; then export NEXUS_RIE=$BIN/aws-lambda-rie; fi

set +e
"$@"
rc=$?
set -e
exit "$rc"
