package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bulkBaud is the line rate of the bulk tests: the emulated line carries
// bulkBaud/10 bytes/s (500 KB/s).
const bulkBaud = 5000000

// emulated returns the defaults with an emulated ESP32 at bulkBaud and
// every listener on a free loopback port.
func emulated() config.Config {
	cfg := config.Default()
	cfg.Emulate = true
	cfg.Baud = bulkBaud
	cfg.SOCKS5.Listen = "127.0.0.1:0"
	cfg.DNS.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	return cfg
}

// fwd is the -L spec of a forward from a free loopback port to target,
// as Addrs().Forwards names it.
func fwd(target net.Addr, udp bool) string {
	s := "127.0.0.1:0:127.0.0.1:" + strconv.Itoa(portOf(target))
	if udp {
		s += "/udp"
	}
	return s
}

// start runs a daemon for the test, stopped at cleanup, and waits until
// the ESP32 handshake is up (unless the device is a port path).
func start(t *testing.T, opts daemon.Options) *daemon.Daemon {
	t.Helper()
	opts.Logger = testLogger(t)
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	if opts.Config.Emulate {
		eventually(t, 10*time.Second, "the emulated ESP32 up", func() bool { return up(d) })
	}
	return d
}

// up reports whether the daemon says its ESP32 is up, as /healthz does.
func up(d *daemon.Daemon) bool {
	return d.Uplink().Status().State == uplink.StateUp && d.Uplink().Up()
}

// testLogger logs to the test at info level and drops lines once the
// test is over, so a late line from a goroutine being stopped is no panic.
func testLogger(t *testing.T) zerolog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after the daemon's Shutdown
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// need returns the path of a program, or skips the test naming the
// Debian package that has it.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func portOf(a net.Addr) int {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.Port
	case *net.UDPAddr:
		return a.Port
	}
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return n
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// fileServer serves body at /big from an httptest server on 127.0.0.1.
func fileServer(t *testing.T, body []byte) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "big", time.Time{}, bytes.NewReader(body))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// tcpServer runs handle for each connection to a listener on 127.0.0.1;
// cleanup closes the listener and the connections and waits for handle.
func tcpServer(t *testing.T, handle func(c *net.TCPConn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr)
}

// echo copies a connection back to itself and half-closes at EOF.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// sender returns a handler that writes body, paced as chunks of chunk
// bytes every every (0: as fast as it can), then closes.
func sender(body []byte, chunk int, every time.Duration) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		for off := 0; off < len(body); off += chunk {
			if _, err := c.Write(body[off:min(off+chunk, len(body))]); err != nil {
				return
			}
			if every > 0 {
				time.Sleep(every)
			}
		}
	}
}

// SOCKS5 reply codes (RFC 1928 §6).
const (
	repSucceeded          = 0x00
	repNotAllowed         = 0x02
	repNetworkUnreachable = 0x03
)

// replyError is a SOCKS5 request that got a reply other than success.
type replyError byte

func (e replyError) Error() string { return fmt.Sprintf("socks5 reply 0x%02x", byte(e)) }

// socksConnect does a SOCKS5 CONNECT (no authentication) to host:port
// through the proxy at proxy. A non-success reply is a replyError; a
// connection closed before the reply is an I/O error.
func socksConnect(ctx context.Context, proxy, host string, port int) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, err
	}
	req := []byte{5, 1, 0, 5, 1, 0}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		req = append(req, 1)
		req = append(req, ip.To4()...)
	} else {
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return fail(err)
	}
	var hdr [2 + 4]byte
	if _, err := io.ReadFull(c, hdr[:2]); err != nil {
		return fail(err)
	}
	if hdr != [6]byte{5, 0} {
		return fail(fmt.Errorf("socks5 method reply % x", hdr[:2]))
	}
	if _, err := io.ReadFull(c, hdr[:4]); err != nil {
		return fail(err)
	}
	if hdr[0] != 5 {
		return fail(fmt.Errorf("socks5 reply version %d", hdr[0]))
	}
	var skip int
	switch hdr[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return fail(err)
		}
		skip = int(l[0]) + 2
	default:
		return fail(fmt.Errorf("socks5 reply address type %d", hdr[3]))
	}
	if _, err := io.ReadFull(c, make([]byte, skip)); err != nil {
		return fail(err)
	}
	if hdr[1] != repSucceeded {
		return fail(replyError(hdr[1]))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// replyOf returns the SOCKS5 reply code in err, or -1.
func replyOf(err error) int {
	var re replyError
	if errors.As(err, &re) {
		return int(re)
	}
	return -1
}

// readAll reads c to EOF or until d passes, and returns what came.
func readAll(c net.Conn, d time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	return io.ReadAll(c)
}

// httpClient keeps no idle connections, which goleak would see.
var httpClient = http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet fetches url.
func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
