package env_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/nexus/usage/shared/env"
	"github.com/nexus/usage/shared/postgres/pgtest"
)

// TestDatabaseFromSecretsManager reads the database URL as deployed: the
// template leaves DATABASE_URL empty and gives DATABASE_SECRET_ARN, and the
// functions read the secret's "url" key through the AWS SDK's Secrets
// Manager client (here moto_server's). A secret without the key, or one
// that does not exist, is an error naming the variable.
func TestDatabaseFromSecretsManager(t *testing.T) {
	endpoint := pgtest.Require(t, "NEXUS_TEST_SQS_ENDPOINT", "moto_server")
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	put := func(name string, v any) string {
		b, _ := json.Marshal(v)
		out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))})
		if err != nil {
			t.Fatalf("create secret %s: %v", name, err)
		}
		return aws.ToString(out.ARN)
	}
	name := strings.ReplaceAll(t.Name(), "/", "-")
	good := put(name+"-db", map[string]string{"url": "postgres://app@db.internal:5432/usage"})
	noKey := put(name+"-rds", map[string]string{"username": "app", "password": "p"})

	vars := map[string]string{"DATABASE_URL": "", "DATABASE_SECRET_ARN": good, "DATABASE_PROXY": "true"}
	read := func(k string) string { return vars[k] }
	url, proxy, err := env.New(ctx, read).Database()
	if err != nil || url != "postgres://app@db.internal:5432/usage" || !proxy {
		t.Fatalf("Database() = %q, %v, %v; want the secret's url behind the proxy", url, proxy, err)
	}
	vars["DATABASE_SECRET_ARN"] = noKey
	if _, _, err := env.New(ctx, read).Database(); err == nil || !strings.Contains(err.Error(), `DATABASE_SECRET_ARN: secret has no string key "url"`) {
		t.Errorf("a secret without url: %v", err)
	}
	vars["DATABASE_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
	if _, _, err := env.New(ctx, read).Database(); err == nil || !strings.Contains(err.Error(), "read DATABASE_SECRET_ARN") {
		t.Errorf("a missing secret: %v", err)
	}
}
