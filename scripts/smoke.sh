#!/usr/bin/env bash
# smoke.sh
#
# Drives a running `make dev` as a user would, with curl and the AWS CLI
# against the local endpoints, and fails on the first thing that is not as
# it should be:
#
#   1. sends usage events to the queue with `aws sqs send-message` (a single
#      event, an array of two, and the first again: a duplicate) and waits
#      for the record function's batch to store them exactly once (psql);
#   2. POST /v1/events with an API key, waits for the batch, and reads
#      GET /v1/usage/daily with a bearer token;
#   3. sends 600 late events (3-4 days old) for the pro demo user, whose
#      first billing period ended two days ago and includes 500 calls, so
#      that the closed period is over quota;
#   4. runs aggregate and overage now (the admin endpoint make
#      run-aggregate / run-overage call);
#   5. reads the overage ledger, GET /v1/admin/overage?period=YYYY-MM, and
#      checks the pro user's row;
#   6. drives the sample platform API (shared/meter in front of its routes)
#      as a new free user: its burst of 10, then 429 rate_limited with the
#      headers of the decision; the calls it served in GET /v1/usage (the
#      time it took is printed; make lag measures the lag properly); its quota
#      filled through the queue, then 429 quota_exceeded, and the refused
#      calls not counted.
#
# Environment: SMOKE_ADMIN, the stack's admin endpoint (default
# http://127.0.0.1:8081). Needs curl, jq, psql, python3 and the AWS CLI.
set -euo pipefail

ADMIN=${SMOKE_ADMIN:-http://127.0.0.1:8081}
step() { printf '\nsmoke: %s\n' "$*" >&2; }
fail() { printf 'smoke: FAIL: %s\n' "$*" >&2; exit 1; }
for t in curl jq psql python3 aws; do command -v "$t" >/dev/null || fail "$t is not installed"; done

STATE=$(curl -sf "$ADMIN/state") || fail "no stack at $ADMIN (start it with make dev)"
s() { jq -r "$1" <<<"$STATE"; }
API=$(s .gateway_url)
PLATFORM=$(s .platform_url)
LAG_GOAL=$(jq -r '.batch_window_seconds + .platform_flush_seconds + 1' <<<"$STATE")
QUEUE=$(s .queue_url)
DB=$(s .database_url)
FREE=$(s '.users[] | select(.plan == "free") | .user_id')
PRO=$(s '.users[] | select(.plan == "pro") | .user_id')
PRO_KEY=$(s '.users[] | select(.plan == "pro") | .api_key')
PRO_TOKEN=$(s '.users[] | select(.plan == "pro") | .token')
ADMIN_TOKEN=$(s .admin.token)
PERIOD=$(s .closed_period)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=$(s .region) AWS_PAGER=""
SQS=(aws --endpoint-url "$(s .sqs_endpoint)" sqs)

uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
sql() { psql -qtAX -v ON_ERROR_STOP=1 "$DB" -c "$1"; }
event() { # event_id user_id occurred_at [status]
	printf '{"v":1,"event_id":"%s","user_id":"%s","endpoint":"GET /v1/games/{id}","method":"GET","status_code":%s,"latency_ms":9,"request_bytes":100,"response_bytes":1000,"occurred_at":"%s"}' \
		"$1" "$2" "${4:-200}" "$3"
}
# wait_rows SQL WANT SECONDS: polls until the query returns WANT.
wait_rows() {
	local got=""
	for ((i = 0; i < $3 * 2; i++)); do
		got=$(sql "$1")
		[[ "$got" == "$2" ]] && return 0
		sleep 0.5
	done
	fail "waited $3 s for [$1] = $2; got $got"
}
# queue_drained SECONDS: waits until every message was handled and deleted.
queue_drained() {
	local n
	for ((i = 0; i < $1 * 2; i++)); do
		n=$("${SQS[@]}" get-queue-attributes --queue-url "$QUEUE" --attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible \
			--output json | jq '.Attributes | (.ApproximateNumberOfMessages | tonumber) + (.ApproximateNumberOfMessagesNotVisible | tonumber)')
		[[ "$n" == 0 ]] && return 0
		sleep 0.5
	done
	fail "the usage queue still holds $n messages after $1 s"
}
# http METHOD URL WANT_STATUS [curl args...]: prints the body.
http() {
	local method=$1 url=$2 want=$3 out status
	shift 3
	out=$(mktemp)
	status=$(curl -s -o "$out" -w '%{http_code}' -X "$method" "$url" "$@") || { rm -f "$out"; fail "$method $url: no answer"; }
	if [[ "$status" != "$want" ]]; then
		cat "$out" >&2
		rm -f "$out"
		fail "$method $url answered $status; want $want"
	fi
	cat "$out"
	rm -f "$out"
}

step "1. events through the queue (aws sqs send-message)"
E1=$(uuid) E2=$(uuid) E3=$(uuid)
FIRST=$(event "$E1" "$FREE" "$(now)")
"${SQS[@]}" send-message --queue-url "$QUEUE" --message-body "$FIRST" >/dev/null
"${SQS[@]}" send-message --queue-url "$QUEUE" --message-body "[$(event "$E2" "$FREE" "$(now)" 404),$(event "$E3" "$FREE" "$(now)" 500)]" >/dev/null
"${SQS[@]}" send-message --queue-url "$QUEUE" --message-body "$FIRST" >/dev/null # a redelivery: the same event
wait_rows "SELECT count(*) FROM eco_api_usage WHERE event_id IN ('$E1', '$E2', '$E3')" 3 30
queue_drained 30 # the duplicate's batch too
[[ $(sql "SELECT count(*) FROM eco_api_usage WHERE event_id = '$E1'") == 1 ]] || fail "the duplicate was stored twice"
echo "smoke: 3 events recorded once each (the duplicate ignored)" >&2

step "2. POST /v1/events with the pro user's API key, then GET /v1/usage/daily"
E4=$(uuid) E5=$(uuid)
BODY="{\"events\":[$(event "$E4" "$PRO" "$(now)"),$(event "$E5" "$PRO" "$(now)" 429)]}"
OUT=$(http POST "$API/v1/events" 202 -H "X-Api-Key: $PRO_KEY" -H 'Content-Type: application/json' -d "$BODY")
[[ $(jq -r .accepted <<<"$OUT") == 2 ]] || fail "POST /v1/events accepted $(jq -c . <<<"$OUT"); want 2"
wait_rows "SELECT count(*) FROM eco_api_usage WHERE event_id IN ('$E4', '$E5')" 2 30
TODAY=$(date -u +%F)
OUT=$(http GET "$API/v1/usage/daily?from=$TODAY&to=$TODAY" 200 -H "Authorization: Bearer $PRO_TOKEN")
grep -q "$TODAY" <<<"$OUT" || fail "GET /v1/usage/daily does not show today: $OUT"
echo "smoke: /v1/usage/daily: $(jq -c . <<<"$OUT" | cut -c1-300)" >&2

step "3. 600 late events for the pro user in the period that closed two days ago"
BEFORE=$(sql "SELECT count(*) FROM eco_api_usage WHERE user_id = '$PRO' AND occurred_at < date_trunc('day', now())")
for batch in 1 2 3 4 5 6; do
	BODY=$(python3 - "$PRO" <<'PY'
import json, sys, uuid, datetime, random
now = datetime.datetime.now(datetime.timezone.utc)
evs = [{"v": 1, "event_id": str(uuid.uuid4()), "user_id": sys.argv[1], "endpoint": "GET /v1/players",
        "method": "GET", "status_code": 200, "latency_ms": 20, "request_bytes": 100, "response_bytes": 500,
        "occurred_at": (now - datetime.timedelta(days=3, seconds=random.randint(0, 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")}
       for _ in range(100)]
print(json.dumps(evs))
PY
)
	"${SQS[@]}" send-message --queue-url "$QUEUE" --message-body "$BODY" >/dev/null
done
wait_rows "SELECT count(*) - $BEFORE FROM eco_api_usage WHERE user_id = '$PRO' AND occurred_at < date_trunc('day', now())" 600 60

step "4. run aggregate and overage now"
http POST "$ADMIN/run/aggregate" 200 >&2
http POST "$ADMIN/run/overage" 200 >&2

step "5. the overage ledger (GET /v1/admin/overage?period=$PERIOD)"
OUT=$(http GET "$API/v1/admin/overage?period=$PERIOD" 200 -H "Authorization: Bearer $ADMIN_TOKEN")
grep -q "$PRO" <<<"$OUT" || fail "the overage ledger of $PERIOD has no row for the pro user: $OUT"
ROW=$(sql "SELECT status || ' ' || used_calls || ' ' || units || ' ' || amount FROM eco_overage_ledger WHERE user_id = '$PRO' ORDER BY period_start DESC LIMIT 1")
read -r STATUS USED UNITS AMOUNT <<<"$ROW"
((USED > 500 && UNITS > 0 && AMOUNT > 0)) || fail "ledger row of the pro user: $ROW; want used > 500 and a positive amount"
[[ "$STATUS" == billed ]] || fail "ledger row of the pro user is $STATUS; want billed (through stripe-mock)"
echo "smoke: ledger: pro user used $USED calls, $UNITS units, amount $AMOUNT, $STATUS" >&2
GET_UNAUTH=$(curl -s -o /dev/null -w '%{http_code}' "$API/v1/admin/overage?period=$PERIOD")
[[ "$GET_UNAUTH" == 401 ]] || fail "GET /v1/admin/overage without a token answered $GET_UNAUTH; want 401"

step "6. the sample platform API behind shared/meter ($PLATFORM)"
# A free user of its own, whatever earlier runs left: no subscription (the
# free plan: 1,000 calls a calendar month, hard; 2 calls/s, burst 10), and
# an API key stored as the system stores keys, by its SHA-256 hash.
SMOKE_USER=$(uuid)
SMOKE_KEY="nx_smoke_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
sql "INSERT INTO eco_api_keys (api_key_id, user_id, name, prefix, key_hash)
     VALUES ('$(uuid)', '$SMOKE_USER', 'smoke', '${SMOKE_KEY:0:11}', sha256('$SMOKE_KEY'::bytea))"
CALLS=$(mktemp -d)
trap 'rm -rf "$CALLS"' EXIT
# call N PATH: call N with the smoke user's key; its headers in $CALLS/N.h,
# its body in $CALLS/N.b; prints the status.
call() { curl -s -o "$CALLS/$1.b" -D "$CALLS/$1.h" -w '%{http_code}' -H "X-Api-Key: $SMOKE_KEY" "$PLATFORM$2" || fail "GET $PLATFORM$2: no answer"; }
header() { tr -d '\r' <"$CALLS/$1.h" | grep -i "^$2: " | cut -d' ' -f2-; }
# decision_headers N: the headers every answer with a decision has.
decision_headers() {
	local h
	for h in RateLimit-Policy RateLimit X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset; do
		[[ -n "$(header "$1" "$h")" ]] || fail "answer $1 without $h: $(tr -d '\r' <"$CALLS/$1.h")"
	done
	[[ "$(header "$1" X-RateLimit-Limit)" == 10 ]] || fail "answer $1: X-RateLimit-Limit $(header "$1" X-RateLimit-Limit); want the free plan's burst, 10"
	grep -q '"burst";q=10;w=5, "quota";q=1000;' <<<"$(header "$1" RateLimit-Policy)" || fail "answer $1: RateLimit-Policy $(header "$1" RateLimit-Policy)"
}
# refused N REASON: answer N is the 429 problem of REASON with Retry-After.
refused() {
	[[ "$(jq -r .type "$CALLS/$1.b")" == "urn:nexus:problem:$2" ]] || fail "answer $1 is not $2: $(cat "$CALLS/$1.b")"
	[[ "$(header "$1" Retry-After)" =~ ^[1-9][0-9]*$ ]] || fail "answer $1, 429 $2, without Retry-After: $(tr -d '\r' <"$CALLS/$1.h")"
	decision_headers "$1"
}
used() { http GET "$API/v1/usage" 200 -H "X-Api-Key: $SMOKE_KEY" | jq .used; }
# wait_used WANT SECONDS [SINCE]: polls GET /v1/usage (every 0.1 s, one
# curl and one jq a reading) until the smoke user's used calls are WANT,
# at most SECONDS after SINCE ($EPOCHREALTIME, default now); prints how
# long after SINCE that was.
wait_used() {
	local start=${3:-$EPOCHREALTIME} got
	while :; do
		got=$(curl -sf -H "X-Api-Key: $SMOKE_KEY" "$API/v1/usage" | jq .used) || fail "GET /v1/usage of the smoke user failed"
		awk "BEGIN { exit !($EPOCHREALTIME - $start > $2) }" && fail "GET /v1/usage shows $got calls $2 s after the last call; want $1"
		[[ "$got" == "$1" ]] && { awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }"; return 0; }
		sleep 0.1
	done
}

# 15 calls on one connection of one curl (checked afterwards, so that
# neither starting curl nor the checks give the burst time to refill).
ARGS=()
for i in $(seq 15); do
	((i > 1)) && ARGS+=(--next)
	ARGS+=(-s -o "$CALLS/$i.b" -D "$CALLS/$i.h" -w '%{http_code}\n' -H "X-Api-Key: $SMOKE_KEY" "$PLATFORM/v1/games/1")
done
mapfile -t STATUSES < <(curl "${ARGS[@]}")
SENT=$EPOCHREALTIME
# The served calls in GET /v1/usage, timed from the last call (before the
# checks below, which take a while).
SERVED=$(grep -c '^200$' <<<"$(printf '%s\n' "${STATUSES[@]}")" || true)
# Waited for, not timed against the goal: the lag is measured by make lag;
# a test must not depend on how loaded the machine is.
TOOK=$(wait_used "$SERVED" 60 "$SENT")
OK=0 LIMITED=0
for i in $(seq 15); do
	case ${STATUSES[i - 1]} in
	200) OK=$((OK + 1)); decision_headers "$i" ;;
	429) LIMITED=$((LIMITED + 1)); refused "$i" rate_limited ;;
	*) fail "GET /v1/games/1 answered ${STATUSES[i - 1]}: $(cat "$CALLS/$i.b")" ;;
	esac
done
# The burst of 10, plus what refilled (2/s) while the calls ran, then 429s.
((OK >= 10 && LIMITED >= 1)) || fail "15 quick calls: $OK served, $LIMITED rate limited (${STATUSES[*]}); want the burst of 10 (+ refill), then 429"
echo "smoke: burst of $OK served, then $LIMITED x 429 rate_limited with Retry-After; GET /v1/usage counted the $OK $TOOK s after the last call (lag goal $LAG_GOAL s, measured by make lag)" >&2

FILL=$((1000 - OK))
# The rest of the quota as the user's other producers send it: messages of
# 100 events, in one SendMessageBatch (about 180 KB, under SQS's 256 KiB).
ENTRIES="$CALLS/entries.json"
python3 - "$SMOKE_USER" "$FILL" >"$ENTRIES" <<'PY'
import json, sys, uuid, datetime
user, n = sys.argv[1], int(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
evs = [{"v": 1, "event_id": str(uuid.uuid4()), "user_id": user, "endpoint": "GET /v1/games/{id}", "method": "GET",
        "status_code": 200, "latency_ms": 3, "occurred_at": now} for _ in range(n)]
print(json.dumps([{"Id": str(i), "MessageBody": json.dumps(evs[i:i + 100], separators=(",", ":"))} for i in range(0, n, 100)]))
PY
OUT=$("${SQS[@]}" send-message-batch --queue-url "$QUEUE" --entries "file://$ENTRIES" --output json)
[[ $(jq '.Failed // [] | length' <<<"$OUT") == 0 ]] || fail "send-message-batch: $OUT"
wait_used 1000 60 >/dev/null
sleep 1.5 # the limiter's cache (1 s) and a token of the burst
for i in 21 22 23; do
	[[ $(call "$i" /v1/games/1) == 429 ]] || fail "call over the quota answered $(cat "$CALLS/$i.b")"
	refused "$i" quota_exceeded
	grep -q '"quota";r=0;' <<<"$(header "$i" RateLimit)" || fail "RateLimit after the quota: $(header "$i" RateLimit)"
done
sleep "$LAG_GOAL"
[[ $(used) == 1000 ]] || fail "the refused calls were counted: GET /v1/usage shows $(used)"
echo "smoke: quota filled through the queue; 3 x 429 quota_exceeded (Retry-After $(header 23 Retry-After) s), usage stays at 1000" >&2
echo "smoke: all OK" >&2
