//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running uartproxy subprocess.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// env is the environment of every subprocess: this one's, less what could
// change what serve does (UARTPROXY_* settings, a systemd notify socket),
// with UARTPROXY_CONFIG pointing at an empty file so that a config in
// /etc/uartproxy on the test machine is never read.
func env(t *testing.T) []string {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "UARTPROXY_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") ||
			strings.HasPrefix(kv, "WATCHDOG_") || strings.HasPrefix(kv, "LISTEN_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "UARTPROXY_CONFIG="+empty)
}

// start runs the binary with args. When the test ends the process is
// killed if it still runs, and on failure its output is logged.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = env(t)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s\n--- stdout:\n%s--- stderr:\n%s", name, strings.Join(args, " "), p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code
// (-1 if a signal ended it); ok is false if it still runs.
func (p *proc) wait(d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		return 0, false
	}
	if p.err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), true
	}
	return -1, true
}

// checkNoPanic fails the test if the process printed a Go panic or a
// goroutine dump.
func (p *proc) checkNoPanic(t *testing.T) {
	t.Helper()
	for _, s := range []string{p.stdout.String(), p.stderr.String()} {
		if strings.Contains(s, "panic:") || strings.Contains(s, "goroutine ") || strings.Contains(s, "fatal error:") {
			t.Errorf("%s printed a Go panic or goroutine dump:\n%s", p.name, s)
		}
	}
}

// logLine is the part of a zerolog JSON line the tests look at.
type logLine struct {
	Level   string `json:"level"`
	Part    string `json:"part"`
	Message string `json:"message"`
}

// logLines parses the process's JSON log, skipping lines that are not JSON
// (a final "uartproxy: ..." error).
func (p *proc) logLines() []logLine {
	var out []logLine
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		var ll logLine
		if json.Unmarshal([]byte(l), &ll) == nil && ll.Message != "" {
			out = append(out, ll)
		}
	}
	return out
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// blob is the random data the HTTP server serves: prefixes of one
// deterministic stream, so every test knows what it should receive.
var blob = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	r := rand.NewChaCha8([32]byte{'u', 'a', 'r', 't', 'p', 'r', 'o', 'x', 'y'})
	r.Read(b)
	return b
})

// startHTTP serves blob()[:n] at /blob/n on a loopback port.
func startHTTP(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blob/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > len(blob()) {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob()[:n]))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// curlResult is what one curl run did.
type curlResult struct {
	code    int // exit code; 0 is success
	stderr  string
	took    time.Duration
	outPath string
}

func (r curlResult) String() string {
	return fmt.Sprintf("curl exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
}

// requireCurl skips the test when curl is not installed.
func requireCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; the end-to-end tests use it as the real client")
	}
}

// curlCmd prepares curl writing the body to a file; maxTime bounds the
// transfer (curl --max-time) and, with a margin, the process itself.
func curlCmd(t *testing.T, maxTime time.Duration, args ...string) (*exec.Cmd, string, context.CancelFunc) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	ctx, cancel := context.WithTimeout(context.Background(), maxTime+10*time.Second)
	all := append([]string{"-sS", "--fail", "--max-time", strconv.Itoa(int(maxTime.Seconds())), "-o", out}, args...)
	cmd := exec.CommandContext(ctx, "curl", all...)
	cmd.Env = env(t)
	return cmd, out, cancel
}

// runCurl runs curl to the end.
func runCurl(t *testing.T, maxTime time.Duration, args ...string) curlResult {
	t.Helper()
	cmd, out, cancel := curlCmd(t, maxTime, args...)
	defer cancel()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	begin := time.Now()
	err := cmd.Run()
	r := curlResult{stderr: stderr.String(), took: time.Since(begin), outPath: out}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("curl: %v", err)
	}
	return r
}

// fetchExact downloads blob()[:n] from srv with curl (extra args choose
// the proxy or the forward) and checks it byte for byte.
func fetchExact(t *testing.T, what string, n int, maxTime time.Duration, url string, extra ...string) {
	t.Helper()
	r := runCurl(t, maxTime, append(extra, url)...)
	if r.code != 0 {
		t.Fatalf("%s: %v", what, r)
	}
	got, err := os.ReadFile(r.outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := blob()[:n]
	if len(got) != len(want) || sum(got) != sum(want) {
		t.Fatalf("%s: got %d bytes, sha256 %s; want %d bytes, sha256 %s", what, len(got), sum(got), len(want), sum(want))
	}
	t.Logf("%s: %d bytes byte-exact in %v (%.0f kB/s)", what, n, r.took.Round(time.Millisecond), float64(n)/r.took.Seconds()/1e3)
}

// health is the part of /healthz the tests read.
type health struct {
	Status    string `json:"status"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	Clients   int    `json:"clients_active"`
}

// getHealth returns /healthz's status code and body; code 0 if serve did
// not answer.
func getHealth(addr string) (int, health) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, health{}
	}
	defer resp.Body.Close()
	var h health
	json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

// waitHealth polls /healthz until it answers want, for up to d, and
// returns how long that took.
func waitHealth(t *testing.T, serve *proc, addr string, want int, d time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	var code int
	var h health
	for time.Since(begin) < d {
		if code, h = getHealth(addr); code == want {
			return time.Since(begin)
		}
		if serve.exited() {
			t.Fatalf("serve exited while waiting for /healthz %d", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/healthz is still %d (%+v) after %v; want %d", code, h, d, want)
	return 0
}

// startEmulate starts an emulated ESP32 on a pty linked at path and waits
// for the link to appear.
func startEmulate(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := start(t, "emulate", append([]string{"emulate", "--pty", path, "--baud", baud, "--log-format", "json"}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return p
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("emulate did not create %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
