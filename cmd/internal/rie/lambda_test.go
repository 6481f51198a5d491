package rie

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestQuietLog(t *testing.T) {
	var b strings.Builder
	w := QuietLog(&b)
	for _, line := range []string{
		"record    | 01 Dec 2026 10:00:00,000 [INFO] (rapid) ReserveFailed\n",
		"record    | INIT REPORT(durationMs: 12.5) [INFO] (rapid)\n",
		"record    | START RequestId: 1 Version: $LATEST\n",
		"record    | END RequestId: 1\n",
		"record    | REPORT RequestId: 1 Duration: 3 ms\n",
		"record    | REPORT RequestId: 1 Init Duration: 12.5 ms Duration: 3 ms\n",
		"record    | level=INFO msg=\"batch recorded\"\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	want := "record    | INIT REPORT(durationMs: 12.5) [INFO] (rapid)\n" +
		"record    | REPORT RequestId: 1 Init Duration: 12.5 ms Duration: 3 ms\n" +
		"record    | level=INFO msg=\"batch recorded\"\n"
	if b.String() != want {
		t.Errorf("QuietLog kept:\n%s\nwant:\n%s", b.String(), want)
	}
	if QuietLog(nil) != nil {
		t.Error("QuietLog(nil) must stay nil (Config.Log nil discards)")
	}
}

func TestFunctionError(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"errorMessage":"x","errorType":"errorString"}`, true},
		{`{"errorMessage":"x","errorType":"T","stackTrace":[]}`, true},
		{`{"errorType":"T","errorMessage":"x","statusCode":200}`, false},
		{`{"batchItemFailures":[]}`, false},
		{`null`, false},
	}
	for _, tt := range tests {
		if got := functionError([]byte(tt.body)) != nil; got != tt.want {
			t.Errorf("functionError(%s) = %v; want %v", tt.body, got, tt.want)
		}
	}
}

func TestPrebuiltBootstraps(t *testing.T) {
	if _, ok := PrebuiltBootstraps(t.TempDir(), []string{"record"}); ok {
		t.Error("PrebuiltBootstraps found a binary in an empty directory")
	}
}

// TestFreeAddrsOutsideEphemeral: the emulator's ports are free and, where
// the kernel says its ephemeral range, below it, so that no outgoing
// connection or listener on port 0 takes one before the emulator binds it.
func TestFreeAddrsOutsideEphemeral(t *testing.T) {
	lo, hi := portsOutsideEphemeral()
	for range 50 {
		addrs, err := freeAddrs(2)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 2 || addrs[0] == addrs[1] {
			t.Fatalf("freeAddrs(2) = %v", addrs)
		}
		for _, a := range addrs {
			_, p, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatal(err)
			}
			port, _ := strconv.Atoi(p)
			if hi > lo && (port < lo || port >= hi) {
				t.Fatalf("port %d is outside [%d, %d), in the ephemeral range", port, lo, hi)
			}
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("%s is not free: %v", a, err)
			}
			l.Close()
		}
	}
}
