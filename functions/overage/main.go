// Command overage is the overage Lambda function.
package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context) error { return errors.New("overage: not built yet") })
}
