package moto

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// credentialsProvider is what moto_server accepts (it checks nothing).
var credentialsProvider = credentials.NewStaticCredentialsProvider("test", "test", "")

// SQS returns an SQS client for moto_server at endpoint.
func SQS(endpoint, region string) *sqs.Client {
	return sqs.New(sqs.Options{Region: region, BaseEndpoint: aws.String(endpoint), Credentials: credentialsProvider})
}

// EventBridge returns an EventBridge client for moto_server at endpoint.
func EventBridge(endpoint, region string) *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{Region: region, BaseEndpoint: aws.String(endpoint), Credentials: credentialsProvider})
}

// QueueOptions describes a usage queue and its dead-letter queue.
type QueueOptions struct {
	Name, DLQName string
	// VisibilityTimeout is the usage queue's (default 60s, as deployed).
	VisibilityTimeout time.Duration
	// MaxReceiveCount is how many receives move a message to the DLQ
	// (default 5; the local stack gives template.yaml's).
	MaxReceiveCount int
}

// Queues are the URLs of a usage queue and its dead-letter queue.
type Queues struct {
	URL, DLQURL string
}

// CreateQueues creates the dead-letter queue (14 days' retention) and the
// usage queue with its redrive policy; creating them again returns the
// same queues.
func CreateQueues(ctx context.Context, client *sqs.Client, o QueueOptions) (Queues, error) {
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 60 * time.Second
	}
	if o.MaxReceiveCount <= 0 {
		o.MaxReceiveCount = 5
	}
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(o.DLQName),
		Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}})
	if err != nil {
		return Queues{}, fmt.Errorf("create the DLQ: %w", err)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return Queues{}, fmt.Errorf("read the DLQ's ARN: %w", err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(o.Name),
		Attributes: map[string]string{
			"VisibilityTimeout": strconv.Itoa(int(o.VisibilityTimeout / time.Second)),
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`,
				attrs.Attributes["QueueArn"], o.MaxReceiveCount),
		}})
	if err != nil {
		return Queues{}, fmt.Errorf("create the usage queue: %w", err)
	}
	return Queues{URL: aws.ToString(q.QueueUrl), DLQURL: aws.ToString(dlq.QueueUrl)}, nil
}

// CreateBus creates the EventBridge bus name; one that exists already is
// fine.
func CreateBus(ctx context.Context, client *eventbridge.Client, name string) error {
	_, err := client.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
	if err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		return err
	}
	return nil
}
