package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"
	"github.com/nexus/usage/cmd/internal/devstack"
	"github.com/nexus/usage/cmd/internal/moto"
	"github.com/nexus/usage/cmd/internal/seed"
	"github.com/nexus/usage/shared/sqspub"
	"github.com/nexus/usage/shared/usage"
)

// Stats counts what Send sent.
type Stats struct {
	Events, Duplicates, Late, Errors, Invalid int
}

var endpoints = []struct{ method, route string }{
	{"GET", "GET /v1/games/{id}"},
	{"GET", "GET /v1/games"},
	{"POST", "POST /v1/games"},
	{"GET", "GET /v1/teams/{id}"},
	{"GET", "GET /v1/players"},
	{"DELETE", "DELETE /v1/games/{id}"},
}

// Send sends realistic traffic for the demo users through the usage
// queue with the SQS publisher: the free user over its hard quota today;
// pro and enterprise over their included calls in the billing period that
// closed two days ago (late events, 1-6 days old, most of them in it) and
// busy today; about 5 % client and 1 % server errors; every 25th event
// sent twice; and two invalid messages, which end up in the rejected
// events.
func Send(ctx context.Context, st *devstack.State, now time.Time, logger *slog.Logger) (Stats, error) {
	client := moto.SQS(st.SQSEndpoint, st.Region)
	pub := sqspub.New(client, st.QueueURL, sqspub.Options{BatchSize: 100, MaxAge: 200 * time.Millisecond, Logger: logger, BufferSize: 5000})
	var stats Stats
	rng := rand.New(rand.NewPCG(uint64(now.UnixNano()), 7))
	plan := map[string]struct{ today, late int }{
		seed.FreeUserID:       {1100, 0},
		seed.ProUserID:        {200, 700},
		seed.EnterpriseUserID: {300, 1300},
	}
	for _, u := range st.Users {
		p := plan[u.UserID]
		for i := range p.today + p.late {
			ep := endpoints[rng.IntN(len(endpoints))]
			id, err := uuid.NewV7()
			if err != nil {
				return stats, err
			}
			at := now.Add(-time.Duration(rng.IntN(3600)) * time.Second)
			if i >= p.today {
				at = now.Add(-time.Duration(24+rng.IntN(5*24)) * time.Hour).Add(-time.Duration(rng.IntN(3600)) * time.Second)
				stats.Late++
			}
			status := 200
			switch r := rng.IntN(100); {
			case r < 1:
				status = 500
			case r < 3:
				status = 404
			case r < 5:
				status = 429
			case ep.method == "POST" && r < 50:
				status = 201
			}
			if status >= 400 {
				stats.Errors++
			}
			e := usage.Event{EventID: id.String(), UserID: u.UserID, APIKeyID: u.APIKeyID, Endpoint: ep.route, Method: ep.method,
				StatusCode: status, LatencyMS: int64(5 + rng.ExpFloat64()*40), RequestBytes: int64(100 + rng.IntN(900)),
				ResponseBytes: int64(200 + rng.IntN(20000)), OccurredAt: at}
			copies := 1
			if i%25 == 24 {
				copies = 2
				stats.Duplicates++
			}
			for range copies {
				if err := pub.Publish(ctx, e); err != nil {
					_ = pub.Close(ctx)
					return stats, fmt.Errorf("publish demo event: %w", err)
				}
			}
			stats.Events++
		}
	}
	if err := pub.Close(ctx); err != nil {
		return stats, err
	}
	for _, body := range []string{
		`this is not JSON`,
		fmt.Sprintf(`{"v":1,"event_id":%q,"user_id":"not-a-user","endpoint":"GET /v1/games","method":"GET","status_code":200,"occurred_at":%q}`,
			uuid.NewString(), now.Format(time.RFC3339)),
	} {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(st.QueueURL), MessageBody: aws.String(body)}); err != nil {
			return stats, fmt.Errorf("send invalid demo message: %w", err)
		}
		stats.Invalid++
	}
	return stats, nil
}

// Report prints what Send sent to st and where to look next.
func (s Stats) Report(w io.Writer, st *devstack.State, now time.Time) {
	fmt.Fprintf(w, "sent %d events (%d duplicated, %d late, %d with error statuses) and %d invalid messages to %s\n",
		s.Events, s.Duplicates, s.Late, s.Errors, s.Invalid, st.QueueURL)
	fmt.Fprintf(w, "the record function sees them within 5 s; then run make run-aggregate run-overage and read:\n")
	fmt.Fprintf(w, "  curl -s -H 'Authorization: Bearer %s' %s/v1/admin/overage?period=%s\n", st.Admin.Token, st.GatewayURL, now.AddDate(0, -1, 0).Format("2006-01"))
}
