package rie

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	initReportRE   = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
	initDurationRE = regexp.MustCompile(`Init Duration: ([0-9.]+) ms`)
)

// readLog reads one emulator process's output until it ends, then closes
// done.
func (l *Lambda) readLog(r io.Reader, w io.Writer, done chan struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := initReportRE.FindStringSubmatch(line); m != nil {
			l.setInit(m[1])
		} else if m := initDurationRE.FindStringSubmatch(line); m != nil {
			l.stateMu.Lock()
			unset := l.initReport == 0
			l.stateMu.Unlock()
			if unset {
				l.setInit(m[1])
			}
		}
		if w != nil {
			fmt.Fprintf(w, "%-9s | %s\n", l.Name, line)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (l *Lambda) setInit(ms string) {
	v, err := strconv.ParseFloat(ms, 64)
	if err != nil {
		return
	}
	l.stateMu.Lock()
	l.initReport = time.Duration(v * float64(time.Millisecond))
	l.stateMu.Unlock()
}

// QuietLog wraps w, a Config.Log, to drop the emulator's per-invocation
// chatter (its rapid log lines, START, END, and REPORT without an init
// duration) but keep the functions' own output, init reports and errors.
// A nil w stays nil.
func QuietLog(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return &quietWriter{w: w}
}

type quietWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (q *quietWriter) Write(p []byte) (int, error) {
	line := string(p)
	noise := (strings.Contains(line, "[INFO] (rapid)") && !strings.Contains(line, "INIT REPORT")) ||
		strings.Contains(line, "| START RequestId") || strings.Contains(line, "| END RequestId") ||
		(strings.Contains(line, "| REPORT RequestId") && !strings.Contains(line, "Init Duration"))
	if noise {
		return len(p), nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.w.Write(p)
}
