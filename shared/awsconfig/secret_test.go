package awsconfig_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/nexus/usage/shared/awsconfig"
)

type fakeSecrets map[string]string

func (f fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	v, ok := f[aws.ToString(in.SecretId)]
	if !ok {
		return nil, errors.New("ResourceNotFoundException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func TestSecretDatabaseURL(t *testing.T) {
	sm := fakeSecrets{
		"plain": "postgres://u:p@h/db",
		"json":  `{"url": "postgres://u:p@h/json", "user": "u"}`,
		"empty": `{"user": "u"}`,
		"bad":   `{"url": `,
	}
	tests := []struct {
		arn, want string
		wantErr   bool
	}{
		{arn: "plain", want: "postgres://u:p@h/db"},
		{arn: "json", want: "postgres://u:p@h/json"},
		{arn: "empty", wantErr: true},
		{arn: "bad", wantErr: true},
		{arn: "missing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.arn, func(t *testing.T) {
			got, err := awsconfig.SecretDatabaseURL(context.Background(), sm, tt.arn)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("SecretDatabaseURL(%s) = %q, %v; want %q, error %v", tt.arn, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDatabaseURL_FromEnv(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://local/db"}
	got, err := awsconfig.DatabaseURL(context.Background(), func(k string) string { return env[k] })
	if err != nil || got != "postgres://local/db" {
		t.Errorf("DatabaseURL = %q, %v", got, err)
	}
	if _, err := awsconfig.DatabaseURL(context.Background(), func(string) string { return "" }); err == nil {
		t.Error("DatabaseURL without configuration succeeded")
	}
}
