package socks5_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/things-go/go-socks5/statute"
	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial is the "device": a real dialer on this host.
var dial = (&net.Dialer{}).DialContext

// startServer serves cfg on 127.0.0.1 until the test ends.
func startServer(t *testing.T, cfg socks5.Config) (*socks5.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := socks5.New(cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// goroutines tracks helper goroutines so that cleanups wait for them.
type goroutines struct{ sync.WaitGroup }

func (g *goroutines) Go(f func()) {
	g.Add(1)
	go func() {
		defer g.Done()
		f()
	}()
}

// tcpServer runs handle for each connection on 127.0.0.1 until the test
// ends, and returns its address.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var g goroutines
	var mu sync.Mutex
	var conns []net.Conn
	g.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			g.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		g.Wait()
	})
	return ln.Addr().String()
}

// echo copies back what it reads and half-closes at EOF.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}

// udpEcho runs a UDP echo server and returns its address and the
// datagrams it has received so far.
func udpEcho(t *testing.T) (*net.UDPAddr, func() []string) {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	var g goroutines
	g.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, string(buf[:n]))
			mu.Unlock()
			pc.WriteToUDP(append([]byte("echo:"), buf[:n]...), from)
		}
	})
	t.Cleanup(func() {
		pc.Close()
		g.Wait()
	})
	return pc.LocalAddr().(*net.UDPAddr), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// client is a hand-written SOCKS5 client, to see the bytes.
type client struct {
	t *testing.T
	net.Conn
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, Conn: c}
}

// greet offers "no authentication" and expects it.
func (c *client) greet() {
	c.t.Helper()
	c.send("\x05\x01\x00")
	c.expect("\x05\x00")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) expect(want string) {
	c.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		c.t.Fatalf("reading %q: %v (got %q)", want, err, got)
	}
	if string(got) != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// request sends a request for host:port (a name unless host is an IP).
func (c *client) request(cmd byte, host string, port int) {
	c.t.Helper()
	c.send(string(requestBytes(cmd, host, port)))
}

func requestBytes(cmd byte, host string, port int) []byte {
	b := []byte{5, cmd, 0}
	return appendAddr(b, host, port)
}

func appendAddr(b []byte, host string, port int) []byte {
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			b = append(append(b, 1), ip4...)
		} else {
			b = append(append(b, 4), ip...)
		}
	} else {
		b = append(append(b, 3, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(b, uint16(port))
}

// reply reads one reply.
func (c *client) reply() statute.Reply {
	c.t.Helper()
	rep, err := statute.ParseReply(c)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return rep
}

// expectEOF reads until the server closes the connection.
func (c *client) expectEOF() []byte {
	c.t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		c.t.Fatalf("waiting for the server to close: %v (read %q)", err, b)
	}
	return b
}

// connect greets, asks to CONNECT to addr and expects success.
func (c *client) connect(addr string) statute.Reply {
	c.t.Helper()
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	c.greet()
	c.request(1, host, port)
	rep := c.reply()
	if rep.Response != 0 {
		c.t.Fatalf("CONNECT %s: reply %d", addr, rep.Response)
	}
	return rep
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idle waits until the server has no client connection.
func idle(t *testing.T, srv *socks5.Server) {
	t.Helper()
	waitFor(t, "no active connection", func() bool { return srv.Stats().Active == 0 })
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects log lines from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// isReset reports a connection reset: a server closing with unread input
// resets rather than ending with EOF.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}
