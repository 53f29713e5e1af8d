package seedv3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoRoundTrip writes data through c and reads it back, concurrently.
func echoRoundTrip(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for p := data; len(p) > 0; {
			k := min(len(p), 5000)
			if _, err := c.Write(p[:k]); err != nil {
				errc <- err
				return
			}
			p = p[k:]
		}
		errc <- nil
	}()
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(40 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs (first difference at %d)", firstDiff(got, data))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	// SLIP's special bytes, so that escaping is exercised.
	for i := 0; i < n; i += 97 {
		b[i] = 0xC0
		if i+1 < n {
			b[i+1] = 0xDB
		}
	}
	return b
}

func TestNetEcho(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	addr := tcpServer(t, echo)
	c, err := r.n.DialContext(ctxT(t, 10*time.Second), "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); !ok || ra.Port != addr.Port {
		t.Errorf("RemoteAddr %v, want %v", c.RemoteAddr(), addr)
	}
	echoRoundTrip(t, c, randomBytes(200<<10))
	if err := c.(*Conn).CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
	s := r.n.Stats()
	if s.BytesUp != 200<<10 || s.BytesDown != 200<<10 || s.Dials != 1 {
		t.Errorf("Stats %+v", s)
	}
	cs := r.c.Stats()
	t.Logf("client: %d requests, %d resends, %d bad frames; net: %v, %d empty polls", cs.Requests, cs.Resends, len(cs.BadFrames), s.Ops, s.EmptyPolls)
}

func TestNetEOFAndClose(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	addr := tcpServer(t, func(c net.Conn) { c.Write([]byte("bye")) })
	ctx := ctxT(t, 10*time.Second)
	c, err := r.n.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want bye and EOF", b, err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	eventually(t, "socket closed on the device", func() bool { return r.dev.Stats().Open == 0 })
	if r.n.Stats().Open != 0 {
		t.Errorf("Net still counts %d open sockets", r.n.Stats().Open)
	}
}

func TestNetReadDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	addr := tcpServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c, err := r.n.DialContext(ctxT(t, 10*time.Second), "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("still works")); err != nil {
		t.Fatal(err)
	}
}

// A bulk download and an interactive echo at once: both byte-exact.
func TestNetTwoStreams(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	const bulkLen = 150 << 10
	bulkData := randomBytes(bulkLen)
	bulkAddr := tcpServer(t, func(c net.Conn) { c.Write(bulkData) })
	echoAddr := tcpServer(t, echo)
	ctx := ctxT(t, 30*time.Second)
	bulk, err := r.n.DialContext(ctx, "tcp", bulkAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	inter, err := r.n.DialContext(ctx, "tcp", echoAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer inter.Close()

	var wg sync.WaitGroup
	var bulkErr error
	var got []byte
	wg.Go(func() {
		bulk.SetReadDeadline(time.Now().Add(40 * time.Second))
		got = make([]byte, bulkLen)
		_, bulkErr = io.ReadFull(bulk, got)
	})
	var rtts []time.Duration
	for i := range 10 {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 64)
		start := time.Now()
		if _, err := inter.Write(msg); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, 64)
		inter.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(inter, back); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		rtts = append(rtts, time.Since(start))
		if !bytes.Equal(back, msg) {
			t.Fatalf("echo %d = %q", i, back)
		}
	}
	wg.Wait()
	if bulkErr != nil || !bytes.Equal(got, bulkData) {
		t.Fatalf("bulk: %v (first difference at %d)", bulkErr, firstDiff(got, bulkData))
	}
	t.Logf("interactive RTTs during the bulk download: %v", rtts)
}

func TestNetUDP(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	ctx := ctxT(t, 10*time.Second)
	pc, err := r.n.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// By name: the device resolves it.
	dst := &hostAddr{network: "udp", host: "localhost", port: srv.LocalAddr().(*net.UDPAddr).Port}
	if _, err := net.ResolveUDPAddr("udp4", "localhost:1"); err != nil {
		dst.host = "127.0.0.1"
	}
	for i, msg := range []string{"one", "two"} {
		if _, err := pc.WriteTo([]byte(msg), dst); err != nil {
			t.Fatalf("WriteTo %d: %v", i, err)
		}
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ReadFrom %d: %v", i, err)
		}
		if string(buf[:n]) != "re:"+msg {
			t.Errorf("got %q, want %q", buf[:n], "re:"+msg)
		}
		if ua, ok := from.(*net.UDPAddr); !ok || ua.Port != dst.port {
			t.Errorf("from %v, want port %d", from, dst.port)
		}
	}
}

func TestNetDNS(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	ctx := ctxT(t, 10*time.Second)
	addrs, err := r.n.LookupNetIP(ctx, "ip4", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("127.0.0.1")
	found := false
	for _, a := range addrs {
		if !a.Is4() {
			t.Errorf("ip4 lookup gave %v", a)
		}
		found = found || a == want
	}
	if !found {
		t.Errorf("localhost = %v, want 127.0.0.1 among them", addrs)
	}
	if a, err := r.n.LookupNetIP(ctx, "ip", "192.0.2.1"); err != nil || len(a) != 1 || a[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("literal: %v, %v", a, err)
	}
	if ok, ip, err := r.n.WiFiStatus(ctx); err != nil || !ok || ip != "127.0.0.1" {
		t.Errorf("WiFiStatus = %v, %q, %v", ok, ip, err)
	}
}

func TestNetListen(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	// The device listens on a port we pick (v3 cannot report port 0's).
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	ctx := ctxT(t, 20*time.Second)
	ln, err := r.n.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clientErr := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			clientErr <- err
			return
		}
		defer c.Close()
		c.Write([]byte("hello device"))
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		if err == nil && string(b) != "hello" {
			err = errors.New("got " + string(b))
		}
		clientErr <- err
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 12)
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello device" {
		t.Fatalf("accepted conn read %q, %v", b, err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := <-clientErr; err != nil {
		t.Fatalf("local client: %v", err)
	}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !ra.IP.IsLoopback() {
		t.Errorf("RemoteAddr %v", c.RemoteAddr())
	}
	if r.n.Stats().Accepted != 1 {
		t.Errorf("Accepted %d", r.n.Stats().Accepted)
	}
}

func TestNetTLS(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "hello over tls, sni="+req.TLS.ServerName)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	c, err := r.n.DialTLS(ctxT(t, 10*time.Second), addr, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "hello over tls, sni=example.test" {
		t.Fatalf("body %q, %v", body, err)
	}
}

func TestNetRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	_, err = r.n.DialContext(ctxT(t, 10*time.Second), "tcp", addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want ECONNREFUSED", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Errorf("%v is not a dial *net.OpError", err)
	}
	if s := r.n.Stats(); s.DialErrors != 1 || s.Open != 0 {
		t.Errorf("Stats %+v", s)
	}
	if _, err := r.n.DialContext(ctxT(t, time.Second), "udp", addr); err == nil {
		t.Error("DialContext udp: no error")
	}
}

// A reboot fails open connections with ECONNRESET; new dials work.
func TestNetReboot(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	srcAddr := tcpServer(t, source)
	echoAddr := tcpServer(t, echo)
	ctx := ctxT(t, 30*time.Second)
	c, err := r.n.DialContext(ctx, "tcp", srcAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	idle, err := r.n.DialContext(ctx, "tcp", echoAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 20<<10)); err != nil {
		t.Fatal(err)
	}
	if err := r.dev.Reboot(); err != nil {
		t.Fatal(err)
	}
	// Drain: the read fails once the host notices.
	buf := make([]byte, 32<<10)
	for {
		_, err = c.Read(buf)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reboot: %v, want ECONNRESET", err)
	}
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("idle conn after reboot: %v, want ECONNRESET", err)
	}
	if _, err := idle.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("write after reboot: %v", err)
	}
	eventually(t, "reboot counted", func() bool { return r.n.Stats().Reboots == 1 })
	c2, err := r.n.DialContext(ctx, "tcp", echoAddr.String())
	if err != nil {
		t.Fatalf("dial after reboot: %v", err)
	}
	defer c2.Close()
	echoRoundTrip(t, c2, []byte("after the reboot"))
}

func TestNetClose(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	addr := tcpServer(t, echo)
	ctx := ctxT(t, 10*time.Second)
	c, err := r.n.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := r.n.ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		readErr <- err
	}()
	r.n.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked Read after Net.Close: %v", err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Net.Close: %v", err)
	}
	if _, err := r.n.DialContext(ctx, "tcp", addr.String()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial after Close: %v", err)
	}
	eventually(t, "sock_reset reached the device", func() bool { return r.dev.Stats().Open == 0 })
}

// Dial contexts that end early leave no socket behind.
func TestNetDialCanceled(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	addr := tcpServer(t, echo)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.n.DialContext(ctx, "tcp", addr.String()); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a canceled context: %v", err)
	}
	c, err := r.n.DialContext(ctxT(t, 10*time.Second), "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, "no socket left", func() bool { return r.dev.Stats().Open == 0 })
}

// A device that stops answering fails the sockets with ENETDOWN; when it
// answers again, what it still holds is reset and dials work.
func TestNetDeviceSilent(t *testing.T) {
	t.Parallel()
	r := newRigConfig(t, testBaud, Config{Deadline: 600 * time.Millisecond}, NetConfig{})
	addr := tcpServer(t, echo)
	ctx := ctxT(t, 20*time.Second)
	c, err := r.n.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r.dp.SetSilent(true)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 10))
	if !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("read with the device silent: %v, want ENETDOWN", err)
	}
	var de *DownError
	if !errors.As(err, &de) {
		t.Errorf("%v is not a *DownError", err)
	}
	if r.dev.Stats().Open != 1 {
		t.Errorf("the device holds %d sockets, want the 1 it never closed", r.dev.Stats().Open)
	}
	r.dp.SetSilent(false)
	c2, err := r.n.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		t.Fatalf("dial after the outage: %v", err)
	}
	defer c2.Close()
	echoRoundTrip(t, c2, []byte("back"))
	if n := r.dev.Stats().Open; n != 1 {
		t.Errorf("the device holds %d sockets after the reset, want 1", n)
	}
	if r.n.Stats().DeviceDowns == 0 {
		t.Error("DeviceDowns not counted")
	}
}

// With no socket open, the ping's uptime reveals a reboot.
func TestNetRebootSeenByPing(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{PingEvery: 100 * time.Millisecond})
	// A reboot shows only once the device has been up longer than it
	// takes to boot and answer again.
	time.Sleep(1500 * time.Millisecond)
	if r.n.Stats().Ops[OpPing] < 2 || r.n.Stats().Reboots != 0 {
		t.Fatal("a reboot seen before any")
	}
	if err := r.dev.Reboot(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reboot noticed", func() bool { return r.n.Stats().Reboots == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := r.n.Stats().Reboots; n != 1 {
		t.Errorf("Reboots = %d, want 1", n)
	}
}

// A name the device cannot resolve: *net.DNSError with IsNotFound, from a
// lookup and from a dial. (Offline, the emulator's resolver fails too.)
func TestNetDNSNotFound(t *testing.T) {
	t.Parallel()
	r := newRig(t, testBaud, NetConfig{})
	ctx := ctxT(t, 20*time.Second)
	const name = "no-such-host.invalid"
	_, err := r.n.LookupNetIP(ctx, "ip", name)
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound || de.Name != name {
		t.Errorf("lookup: %v, want a *net.DNSError IsNotFound", err)
	}
	_, err = r.n.DialContext(ctx, "tcp", name+":80")
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("dial: %v, want a *net.DNSError IsNotFound", err)
	}
	if n := r.dev.Stats().Open; n != 0 {
		t.Errorf("%d sockets left on the device", n)
	}
}

// The proxies take these methods as plain func values.
func TestNetSignatures(t *testing.T) {
	var n *Net
	var _ func(context.Context, string, string) (net.Conn, error) = n.DialContext
	var _ func(context.Context, string, string) (net.Listener, error) = n.Listen
	var _ func(context.Context, string, string) (net.PacketConn, error) = n.ListenPacket
	var _ func(context.Context, string, string) ([]netip.Addr, error) = n.LookupNetIP
	var _ interface{ CloseWrite() error } = (*Conn)(nil)
}

// With small frames, writes are split and reads sized to fit them.
func TestNetSmallFrames(t *testing.T) {
	t.Parallel()
	r := newRigConfig(t, testBaud, Config{MaxFrame: 600}, NetConfig{})
	addr := tcpServer(t, echo)
	c, err := r.n.DialContext(ctxT(t, 20*time.Second), "tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoRoundTrip(t, c, randomBytes(20<<10))
	s := r.n.Stats()
	if s.Ops[OpSockSend] < (20<<10)/(600-sendOverhead) {
		t.Errorf("%d sock_sends for 20 KiB in frames of 600 bytes", s.Ops[OpSockSend])
	}
	if bad := r.c.Stats().BadFrames; len(bad) != 0 {
		t.Errorf("bad frames %v", bad)
	}
}

// TestCloseWriteLinger: v3 cannot half-close, so after CloseWrite a Conn
// still delivers what the peer sends and then reports io.EOF once the peer
// has been silent for HalfCloseLinger, so a relay ends even when the peer
// keeps the connection open (an HTTP server waiting for the next request).
func TestCloseWriteLinger(t *testing.T) {
	if testing.Short() {
		t.Skip("waits HalfCloseLinger")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	served := make(chan struct{})
	defer func() { close(done); <-served }()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		time.Sleep(time.Second) // answers after the client's CloseWrite
		c.Write([]byte("world"))
		<-done // then keeps the connection open
	}()
	r := newRig(t, testBaud, NetConfig{})
	c, err := r.n.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.(*Conn).CloseWrite()
	start := time.Now()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "world" {
		t.Fatalf("ReadAll = %q, %v; want the answer, then EOF", got, err)
	}
	if took := time.Since(start); took > 2*HalfCloseLinger {
		t.Fatalf("EOF after %v, want about %v after the last byte", took, HalfCloseLinger)
	}
}
