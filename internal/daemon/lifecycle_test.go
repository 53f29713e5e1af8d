package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// isTimeout reports whether err is a deadline passing: a client that
// hung, as opposed to one whose connection was closed or reset.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// TestReload adds and removes forwards and denies a destination by
// reloading, while a transfer through a forward that stays keeps going.
func TestReload(t *testing.T) {
	t.Parallel()
	// The unchanged forward's transfer: 1 MB paced over about 5 s, long
	// enough to span the reloads.
	body := randomBytes(t, 1<<20)
	slow := tcpServer(t, sender(body, 16<<10, 80*time.Millisecond))
	echoSrv := tcpServer(t, echo)

	var mu sync.Mutex
	cfg := emulated()
	cfg.Forwards = []string{fwd(slow, false)}
	set := func(f func(*config.Config)) {
		mu.Lock()
		defer mu.Unlock()
		f(&cfg)
	}
	load := func() (config.Config, *config.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		c := cfg
		c.Forwards = append([]string(nil), cfg.Forwards...)
		c.Access.Rules = append([]config.Rule(nil), cfg.Access.Rules...)
		return c, nil, nil
	}
	initial, _, _ := load()
	d := start(t, daemon.Options{Config: initial, Load: load})
	slowSpec := initial.Forwards[0]
	slowAddr := d.Addrs().Forwards[slowSpec]
	proxy := d.Addrs().SOCKS5.String()

	c, err := net.Dial("tcp", slowAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type result struct {
		b   []byte
		err error
	}
	transfer := make(chan result, 1)
	go func() {
		b, err := readAll(c, 60*time.Second)
		transfer <- result{b, err}
	}()
	stillRunning := func(when string) {
		t.Helper()
		select {
		case r := <-transfer:
			transfer <- r
			t.Fatalf("%s: the transfer on the unchanged forward already ended (%d bytes, %v); it should outlast the reloads", when, len(r.b), r.err)
		default:
		}
	}

	// Add a forward: it listens and works.
	echoSpec := fwd(echoSrv, false)
	set(func(c *config.Config) { c.Forwards = append(c.Forwards, echoSpec) })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	added := d.Addrs().Forwards[echoSpec]
	if added == nil {
		t.Fatalf("added forward %s is not listening: %v", echoSpec, d.Addrs().Forwards)
	}
	if got := echoVia(t, added.String()); got != "ping" {
		t.Fatalf("through the added forward: %q", got)
	}
	if d.Addrs().Forwards[slowSpec].String() != slowAddr.String() {
		t.Fatalf("the unchanged forward moved: %v", d.Addrs().Forwards)
	}
	stillRunning("after adding a forward")

	// Remove it: it stops listening.
	set(func(c *config.Config) { c.Forwards = c.Forwards[:1] })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Addrs().Forwards[echoSpec]; ok {
		t.Fatalf("removed forward still in Addrs: %v", d.Addrs().Forwards)
	}
	eventually(t, 10*time.Second, "the removed forward's port closed", func() bool {
		c, err := net.DialTimeout("tcp", added.String(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	stillRunning("after removing a forward")

	// Deny a destination: SOCKS5 CONNECT gets "not allowed by ruleset".
	if c, err := socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", echoSrv.Port); err != nil {
		t.Fatalf("CONNECT before the deny rule: %v", err)
	} else {
		c.Close()
	}
	set(func(c *config.Config) {
		c.Access.Rules = []config.Rule{{Action: config.ActionDeny, To: "127.0.0.1", Ports: strconv.Itoa(echoSrv.Port)}}
	})
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = socksConnect(ctxFor(t, 10*time.Second), proxy, "127.0.0.1", echoSrv.Port)
	if replyOf(err) != repNotAllowed {
		t.Fatalf("CONNECT to a denied destination: %v, want reply 0x02", err)
	}
	_, err = socksConnect(ctxFor(t, 10*time.Second), proxy, "localhost", echoSrv.Port)
	if replyOf(err) != repNotAllowed {
		t.Fatalf("CONNECT to a name for a denied address: %v, want reply 0x02", err)
	}
	stillRunning("after denying a destination")

	r := <-transfer
	if r.err != nil || !bytes.Equal(r.b, body) {
		t.Fatalf("transfer across the reloads: %d of %d bytes, equal %v, %v", len(r.b), len(body), bytes.Equal(r.b, body), r.err)
	}
}

// echoVia sends "ping" through a TCP forward at addr, half-closes and
// returns the answer.
func echoVia(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	b, err := readAll(c, 10*time.Second)
	if err != nil {
		t.Fatalf("echo via %s: %v", addr, err)
	}
	return string(b)
}

// TestShutdownDrains stops a daemon with drain_timeout 2s through Run: a
// transfer that ends in about 0.5 s completes, one that would take 10 s
// is cut at the deadline, and Run returns nil.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	short := randomBytes(t, 64<<10) // 16 chunks every 31 ms: about 0.5 s
	long := randomBytes(t, 640<<10) // 160 chunks every 62 ms: about 10 s
	shortSrv := tcpServer(t, sender(short, 4<<10, 31*time.Millisecond))
	longSrv := tcpServer(t, sender(long, 4<<10, 62*time.Millisecond))
	cfg := emulated()
	cfg.Shutdown.DrainTimeout = config.Duration(2 * time.Second)
	cfg.Forwards = []string{fwd(shortSrv, false), fwd(longSrv, false)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()

	type result struct {
		n     []byte
		err   error
		ended time.Time
	}
	get := func(spec string) (<-chan result, *net.TCPConn) {
		c, err := net.Dial("tcp", a.Forwards[spec].String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Wait for the first byte, so the transfer is active when the
		// daemon is told to stop.
		first := make([]byte, 1)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, first); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		ch := make(chan result, 1)
		go func() {
			b, err := readAll(c, 30*time.Second)
			ch <- result{append(first, b...), err, time.Now()}
		}()
		return ch, c.(*net.TCPConn)
	}
	shortCh, _ := get(cfg.Forwards[0])
	longCh, _ := get(cfg.Forwards[1])

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx, nil) }()
	stopAt := time.Now()
	cancel()

	s := <-shortCh
	if s.err != nil || !bytes.Equal(s.n, short) {
		t.Errorf("the short transfer during the drain: %d of %d bytes, equal %v, %v", len(s.n), len(short), bytes.Equal(s.n, short), s.err)
	}
	l := <-longCh
	if isTimeout(l.err) {
		t.Fatalf("the long transfer hung: %v", l.err)
	}
	if len(l.n) >= len(long) {
		t.Fatalf("the long transfer completed (%d bytes) though it needs more than the drain timeout", len(l.n))
	}
	if cut := l.ended.Sub(stopAt); cut < 1500*time.Millisecond {
		t.Errorf("the long transfer was cut %v after the stop, before the 2 s drain timeout", cut)
	} else {
		t.Logf("the long transfer was cut %v after the stop, with %d of %d bytes", cut.Round(time.Millisecond), len(l.n), len(long))
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return 20 s after the stop")
	}
	if _, err := net.DialTimeout("tcp", a.Forwards[cfg.Forwards[0]].String(), time.Second); err == nil {
		t.Error("a forward still accepts after the shutdown")
	}
}

// TestDeviceAbsent starts a daemon on a serial port that does not exist:
// it listens all the same, /healthz says 503 "absent", and a SOCKS5
// CONNECT gets "network unreachable" instead of hanging.
func TestDeviceAbsent(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	cfg := config.Default()
	cfg.Port = "/dev/uartproxy-test-no-such-port/ttyUSB9"
	cfg.SOCKS5.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Forwards = []string{fwd(srv, false)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()
	if a.SOCKS5 == nil || a.Metrics == nil || a.Forwards[cfg.Forwards[0]] == nil {
		t.Fatalf("not every listener is up: %+v", a)
	}

	resp, body := httpGet(t, "http://"+a.Metrics.String()+"/healthz")
	var h daemon.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || h.Status != "unavailable" || h.State != "absent" {
		t.Fatalf("/healthz: %s %+v", resp.Status, h)
	}

	// A forward's client, at the same time, is closed, not left hanging.
	c, err := net.Dial("tcp", a.Forwards[cfg.Forwards[0]].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type result struct {
		b   []byte
		err error
	}
	fwdDone := make(chan result, 1)
	go func() {
		b, err := readAll(c, 15*time.Second)
		fwdDone <- result{b, err}
	}()

	began := time.Now()
	_, err = socksConnect(ctxFor(t, 15*time.Second), a.SOCKS5.String(), "127.0.0.1", srv.Port)
	if replyOf(err) != repNetworkUnreachable {
		t.Fatalf("CONNECT without a device: %v after %v, want reply 0x03", err, time.Since(began))
	}
	t.Logf("CONNECT without a device: %v after %v", err, time.Since(began).Round(time.Millisecond))
	if r := <-fwdDone; isTimeout(r.err) || len(r.b) != 0 {
		t.Fatalf("forward without a device: %q, %v", r.b, r.err)
	}
	eventually(t, 5*time.Second, "the failure counted", func() bool {
		for _, f := range d.Snapshot().Forwards {
			if f.Failed["no_device"] == 1 {
				return true
			}
		}
		return false
	})
}

// TestReloadSamePort changes settings that need a new server or forward
// on a fixed port: the SOCKS5 server's (authentication on, UDP ASSOCIATE
// off) and a forward's destination. The replacement must get the port the
// old one gives up.
func TestReloadSamePort(t *testing.T) {
	t.Parallel()
	first := tcpServer(t, func(c *net.TCPConn) { c.Write([]byte("first")) })
	second := tcpServer(t, func(c *net.TCPConn) { c.Write([]byte("second")) })
	socksPort, fwdPort := freePort(t), freePort(t)
	spec := func(target *net.TCPAddr) string {
		return "127.0.0.1:" + strconv.Itoa(fwdPort) + ":127.0.0.1:" + strconv.Itoa(target.Port)
	}

	var mu sync.Mutex
	cfg := emulated()
	cfg.SOCKS5.Listen = "127.0.0.1:" + strconv.Itoa(socksPort)
	cfg.Forwards = []string{spec(first)}
	var creds *config.Credentials
	load := func() (config.Config, *config.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		c := cfg
		c.Forwards = append([]string(nil), cfg.Forwards...)
		return c, creds, nil
	}
	initial, _, _ := load()
	d := start(t, daemon.Options{Config: initial, Load: load})
	fwdAddr := "127.0.0.1:" + strconv.Itoa(fwdPort)
	if got := readFrom(t, fwdAddr); got != "first" {
		t.Fatalf("before the reload: %q", got)
	}

	mu.Lock()
	cfg.SOCKS5.UDP = false
	cfg.Forwards = []string{spec(second)}
	creds, _ = config.CredentialsFromEnv(env{
		"UARTPROXY_SOCKS5_USERNAME": "alice", "UARTPROXY_SOCKS5_PASSWORD": "s3cret",
	}.get)
	mu.Unlock()
	if err := d.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	a := d.Addrs()
	if a.SOCKS5 == nil || portOf(a.SOCKS5) != socksPort {
		t.Fatalf("SOCKS5 after the reload: %v, want port %d", a.SOCKS5, socksPort)
	}
	if _, err := socksConnect(ctxFor(t, 10*time.Second), a.SOCKS5.String(), "127.0.0.1", second.Port); err == nil {
		t.Fatal("CONNECT without authentication succeeded after the reload turned it on")
	}
	p, err := proxy.SOCKS5("tcp", a.SOCKS5.String(), &proxy.Auth{User: "alice", Password: "s3cret"}, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.(proxy.ContextDialer).DialContext(ctxFor(t, 10*time.Second), "tcp", second.String())
	if err != nil {
		t.Fatalf("CONNECT with the reloaded credentials: %v", err)
	}
	b, err := readAll(c, 10*time.Second)
	c.Close()
	if err != nil || string(b) != "second" {
		t.Fatalf("through SOCKS5 after the reload: %q, %v", b, err)
	}
	if got := readFrom(t, fwdAddr); got != "second" {
		t.Fatalf("the forward after the reload: %q, want the new destination", got)
	}
}

// env is a getenv over a map.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// TestReloadInvalid reloads a configuration that New would refuse: Reload
// fails and the running configuration stays.
func TestReloadInvalid(t *testing.T) {
	t.Parallel()
	srv := tcpServer(t, echo)
	good := emulated()
	good.Limits.MaxClients = 2
	good.Forwards = []string{fwd(srv, false)}
	bad := good
	bad.Forwards = []string{"not a forward"}
	bad.Limits.MaxClients = 0
	d := start(t, daemon.Options{Config: good, Load: func() (config.Config, *config.Credentials, error) { return bad, nil, nil }})
	if err := d.Reload(); err == nil {
		t.Fatal("Reload accepted an invalid configuration")
	} else {
		t.Logf("Reload: %v", err)
	}
	a := d.Addrs()
	if a.Forwards[good.Forwards[0]] == nil {
		t.Fatalf("the forward is gone after a failed reload: %v", a.Forwards)
	}
	if got := echoVia(t, a.Forwards[good.Forwards[0]].String()); got != "ping" {
		t.Fatalf("echo after a failed reload: %q", got)
	}
	if s := d.Snapshot(); s.Clients.Limit != 2 {
		t.Fatalf("client limit %d after a failed reload, want 2", s.Clients.Limit)
	}
}

// readFrom connects to addr and reads until EOF.
func readFrom(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := readAll(c, 10*time.Second)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}

// TestShutdownCutsReloadDrains removes a busy forward by reloading, with
// a long drain_timeout, then shuts down with a short deadline: Shutdown
// cuts that forward's client at its own deadline too, rather than waiting
// for the reload's drain.
func TestShutdownCutsReloadDrains(t *testing.T) {
	t.Parallel()
	body := randomBytes(t, 256<<10)
	slow := tcpServer(t, sender(body, 1<<10, 50*time.Millisecond)) // about 13 s
	var mu sync.Mutex
	cfg := emulated()
	cfg.Shutdown.DrainTimeout = config.Duration(time.Minute)
	cfg.Forwards = []string{fwd(slow, false)}
	load := func() (config.Config, *config.Credentials, error) {
		mu.Lock()
		defer mu.Unlock()
		c := cfg
		c.Forwards = append([]string(nil), cfg.Forwards...)
		return c, nil, nil
	}
	initial, _, _ := load()
	d := start(t, daemon.Options{Config: initial, Load: load})
	c, err := net.Dial("tcp", d.Addrs().Forwards[initial.Forwards[0]].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	cfg.Forwards = nil
	mu.Unlock()
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- d.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Shutdown with a 500 ms deadline returned after %v", time.Since(began).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Error("Shutdown still waits 8 s past its 500 ms deadline for a forward a reload removed")
		<-done
	}
	if b, err := readAll(c, 10*time.Second); isTimeout(err) || len(b) >= len(body) {
		t.Fatalf("the removed forward's client: %d bytes, %v; want it cut", len(b), err)
	}
}
