// Package webhook delivers the notification workflow's webhooks
// (notify.Sender): requests signed as Standard Webhooks specifies
// (webhook-id, webhook-timestamp, webhook-signature: "v1," and the base64
// HMAC-SHA256 of "id.timestamp.body" under the endpoint's whsec_ key, one
// signature per secret during a rotation's overlap), sent over HTTP with a
// timeout per attempt, never following a redirect and, outside the local
// stack, never connecting to a private, loopback or link-local address
// (server-side request forgery), whatever a host name resolves to.
//
//	c := webhook.New(webhook.Options{})
//	res := c.Send(ctx, notify.Request{URL: "https://hooks.example.com/usage", MessageID: ev.MessageID(),
//		Timestamp: time.Now(), Body: body, Secrets: endpoint.Secrets(time.Now())})
//	// res.Outcome: notify.OutcomeDelivered (2xx), OutcomeFailed (retried) or OutcomeRefused (a private address)
//
// A receiver verifies with any Standard Webhooks library, or with Verify:
//
//	if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil { ... } // 401
package webhook
