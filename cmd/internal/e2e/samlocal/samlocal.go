package samlocal

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Find returns the SAM CLI to run: $NEXUS_SAM, else sam on PATH, else the
// copy beside the checkout (../shared/tools/sam-cli/bin/sam from root,
// for machines whose Python package index is unreachable).
func Find(root string, getenv func(string) string) (string, error) {
	if p := getenv("NEXUS_SAM"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("sam"); err == nil {
		return p, nil
	}
	p := filepath.Join(root, "..", "shared", "tools", "sam-cli", "bin", "sam")
	if _, err := os.Stat(p); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("no SAM CLI: install it (pip install aws-sam-cli==1.164.0), put sam on PATH or set NEXUS_SAM")
}

// Forward listens on a Unix socket at path and forwards every connection
// to the TCP address addr, until ctx ends. The socket is world-writable:
// the container's user connects to it.
func Forward(ctx context.Context, path, addr string) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		l.Close()
		return err
	}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		defer wg.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var d net.Dialer
				up, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
				defer stop()
				done := make(chan struct{})
				go func() {
					io.Copy(up, c)
					if tc, ok := up.(*net.TCPConn); ok {
						tc.CloseWrite()
					}
					close(done)
				}()
				io.Copy(c, up)
				if uc, ok := c.(*net.UnixConn); ok {
					uc.CloseWrite()
				}
				<-done
			}()
		}
	}()
	return nil
}
