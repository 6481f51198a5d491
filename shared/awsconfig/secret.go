package awsconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretGetter is the part of the Secrets Manager client DatabaseURL uses.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// DatabaseURL returns DATABASE_URL when it is set; otherwise it reads the
// secret named by DATABASE_SECRET_ARN from Secrets Manager (with the default
// AWS configuration). getenv is os.Getenv in production.
func DatabaseURL(ctx context.Context, getenv func(string) string) (string, error) {
	if u := getenv("DATABASE_URL"); u != "" {
		return u, nil
	}
	arn := getenv("DATABASE_SECRET_ARN")
	if arn == "" {
		return "", fmt.Errorf("set DATABASE_URL or DATABASE_SECRET_ARN")
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("load aws config: %w", err)
	}
	return SecretDatabaseURL(ctx, secretsmanager.NewFromConfig(cfg), arn)
}

// SecretDatabaseURL reads the secret arn and returns the database URL in it:
// either the whole secret string, or its "url" key when it is a JSON object.
func SecretDatabaseURL(ctx context.Context, sm SecretGetter, arn string) (string, error) {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("get secret %s: %w", arn, err)
	}
	s := strings.TrimSpace(aws.ToString(out.SecretString))
	if strings.HasPrefix(s, "{") {
		var v struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return "", fmt.Errorf("secret %s: not a JSON object with a url: %w", arn, err)
		}
		s = v.URL
	}
	if s == "" {
		return "", fmt.Errorf("secret %s holds no database url", arn)
	}
	return s, nil
}
