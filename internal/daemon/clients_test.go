package daemon_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/config"
	"github.com/uartproxy/uartproxy/internal/daemon"
)

// TestCurlBulk fetches a 10 MB random file with curl through SOCKS5 and
// through a -L forward, checks it arrives byte-exact, and logs the
// goodput as a fraction of the line's baud/10 bytes/s. The two run at
// once, each on its own daemon and emulated line, in one test (so in one
// of go test's -parallel slots, while the other tests use the rest); they
// share the machine's cores.
func TestCurlBulk(t *testing.T) {
	t.Parallel()
	curl := need(t, "curl", "curl")
	const size = 10 << 20
	body := randomBytes(t, size)
	want := sum(body)
	srv := fileServer(t, body)
	httpAddr := srv.Listener.Addr()

	transfers := []struct {
		name string
		url  func(d *daemon.Daemon, cfg config.Config) []string
	}{
		{"socks5", func(d *daemon.Daemon, _ config.Config) []string {
			return []string{"--socks5-hostname", d.Addrs().SOCKS5.String(), "http://localhost:" + strconv.Itoa(portOf(httpAddr)) + "/big"}
		}},
		{"forward", func(d *daemon.Daemon, cfg config.Config) []string {
			return []string{"http://" + d.Addrs().Forwards[cfg.Forwards[0]].String() + "/big"}
		}},
	}
	var wg sync.WaitGroup
	for _, tc := range transfers {
		cfg := emulated()
		cfg.Forwards = []string{fwd(httpAddr, false)}
		d := start(t, daemon.Options{Config: cfg})
		out := filepath.Join(t.TempDir(), tc.name)
		args := append([]string{"-sS", "--fail", "--max-time", "150", "-o", out, "-w", "%{speed_download}"}, tc.url(d, cfg)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			res, err := exec.CommandContext(ctxFor(t, 180*time.Second), curl, args...).CombinedOutput()
			took := time.Since(began)
			if err != nil {
				t.Errorf("%s: curl %s: %v\n%s", tc.name, strings.Join(args, " "), err, res)
				return
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Error(err)
				return
			}
			if len(got) != size || sum(got) != want {
				t.Errorf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", tc.name, len(got), sum(got), size, want)
				return
			}
			line := float64(bulkBaud) / 10
			rate := float64(size) / took.Seconds()
			curlRate, _ := strconv.ParseFloat(strings.TrimSpace(string(res)), 64)
			t.Logf("goodput %s: %.0f B/s over %v = %.3f of baud/10 (curl's own speed_download %.0f B/s = %.3f)",
				tc.name, rate, took.Round(time.Millisecond), rate/line, curlRate, curlRate/line)
		}()
	}
	wg.Wait()
}

// TestHalfCloseForward sends through a TCP -L forward, closes the write
// side, and still gets the server's answer, which the server sends only
// after it read to EOF.
func TestHalfCloseForward(t *testing.T) {
	srv := tcpServer(t, func(c *net.TCPConn) {
		b, err := readAll(c, 20*time.Second)
		if err != nil {
			return
		}
		c.Write(append([]byte("got: "), b...))
	})
	cfg := emulated()
	cfg.Forwards = []string{fwd(srv, false)}
	d := start(t, daemon.Options{Config: cfg})
	port := strconv.Itoa(portOf(d.Addrs().Forwards[cfg.Forwards[0]]))

	t.Run("ncat", func(t *testing.T) {
		ncat := need(t, "ncat", "ncat")
		cmd := exec.CommandContext(ctxFor(t, 30*time.Second), ncat, "127.0.0.1", port)
		cmd.Stdin = strings.NewReader("hello half-close\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ncat: %v\n%s", err, out)
		}
		if string(out) != "got: hello half-close\n" {
			t.Fatalf("ncat printed %q", out)
		}
	})
	t.Run("socat", func(t *testing.T) {
		socat := need(t, "socat", "socat")
		// -t: wait this long for the answer after stdin's EOF (default 0.5 s).
		cmd := exec.CommandContext(ctxFor(t, 30*time.Second), socat, "-t", "20", "-", "TCP:127.0.0.1:"+port)
		cmd.Stdin = strings.NewReader("hello from socat\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("socat: %v\n%s", err, out)
		}
		if string(out) != "got: hello from socat\n" {
			t.Fatalf("socat printed %q", out)
		}
	})
}

// dnsResponder answers every A question with 192.0.2.53 on a UDP socket
// on 127.0.0.1.
func dnsResponder(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if q.Type == dnsmessage.TypeA {
				b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30},
					dnsmessage.AResource{A: [4]byte{192, 0, 2, 53}})
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			pc.WriteToUDP(msg, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

// dig runs dig with args and returns its output.
func dig(t *testing.T, args ...string) string {
	t.Helper()
	bin := need(t, "dig", "dnsutils")
	args = append([]string{"+time=5", "+tries=2"}, args...)
	out, err := exec.CommandContext(ctxFor(t, 30*time.Second), bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDig asks a DNS server through a UDP -L forward, and the daemon's
// DNS forwarder, with dig.
func TestDig(t *testing.T) {
	need(t, "dig", "dnsutils")
	resp := dnsResponder(t)
	cfg := emulated()
	cfg.Forwards = []string{fwd(resp, true)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()
	fwdPort := strconv.Itoa(portOf(a.Forwards[cfg.Forwards[0]]))
	dnsPort := strconv.Itoa(portOf(a.DNS))

	t.Run("udp forward", func(t *testing.T) {
		out := dig(t, "@127.0.0.1", "-p", fwdPort, "+short", "printer.example.test", "A")
		if strings.TrimSpace(out) != "192.0.2.53" {
			t.Fatalf("dig printed %q, want 192.0.2.53", out)
		}
	})
	t.Run("forwarder localhost", func(t *testing.T) {
		out := dig(t, "@127.0.0.1", "-p", dnsPort, "+short", "localhost", "A")
		if strings.TrimSpace(out) != "127.0.0.1" {
			t.Fatalf("dig printed %q, want 127.0.0.1", out)
		}
	})
	t.Run("forwarder nxdomain", func(t *testing.T) {
		// .invalid never exists (RFC 6761 §6.4); the emulated ESP32 asks
		// this host's resolver, which says so.
		out := dig(t, "@127.0.0.1", "-p", dnsPort, "no-such-host.uartproxy.invalid", "A")
		if !strings.Contains(out, "status: NXDOMAIN") {
			t.Fatalf("dig printed\n%s\nwant status: NXDOMAIN", out)
		}
	})
	if s := d.Snapshot(); s.DNS == nil || s.DNS.Responses["NXDOMAIN"] == 0 || s.DNS.Responses["NOERROR"] == 0 {
		t.Errorf("DNS counters %+v, want NOERROR and NXDOMAIN counted", s.DNS)
	}
}

// TestPySocksUDP runs PySocks' UDP ASSOCIATE through the daemon to a UDP
// echo server on this host.
func TestPySocksUDP(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import socks").Run(); err != nil {
		t.Skipf("%s has no PySocks (apt-get install python3-socks): %v", python, err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	echoPort := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)

	d := start(t, daemon.Options{Config: emulated()})
	proxyPort := strconv.Itoa(portOf(d.Addrs().SOCKS5))
	script := `
import socket, socks, sys
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", int(sys.argv[1]))
s.settimeout(10)
for i in range(3):
    s.sendto(b"datagram %d" % i, ("127.0.0.1", int(sys.argv[2])))
    data, addr = s.recvfrom(4096)
    print(data.decode(), addr[0], addr[1])
s.close()
`
	out, err := exec.CommandContext(ctxFor(t, 40*time.Second), python, "-c", script, proxyPort, echoPort).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var want strings.Builder
	for i := range 3 {
		want.WriteString("echo:datagram " + strconv.Itoa(i) + " 127.0.0.1 " + echoPort + "\n")
	}
	if string(out) != want.String() {
		t.Fatalf("python printed\n%s\nwant\n%s", out, want.String())
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return portOf(ln.Addr())
}

// TestReverseForward listens on the (emulated) ESP32 with -R and reaches
// a server on this host through it.
func TestReverseForward(t *testing.T) {
	srv := tcpServer(t, echo)
	devPort := freePort(t)
	spec := "127.0.0.1:" + strconv.Itoa(devPort) + ":127.0.0.1:" + strconv.Itoa(srv.Port)
	cfg := emulated()
	cfg.Reverse = []string{spec}
	d := start(t, daemon.Options{Config: cfg})
	eventually(t, 15*time.Second, "the reverse forward listening", func() bool {
		for _, f := range d.Snapshot().Forwards {
			if f.Direction == "remote" && f.Listening {
				return true
			}
		}
		return false
	})

	msg := randomBytes(t, 64<<10)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(devPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := readAll(c, 30*time.Second)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes, want %d, equal prefix: %v", len(got), len(msg), bytes.HasPrefix(msg, got))
	}
	eventually(t, 5*time.Second, "the forward's bytes counted", func() bool {
		for _, f := range d.Snapshot().Forwards {
			if f.Direction == "remote" && f.BytesUp == uint64(len(msg)) && f.BytesDown == uint64(len(msg)) {
				return true
			}
		}
		return false
	})
}

// TestHealthzAndMetrics reads /healthz while the ESP32 is up, scrapes
// /metrics after some traffic, lints it and checks that the counters the
// traffic should move did.
func TestHealthzAndMetrics(t *testing.T) {
	srv := tcpServer(t, echo)
	cfg := emulated()
	cfg.Forwards = []string{fwd(srv, false)}
	d := start(t, daemon.Options{Config: cfg})
	a := d.Addrs()
	base := "http://" + a.Metrics.String()

	resp, body := httpGet(t, base+"/healthz")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s %s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/healthz Content-Type %q", ct)
	}
	var h daemon.Health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if h.Status != "ok" || h.State != "up" || h.Device == "" || h.Firmware == "" {
		t.Fatalf("/healthz %+v", h)
	}

	// Traffic: one SOCKS5 CONNECT and one forward connection, each an echo.
	msg := []byte("count me")
	roundTrip := func(c net.Conn) {
		t.Helper()
		defer c.Close()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := readAll(c, 10*time.Second)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %q, %v", got, err)
		}
	}
	c, err := socksConnect(ctxFor(t, 10*time.Second), a.SOCKS5.String(), "127.0.0.1", srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(c)
	c, err = net.Dial("tcp", a.Forwards[cfg.Forwards[0]].String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(c)

	var fams map[string]*dto.MetricFamily
	eventually(t, 5*time.Second, "the traffic in /metrics", func() bool {
		resp, text := httpGet(t, base+"/metrics")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %s", resp.Status)
		}
		problems, err := promlint.New(bytes.NewReader(text)).Lint()
		if err != nil {
			t.Fatalf("lint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err = p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		n := float64(len(msg))
		return value(fams, "uartproxy_socks5_requests_total", "command", "connect", "result", "succeeded") == 1 &&
			value(fams, "uartproxy_socks5_bytes_total", "flow", "up") == n &&
			value(fams, "uartproxy_forward_bytes_total", "flow", "up") == n &&
			value(fams, "uartproxy_forward_bytes_total", "flow", "down") == n
	})
	if v := value(fams, "uartproxy_device_up"); v != 1 {
		t.Errorf("uartproxy_device_up %v", v)
	}
	if v := value(fams, "uartproxy_link_tx_bytes_total"); v < 2*float64(len(msg)) {
		t.Errorf("uartproxy_link_tx_bytes_total %v", v)
	}
	if v := value(fams, "uartproxy_forward_connections_total"); v != 1 {
		t.Errorf("uartproxy_forward_connections_total %v", v)
	}
	if v := value(fams, "uartproxy_clients_limit"); v != float64(cfg.Limits.MaxClients) {
		t.Errorf("uartproxy_clients_limit %v", v)
	}
}

// value is the sum of the samples of family name whose labels include
// the given name/value pairs; -1 if the family is missing.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var v float64
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v
}
