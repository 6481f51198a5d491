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
#      checks the pro user's row.
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
echo "smoke: all OK" >&2
