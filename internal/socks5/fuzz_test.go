package socks5_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// FuzzHandshake sends arbitrary bytes as a client, then half-closes. The
// server must not panic, must close the connection, and must count the
// connection exactly once: as a handshake error, an authentication
// failure or a request result. The device refuses everything, so nothing
// leaves this host. Clients come over a Unix socket: tens of thousands of
// loopback TCP connections would run out of ports in TIME_WAIT.
func FuzzHandshake(f *testing.F) {
	f.Add(false, []byte("\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x00\x50"))
	f.Add(false, []byte("\x05\x01\x00\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"))
	f.Add(false, []byte("\x05\x01\x00\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00"))
	f.Add(false, []byte("\x05\x01\x00\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x50"))
	f.Add(false, []byte("\x04\x01\x00\x50\x7f\x00\x00\x01\x00"))
	f.Add(false, []byte("\x05\xff\x00"))
	f.Add(true, []byte("\x05\x01\x02\x01\x05alice\x06s3cret\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"))
	f.Add(true, []byte("\x05\x01\x02\x01\xff"))
	refuse := func(context.Context, string, string) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	servers := map[bool]*socks5.Server{}
	addrs := map[bool]string{}
	for _, auth := range []bool{false, true} {
		cfg := socks5.Config{
			HandshakeTimeout: 2 * time.Second,
			Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
				return nil, refuse(ctx, n, a)
			},
			Listen: func(ctx context.Context, n, a string) (net.Listener, error) {
				return nil, refuse(ctx, n, a)
			},
			ListenPacket: func(ctx context.Context, n, a string) (net.PacketConn, error) {
				return nil, refuse(ctx, n, a)
			},
		}
		if auth {
			cfg.Authenticate = func(user, password string) bool { return user == "alice" && password == "s3cret" }
		}
		ln, err := net.Listen("unix", filepath.Join(f.TempDir(), strconv.FormatBool(auth)))
		if err != nil {
			f.Fatal(err)
		}
		srv := socks5.New(cfg)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		f.Cleanup(func() {
			srv.Close()
			<-served
		})
		servers[auth], addrs[auth] = srv, ln.Addr().String()
	}

	f.Fuzz(func(t *testing.T, auth bool, in []byte) {
		srv := servers[auth]
		before := outcomes(srv.Stats())
		c, err := net.Dial("unix", addrs[auth])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(in)
			c.(*net.UnixConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Fatalf("the server did not close the connection: %v", err)
		}
		c.Close()
		<-wrote
		deadline := time.Now().Add(10 * time.Second)
		for srv.Stats().Active != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the connection is still active")
			}
			time.Sleep(time.Millisecond)
		}
		if n := outcomes(srv.Stats()) - before; n != 1 {
			t.Fatalf("%d outcomes counted for one connection: %+v", n, srv.Stats())
		}
	})
}

// outcomes is how many connections have ended with a counted result.
func outcomes(st socks5.Stats) uint64 {
	n := st.AuthFailures
	for _, c := range st.HandshakeErrors {
		n += c
	}
	for _, byResult := range st.Requests {
		for _, c := range byResult {
			n += c
		}
	}
	return n
}
