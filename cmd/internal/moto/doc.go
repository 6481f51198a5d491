// Package moto talks to moto_server, the local stand-in for SQS and
// EventBridge: clients that reach it with its fixed test credentials, and
// the usage queue with its dead-letter queue and redrive policy as
// template.yaml defines them. moto keeps everything in memory, so whoever
// restarts it creates the queues again.
//
//	client := moto.SQS(endpoint, "us-east-1")
//	q, err := moto.CreateQueues(ctx, client, moto.QueueOptions{Name: "nexus-usage-dev", DLQName: "nexus-usage-dlq-dev"})
//	if err != nil { ... }
//	// q.URL receives usage events; after 5 receives a message moves to q.DLQURL.
package moto
