package demo

import (
	"context"
	"fmt"
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

// Stats count what the demo sent through the queue, as the rest of a
// producer fleet does.
type Stats struct {
	Events, Duplicates, Late, Errors, Invalid int
}

// Send sends the queue's part of the demo alone, for a stack that needs
// recorded usage quickly and no callers (the dashboard's browser tests):
// the demo users' calls of the last hour (the free user's 1,100, over its
// hard quota, as a producer that bypasses the limits would send them; pro
// 200, enterprise 300), the late events of pro and enterprise, every 25th
// event twice and two invalid messages. Stats.Events events are stored,
// and Stats.Invalid messages quarantined.
func Send(ctx context.Context, st *devstack.State, now time.Time, logger *slog.Logger) (Stats, error) {
	return sendFleet(ctx, st, map[string]int{seed.FreeUserID: 1100, seed.ProUserID: 200, seed.EnterpriseUserID: 300}, now, logger)
}

// lateEvents are the late events per user: calls made 1 to 6 days ago,
// delivered now, most of them in the billing period that closed two days
// ago (the one make run-overage bills).
var lateEvents = map[string]int{seed.ProUserID: 700, seed.EnterpriseUserID: 1300}

var fleetEndpoints = []struct{ method, route string }{
	{"GET", "GET /v1/games/{id}"},
	{"GET", "GET /v1/games"},
	{"POST", "POST /v1/scores"},
	{"GET", "GET /v1/teams/{id}"},
	{"GET", "GET /v1/players"},
	{"DELETE", "DELETE /v1/games/{id}"},
}

// sendFleet publishes through the usage queue with the real publisher: for
// each user, earlier[user] calls made within the last hour (the user's
// other services, earlier today) and its late events; about 5 % client
// and 1 % server errors among them; every 25th event twice (a redelivery,
// counted once); and two invalid messages, which end up in the rejected
// events.
func sendFleet(ctx context.Context, st *devstack.State, earlier map[string]int, now time.Time, logger *slog.Logger) (Stats, error) {
	client := moto.SQS(st.SQSEndpoint, st.Region)
	pub := sqspub.New(client, st.QueueURL, sqspub.Options{BatchSize: 100, MaxAge: 200 * time.Millisecond, Logger: logger, BufferSize: 5000})
	var stats Stats
	rng := rand.New(rand.NewPCG(uint64(now.UnixNano()), 7))
	for _, u := range st.Users {
		today, late := earlier[u.UserID], lateEvents[u.UserID]
		for i := range today + late {
			ep := fleetEndpoints[rng.IntN(len(fleetEndpoints))]
			id, err := uuid.NewV7()
			if err != nil {
				return stats, err
			}
			at := now.Add(-time.Duration(1+rng.IntN(3600)) * time.Second)
			if i >= today {
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
				status = 400
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
