//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the built binary twice, as a user would:
// `uartproxy emulate` plays the ESP32 behind a pty, and `uartproxy serve`
// opens that pty like a USB adapter. curl is the client. The line runs at
// 3 Mbit/s, about 300 kB/s, so the transfers are sized in seconds.

const (
	baud = "3000000"
	// big is the size of the main transfers, about 7 s each at the
	// line rate; small is for checks that a path works again.
	big   = 2 << 20
	small = 512 << 10
)

// rig is an emulated ESP32 on a pty, serve on it with SOCKS5, one -L
// forward to a local HTTP server, and /metrics+/healthz.
type rig struct {
	tty     string
	http    *httptest.Server
	emu     *proc
	serve   *proc
	socks   string
	fwd     string
	metrics string
}

func newRig(t *testing.T, serveArgs ...string) *rig {
	t.Helper()
	requireCurl(t)
	if testing.Short() {
		t.Skip("end-to-end over a pty at 3 Mbit/s takes seconds per transfer; skipped with -short")
	}
	r := &rig{tty: filepath.Join(t.TempDir(), "ttyESP32"), http: startHTTP(t)}
	r.socks, r.fwd, r.metrics = freeAddr(t), freeAddr(t), freeAddr(t)
	r.emu = startEmulate(t, r.tty)
	httpAddr := strings.TrimPrefix(r.http.URL, "http://")
	args := append([]string{"serve", "--port", r.tty, "--baud", baud,
		"--socks5", r.socks, "-L", r.fwd + ":" + httpAddr,
		"--metrics", r.metrics, "--log-format", "json"}, serveArgs...)
	r.serve = start(t, "serve", args...)
	took := waitHealth(t, r.serve, r.metrics, 200, 20*time.Second)
	t.Logf("serve ready (/healthz 200) %v after start", took.Round(time.Millisecond))
	return r
}

// url is where the HTTP server serves n bytes of blob, as seen through
// SOCKS5 (the ESP32 connects to the HTTP server's address).
func (r *rig) url(n int) string { return fmt.Sprintf("%s/blob/%d", r.http.URL, n) }

// fwdURL is the same through the -L forward.
func (r *rig) fwdURL(n int) string { return fmt.Sprintf("http://%s/blob/%d", r.fwd, n) }

func (r *rig) viaSOCKS() []string { return []string{"--socks5-hostname", r.socks} }

// TestE2ETransfer downloads random data through SOCKS5 and through the -L
// forward and checks it byte for byte, then stops serve with SIGTERM.
func TestE2ETransfer(t *testing.T) {
	r := newRig(t)
	fetchExact(t, "SOCKS5", big, 60*time.Second, r.url(big), r.viaSOCKS()...)
	fetchExact(t, "-L forward", big, 60*time.Second, r.fwdURL(big))

	// With no client left, SIGTERM stops serve at once, well within the
	// default drain time of 10 s, and it exits 0.
	begin := time.Now()
	r.serve.signal(t, syscall.SIGTERM)
	code, ok := r.serve.wait(10 * time.Second)
	if !ok {
		t.Fatal("serve still runs 10 s (the drain time) after SIGTERM")
	}
	if code != 0 {
		t.Fatalf("serve exited %d after SIGTERM; want 0", code)
	}
	t.Logf("serve exited 0 %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
	r.serve.checkNoPanic(t)
}

// TestE2EUnplug takes the device away (the emulator exits, its pty and
// link disappear, as when a USB adapter is pulled) and brings it back.
func TestE2EUnplug(t *testing.T) {
	r := newRig(t)

	unplugged := time.Now()
	r.emu.signal(t, syscall.SIGTERM)
	if code, ok := r.emu.wait(5 * time.Second); !ok || code != 0 {
		t.Fatalf("emulate after SIGTERM: exited=%v code=%d; want exit 0", ok, code)
	}
	if _, err := os.Lstat(r.tty); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after emulate exited (err %v)", r.tty, err)
	}
	took := waitHealth(t, r.serve, r.metrics, 503, 5*time.Second)
	t.Logf("/healthz 503 %v after the unplug", took.Round(time.Millisecond))
	if _, h := getHealth(r.metrics); h.State == "up" || h.LastError == "" {
		t.Errorf("/healthz while unplugged = %+v; want a state other than up and the last error", h)
	}

	// Clients fail quickly, with an error, instead of hanging.
	res := runCurl(t, 20*time.Second, append(r.viaSOCKS(), r.url(small))...)
	t.Logf("SOCKS5 while unplugged: %v", res)
	if res.code == 0 {
		t.Fatal("curl through SOCKS5 succeeded with the device unplugged")
	}
	if res.took > 10*time.Second {
		t.Errorf("curl through SOCKS5 took %v to fail; want it to fail within the dial wait, not hang", res.took)
	}
	if !strings.Contains(res.stderr, "SOCKS") {
		t.Errorf("curl's error %q does not say the SOCKS5 connection failed", res.stderr)
	}
	res = runCurl(t, 20*time.Second, r.fwdURL(small))
	t.Logf("-L forward while unplugged: %v", res)
	if res.code == 0 || res.took > 10*time.Second {
		t.Errorf("curl through the -L forward while unplugged: %v; want a failure within 10 s", res)
	}
	if r.serve.exited() {
		t.Fatal("serve exited when the device went away; it should keep running and wait")
	}

	// Plug it back in at the same path: serve finds it by itself (its
	// reconnect backoff is at most 10 s).
	replugged := time.Now()
	r.emu = startEmulate(t, r.tty)
	took = waitHealth(t, r.serve, r.metrics, 200, 25*time.Second)
	t.Logf("/healthz 200 again %v after the replug (%v unplugged)", took.Round(time.Millisecond), replugged.Sub(unplugged).Round(time.Millisecond))
	fetchExact(t, "SOCKS5 after replug", small, 30*time.Second, r.url(small), r.viaSOCKS()...)

	// The log says once that the port was lost, rather than once per
	// retry.
	lost, uplinkWarn := 0, 0
	for _, l := range r.serve.logLines() {
		if strings.Contains(l.Message, "serial port lost") {
			lost++
		}
		if l.Part == "uplink" && (l.Level == "warn" || l.Level == "error") {
			uplinkWarn++
		}
	}
	t.Logf("serve's log: %d lines, %d 'serial port lost', %d uplink warnings", len(r.serve.logLines()), lost, uplinkWarn)
	if lost != 1 {
		t.Errorf("serve logged 'serial port lost' %d times; want once", lost)
	}
	if uplinkWarn > 3 {
		t.Errorf("serve logged %d uplink warnings for one unplug; want a few, not one per retry", uplinkWarn)
	}
	r.serve.checkNoPanic(t)
}

// TestE2EReboot reboots the device (SIGUSR1 to emulate) in the middle of
// a download: curl fails cleanly and soon, and the next download works.
func TestE2EReboot(t *testing.T) {
	r := newRig(t)
	const n = 8 << 20 // ~28 s at the line rate: it is still running when the device reboots
	cmd, out, cancel := curlCmd(t, 60*time.Second, append(r.viaSOCKS(), r.url(n))...)
	defer cancel()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Reboot once some data has arrived.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(out); err == nil && fi.Size() >= 256<<10 {
			t.Logf("rebooting the device with %d bytes received", fi.Size())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl received too little in 20 s; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rebooted := time.Now()
	r.emu.signal(t, syscall.SIGUSR1)

	select {
	case err := <-exited:
		took := time.Since(rebooted)
		fi, _ := os.Stat(out)
		t.Logf("curl exited %v after the reboot (%v), %d of %d bytes: %s", took.Round(time.Millisecond), err, fi.Size(), n, strings.TrimSpace(stderr.String()))
		if err == nil {
			t.Fatal("curl succeeded across a device reboot; the stream should have been reset")
		}
		if took > 15*time.Second {
			t.Errorf("curl took %v after the reboot to fail; want it to notice within 15 s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("curl still runs 30 s after the device rebooted: it hangs")
	}

	took := waitHealth(t, r.serve, r.metrics, 200, 20*time.Second)
	t.Logf("/healthz 200 %v after curl ended", took.Round(time.Millisecond))
	fetchExact(t, "SOCKS5 after reboot", small, 30*time.Second, r.url(small), r.viaSOCKS()...)
	r.serve.checkNoPanic(t)
	r.emu.checkNoPanic(t)
}

// writeConfig writes serve's YAML configuration.
func writeConfig(t *testing.T, path, tty, metrics string, drain time.Duration, forwards ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "port: %q\nbaud: %s\nforwards:\n", tty, baud)
	for _, f := range forwards {
		fmt.Fprintf(&b, "  - %q\n", f)
	}
	fmt.Fprintf(&b, "metrics:\n  listen: %q\nshutdown:\n  drain_timeout: %s\nlog:\n  format: json\n", metrics, drain)
	// Written in place, as an editor would, then renamed: serve never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestE2EReload adds a forward to the config file and sends SIGHUP: the
// new forward serves and the old one still does. Then SIGTERM with a
// client still downloading: serve waits up to the drain time, cuts it,
// and exits 0.
func TestE2EReload(t *testing.T) {
	requireCurl(t)
	if testing.Short() {
		t.Skip("end-to-end over a pty; skipped with -short")
	}
	dir := t.TempDir()
	tty := filepath.Join(dir, "ttyESP32")
	srv := startHTTP(t)
	httpAddr := strings.TrimPrefix(srv.URL, "http://")
	first, second, metrics := freeAddr(t), freeAddr(t), freeAddr(t)
	const drain = 2 * time.Second
	cfg := filepath.Join(dir, "config.yaml")
	writeConfig(t, cfg, tty, metrics, drain, first+":"+httpAddr)

	startEmulate(t, tty)
	serve := start(t, "serve", "serve", "--config", cfg)
	waitHealth(t, serve, metrics, 200, 20*time.Second)
	at := func(addr string, n int) string { return fmt.Sprintf("http://%s/blob/%d", addr, n) }
	const n = 128 << 10
	fetchExact(t, "first forward", n, 30*time.Second, at(first, n))

	writeConfig(t, cfg, tty, metrics, drain, first+":"+httpAddr, second+":"+httpAddr)
	serve.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(serve.stderr.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatal("serve did not log 'configuration reloaded' within 10 s of SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fetchExact(t, "second forward, added by SIGHUP", n, 30*time.Second, at(second, n))
	fetchExact(t, "first forward after SIGHUP", n, 30*time.Second, at(first, n))
	if serve.exited() {
		t.Fatal("serve exited on SIGHUP")
	}

	// SIGTERM with a download under way.
	cmd, _, cancel := curlCmd(t, 60*time.Second, at(first, 8<<20))
	defer cancel()
	var curlErr syncBuffer
	cmd.Stderr = &curlErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	curlDone := make(chan error, 1)
	go func() { curlDone <- cmd.Wait() }()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, h := getHealth(metrics); h.Clients > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the download did not show up as an active client within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	begin := time.Now()
	serve.signal(t, syscall.SIGTERM)
	code, ok := serve.wait(drain + 5*time.Second)
	took := time.Since(begin)
	if !ok {
		t.Fatalf("serve still runs %v after SIGTERM with a drain time of %v", took.Round(time.Millisecond), drain)
	}
	if code != 0 {
		t.Fatalf("serve exited %d after SIGTERM; want 0", code)
	}
	t.Logf("serve exited 0 %v after SIGTERM with one client downloading (drain %v)", took.Round(time.Millisecond), drain)
	// The download could not finish within the drain time: it was cut,
	// and curl says so rather than waiting.
	select {
	case err := <-curlDone:
		t.Logf("the cut download: curl %v: %s", err, strings.TrimSpace(curlErr.String()))
		if err == nil {
			t.Error("curl reports success for a download that serve cut at the drain deadline")
		}
	case <-time.After(10 * time.Second):
		t.Error("curl still runs 10 s after serve exited")
	}
	serve.checkNoPanic(t)
}

// TestE2EBadInput: each mistake ends serve at once with a non-zero exit
// code and one line that names the problem, never a panic.
func TestE2EBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownKey, []byte("emulate: true\nsocks5:\n  listen: 127.0.0.1:0\n  lisen_udp: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // each must appear in stderr
	}{
		{"no port", []string{"serve"}, []string{"no ESP32 given", "--port", "--emulate"}},
		{"bad -L", []string{"serve", "--emulate", "-L", "80:nowhere"}, []string{`"80:nowhere"`, "want [BIND:]PORT:HOST:HOSTPORT"}},
		{"bad -L port", []string{"serve", "--emulate", "-L", "99999:example.com:80"}, []string{"99999"}},
		{"bad --flow", []string{"serve", "--emulate", "--flow", "xonxoff"}, []string{`"xonxoff"`, "--flow", "rtscts"}},
		{"unknown config key", []string{"serve", "--config", unknownKey}, []string{"unknown.yaml:4", "socks5.lisen_udp", "unknown key"}},
		{"missing config", []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "serve", tc.args...)
			code, ok := p.wait(15 * time.Second)
			if !ok {
				t.Fatalf("uartproxy %s still runs after 15 s; want it to refuse at once", strings.Join(tc.args, " "))
			}
			stderr := strings.TrimSpace(p.stderr.String())
			t.Logf("exit %d: %s", code, stderr)
			if code == 0 {
				t.Errorf("exit code 0; want non-zero")
			}
			if strings.Count(stderr, "\n") != 0 || stderr == "" {
				t.Errorf("stderr is %d lines; want one line:\n%s", strings.Count(stderr, "\n")+1, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %q", stderr, w)
				}
			}
			p.checkNoPanic(t)
		})
	}
}

// TestE2EPortsJSON: `uartproxy ports --json` prints a JSON array, empty
// on a machine without serial ports.
func TestE2EPortsJSON(t *testing.T) {
	t.Parallel()
	p := start(t, "ports", "ports", "--json")
	code, ok := p.wait(15 * time.Second)
	if !ok || code != 0 {
		t.Fatalf("ports --json: exited=%v code=%d; want exit 0", ok, code)
	}
	var ports []map[string]any
	if err := json.Unmarshal([]byte(p.stdout.String()), &ports); err != nil {
		t.Fatalf("ports --json printed %q, not a JSON array: %v", p.stdout.String(), err)
	}
	for _, port := range ports {
		if path, _ := port["path"].(string); path == "" {
			t.Errorf("port %v has no path", port)
		}
	}
	t.Logf("%d ports: %s", len(ports), strings.TrimSpace(p.stdout.String()))
	p.checkNoPanic(t)
}
