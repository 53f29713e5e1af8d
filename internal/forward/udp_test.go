package forward

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// devSockets plays the device's UDP sockets with real ones and records
// them; the next fail opens fail with an error like mux's "not
// connected".
type devSockets struct {
	mu    sync.Mutex
	fail  int
	socks []*trackedPC
}

type trackedPC struct {
	net.PacketConn
	once   sync.Once
	closed chan struct{}
}

func (p *trackedPC) Close() error {
	p.once.Do(func() { close(p.closed) })
	return p.PacketConn.Close()
}

func (p *trackedPC) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (d *devSockets) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail > 0 {
		d.fail--
		return nil, &net.OpError{Op: "listen", Net: network, Err: errnoLike{syscall.ENETDOWN}}
	}
	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tp := &trackedPC{PacketConn: pc, closed: make(chan struct{})}
	d.socks = append(d.socks, tp)
	return tp, nil
}

// sock returns the i-th socket opened, waiting for it.
func (d *devSockets) sock(t *testing.T, i int) *trackedPC {
	t.Helper()
	var s *trackedPC
	eventually(t, fmt.Sprintf("device socket %d", i), func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(d.socks) > i {
			s = d.socks[i]
		}
		return s != nil
	})
	return s
}

func (d *devSockets) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.socks)
}

// udpServer answers every datagram with answer(datagram), from
// 127.0.0.1.
func udpServer(t *testing.T, answer func([]byte) []byte) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := answer(buf[:n]); a != nil {
				pc.WriteTo(a, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

func echoRe(p []byte) []byte { return append([]byte("re:"), p...) }

// localUDP starts a local UDP forward to target with d as the device.
func localUDP(t *testing.T, target *net.UDPAddr, d *devSockets, mod func(*Config)) *Forward {
	t.Helper()
	cfg := Config{
		Spec:         mustSpec(t, fmt.Sprintf("127.0.0.1:0:127.0.0.1:%d/udp", target.Port), false),
		ListenPacket: d.ListenPacket,
	}
	if mod != nil {
		mod(&cfg)
	}
	return start(t, cfg)
}

func udpClient(t *testing.T, f *Forward) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, f.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg and returns the answer.
func exchange(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", msg, err)
	}
	return string(buf[:n])
}

// TestUDPClientsOwnReplies: clients at once, each with its own device
// socket, each getting only its own answers.
func TestUDPClientsOwnReplies(t *testing.T) {
	const clients, rounds = 6, 5
	srv := udpServer(t, echoRe)
	var d devSockets
	f := localUDP(t, srv, &d, nil)
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for i := range clients {
		c := udpClient(t, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 100)
			for j := range rounds {
				msg := fmt.Sprintf("client %d datagram %d", i, j)
				c.Write([]byte(msg))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					errs <- err
					return
				}
				if got := string(buf[:n]); got != "re:"+msg {
					errs <- fmt.Errorf("client %d got %q", i, got)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := f.Stats()
	if st.Active != clients || st.Accepted != clients || d.count() != clients {
		t.Fatalf("%d device sockets, stats %+v", d.count(), st)
	}
	// Counted just after each write, so perhaps after the answer came.
	const msgLen uint64 = uint64(len("client 0 datagram 0"))
	eventually(t, "bytes counted", func() bool {
		st := f.Stats()
		return st.BytesUp == clients*rounds*msgLen && st.BytesDown == clients*rounds*(msgLen+3)
	})
	if st.Network != "udp" || !st.Listening {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDPLargeDatagram: the largest datagram goes through whole.
func TestUDPLargeDatagram(t *testing.T) {
	srv := udpServer(t, func(p []byte) []byte { return []byte(fmt.Sprint(len(p))) })
	var d devSockets
	f := localUDP(t, srv, &d, nil)
	c := udpClient(t, f)
	if got := exchange(t, c, strings.Repeat("x", maxDatagram)); got != fmt.Sprint(maxDatagram) {
		t.Fatalf("server saw %s bytes", got)
	}
}

// TestUDPIdleExpiry: a quiet client is forgotten and its device socket
// closed; its next datagram gets a new one.
func TestUDPIdleExpiry(t *testing.T) {
	srv := udpServer(t, echoRe)
	var d devSockets
	f := localUDP(t, srv, &d, func(c *Config) { c.UDPIdleTimeout = 500 * time.Millisecond })
	c := udpClient(t, f)
	if got := exchange(t, c, "one"); got != "re:one" {
		t.Fatal(got)
	}
	first := d.sock(t, 0)
	eventually(t, "idle client forgotten", func() bool { return first.isClosed() && f.Stats().Active == 0 })
	if got := exchange(t, c, "two"); got != "re:two" {
		t.Fatal(got)
	}
	if d.sock(t, 1).isClosed() || f.Stats().Active != 1 || f.Stats().Accepted != 2 {
		t.Fatalf("stats %+v", f.Stats())
	}
}

// TestUDPEvictsLeastRecent: beyond MaxUDPClients the client quiet the
// longest goes, not the oldest.
func TestUDPEvictsLeastRecent(t *testing.T) {
	srv := udpServer(t, echoRe)
	var d devSockets
	f := localUDP(t, srv, &d, func(c *Config) { c.MaxUDPClients = 2 })
	a, b, c := udpClient(t, f), udpClient(t, f), udpClient(t, f)
	exchange(t, a, "a1")
	exchange(t, b, "b1")
	exchange(t, a, "a2") // b is now the least recent
	if got := exchange(t, c, "c1"); got != "re:c1" {
		t.Fatal(got)
	}
	sa, sb, sc := d.sock(t, 0), d.sock(t, 1), d.sock(t, 2)
	eventually(t, "b evicted", sb.isClosed)
	if sa.isClosed() || sc.isClosed() || f.Stats().Active != 2 {
		t.Fatalf("a closed %v, c closed %v, stats %+v", sa.isClosed(), sc.isClosed(), f.Stats())
	}
	// b comes back and a, now the least recent, goes.
	if got := exchange(t, b, "b2"); got != "re:b2" {
		t.Fatal(got)
	}
	eventually(t, "a evicted", sa.isClosed)
	if sc.isClosed() || d.sock(t, 3).isClosed() || f.Stats().Active != 2 {
		t.Fatalf("stats %+v", f.Stats())
	}
}

// TestUDPOpenFailureRetries: a datagram whose device socket cannot be
// opened is dropped and counted; the next one tries again.
func TestUDPOpenFailureRetries(t *testing.T) {
	srv := udpServer(t, echoRe)
	d := devSockets{fail: 1}
	f := localUDP(t, srv, &d, nil)
	c := udpClient(t, f)
	c.Write([]byte("lost"))
	eventually(t, "failure counted", func() bool {
		st := f.Stats()
		return st.Failed[ReasonNoDevice] == 1 && st.Active == 0
	})
	if got := exchange(t, c, "again"); got != "re:again" {
		t.Fatal(got)
	}
}

// TestUDPAdmitRefuses: a new client address over the limit is dropped
// and counted; known clients keep working.
func TestUDPAdmitRefuses(t *testing.T) {
	srv := udpServer(t, echoRe)
	var d devSockets
	var mu sync.Mutex
	n := 0
	f := localUDP(t, srv, &d, func(c *Config) {
		c.Admit = func() (func(), bool) {
			mu.Lock()
			defer mu.Unlock()
			if n >= 1 {
				return nil, false
			}
			n++
			return func() {}, true
		}
	})
	a, b := udpClient(t, f), udpClient(t, f)
	exchange(t, a, "a1")
	b.Write([]byte("b1"))
	eventually(t, "b refused", func() bool { return f.Stats().Rejected == 1 })
	exchange(t, a, "a2")
	if st := f.Stats(); st.Accepted != 1 || st.Active != 1 || d.count() != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDPShutdown: during Shutdown known clients are still answered, new
// ones are not, and Shutdown returns once they are quiet.
func TestUDPShutdown(t *testing.T) {
	srv := udpServer(t, echoRe)
	var d devSockets
	f := localUDP(t, srv, &d, func(c *Config) { c.UDPIdleTimeout = 500 * time.Millisecond })
	a, b := udpClient(t, f), udpClient(t, f)
	exchange(t, a, "a1")
	done := make(chan error, 1)
	go func() { done <- f.Shutdown(ctxT(t, 20*time.Second)) }()
	eventually(t, "not listening", func() bool { return !f.Stats().Listening })
	b.Write([]byte("b1")) // read before a2: same socket, earlier
	if got := exchange(t, a, "a2"); got != "re:a2" {
		t.Fatal(got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Accepted != 1 || st.Active != 0 || !d.sock(t, 0).isClosed() {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDPTargetAddr: the device gets a *net.UDPAddr for an IP literal and
// a host:port address for a name.
func TestUDPTargetAddr(t *testing.T) {
	var d devSockets
	for _, c := range []struct{ spec, want string }{
		{"0:192.0.2.1:53/udp", "192.0.2.1:53"},
		{"0:[2001:db8::1]:53/udp", "[2001:db8::1]:53"},
		{"0:dns.example:53/udp", "dns.example:53"},
	} {
		f, err := New(Config{Spec: mustSpec(t, c.spec, false), ListenPacket: d.ListenPacket})
		if err != nil {
			t.Fatal(err)
		}
		_, isUDP := f.target.(*net.UDPAddr)
		if f.target.String() != c.want || isUDP == strings.Contains(c.want, "example") {
			t.Errorf("%s: target %T %v", c.spec, f.target, f.target)
		}
	}
}

// dnsServer answers A queries for test.example with 192.0.2.7.
func dnsServer(t *testing.T) *net.UDPAddr {
	return udpServer(t, func(p []byte) []byte {
		var parser dnsmessage.Parser
		h, err := parser.Start(p)
		if err != nil {
			return nil
		}
		q, err := parser.Question()
		if err != nil {
			return nil
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), "test.example.") {
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 7}})
		}
		out, err := b.Finish()
		if err != nil {
			return nil
		}
		return out
	})
}

// TestDigThroughUDP: a real DNS client through a UDP forward.
func TestDigThroughUDP(t *testing.T) {
	dig := need(t, "dig")
	var d devSockets
	f := localUDP(t, dnsServer(t), &d, nil)
	port := fmt.Sprint(portOf(f.Addr()))
	out, err := exec.CommandContext(ctxT(t, 10*time.Second), dig, "@127.0.0.1", "-p", port, "+tries=1", "+time=2", "+short", "test.example", "A").Output()
	if err != nil {
		t.Fatalf("dig: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "192.0.2.7" {
		t.Fatalf("dig answered %q", got)
	}
	eventually(t, "bytes counted", func() bool {
		st := f.Stats()
		return st.BytesUp > 0 && st.BytesDown > 0 && st.Accepted == 1
	})
}
