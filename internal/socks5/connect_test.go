package socks5_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/proxy"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// TestConnectXNetProxy runs golang.org/x/net/proxy's SOCKS5 client
// against the server, without and with RFC 1929 authentication.
func TestConnectXNetProxy(t *testing.T) {
	echoAddr := tcpServer(t, echo)
	auth := func(user, password string) bool { return user == "alice" && password == "s3cret" }
	cases := []struct {
		name    string
		check   func(user, password string) bool
		auth    *proxy.Auth
		wantErr bool
	}{
		{"no auth", nil, nil, false},
		{"auth", auth, &proxy.Auth{User: "alice", Password: "s3cret"}, false},
		{"wrong password", auth, &proxy.Auth{User: "alice", Password: "guess"}, true},
		{"no credentials offered", auth, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			srv, addr := startServer(t, socks5.Config{Dial: dial, Authenticate: tc.check,
				Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
			defer func() {
				if tc.auth != nil && strings.Contains(logs.String(), tc.auth.Password) {
					t.Errorf("the password is in the log:\n%s", logs.String())
				}
			}()
			d, err := proxy.SOCKS5("tcp", addr, tc.auth, proxy.Direct)
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.Dial("tcp", echoAddr)
			if tc.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("dial succeeded")
				}
				idle(t, srv)
				st := srv.Stats()
				if tc.auth != nil && st.AuthFailures != 1 {
					t.Fatalf("AuthFailures = %d, want 1", st.AuthFailures)
				}
				if tc.auth == nil && st.HandshakeErrors[socks5.ReasonNoAcceptableMethod] != 1 {
					t.Fatalf("HandshakeErrors = %v", st.HandshakeErrors)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := []byte("hello through the device")
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %q, %v", got, err)
			}
			c.Close()
			idle(t, srv)
			st := srv.Stats()
			if st.Requests[socks5.CmdConnect][socks5.ResultSucceeded] != 1 || st.AuthFailures != 0 {
				t.Fatalf("stats: %+v", st)
			}
			if st.BytesUp != uint64(len(msg)) || st.BytesDown != uint64(len(msg)) {
				t.Fatalf("bytes up %d down %d, want %d each", st.BytesUp, st.BytesDown, len(msg))
			}
		})
	}
}

// TestConnectCurl fetches a few MB with curl --socks5-hostname: the name
// "localhost" must reach Dial as it is, and the body must arrive intact.
func TestConnectCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH")
	}
	body := make([]byte, 3<<20+12345)
	rand.Read(body)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	defer web.Close()
	_, webPort, _ := net.SplitHostPort(web.Listener.Addr().String())

	var mu sync.Mutex
	var dialed []string
	srv, addr := startServer(t, socks5.Config{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, address)
			mu.Unlock()
			return dial(ctx, network, address)
		},
	})
	ctx := ctxT(t, 60*time.Second)
	out, err := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "50",
		"--socks5-hostname", addr, "http://localhost:"+webPort+"/file").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if sha256.Sum256(out) != sha256.Sum256(body) {
		t.Fatalf("body: %d bytes, SHA-256 differs from the %d sent", len(out), len(body))
	}
	mu.Lock()
	if len(dialed) != 1 || dialed[0] != "localhost:"+webPort {
		t.Fatalf("Dial got %q, want [localhost:%s]", dialed, webPort)
	}
	mu.Unlock()
	web.CloseClientConnections()
	idle(t, srv)
	if st := srv.Stats(); st.BytesDown < uint64(len(body)) {
		t.Fatalf("BytesDown %d < %d", st.BytesDown, len(body))
	}
}

// TestNamesReachDialUnresolved checks that a name goes to Allow and Dial as
// it is (the device resolves it), and that the address Allow returns is
// the one dialed.
func TestNamesReachDialUnresolved(t *testing.T) {
	echoAddr := tcpServer(t, echo)
	type call struct {
		cmd, host string
		port      uint16
	}
	var mu sync.Mutex
	var allowed []call
	var dialed []string
	_, addr := startServer(t, socks5.Config{
		Allow: func(ctx context.Context, cmd, host string, port uint16) (string, error) {
			mu.Lock()
			allowed = append(allowed, call{cmd, host, port})
			mu.Unlock()
			if host == "rewrite.example" {
				return echoAddr, nil
			}
			return "", nil
		},
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, network+" "+address)
			mu.Unlock()
			if address == "only-the-device-knows.invalid:7" {
				return dial(ctx, network, echoAddr)
			}
			return dial(ctx, network, address)
		},
	})
	for _, host := range []string{"only-the-device-knows.invalid", "rewrite.example"} {
		c := dialClient(t, addr)
		c.greet()
		c.request(1, host, 7)
		if rep := c.reply(); rep.Response != 0 {
			t.Fatalf("%s: reply %d", host, rep.Response)
		}
		c.send("ping")
		c.expect("ping")
		c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	wantAllowed := []call{{"connect", "only-the-device-knows.invalid", 7}, {"connect", "rewrite.example", 7}}
	if len(allowed) != 2 || allowed[0] != wantAllowed[0] || allowed[1] != wantAllowed[1] {
		t.Fatalf("Allow calls %+v, want %+v", allowed, wantAllowed)
	}
	if len(dialed) != 2 || dialed[0] != "tcp only-the-device-knows.invalid:7" || dialed[1] != "tcp "+echoAddr {
		t.Fatalf("Dial calls %q", dialed)
	}
}

// TestConnectReplyCodes checks the reply for each kind of failure, with a
// real dialer where one can produce it.
func TestConnectReplyCodes(t *testing.T) {
	// A port with nothing listening: a real dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	fails := func(err error) func(context.Context, string, string) (net.Conn, error) {
		return func(context.Context, string, string) (net.Conn, error) { return nil, err }
	}
	blocks := func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	cases := []struct {
		name  string
		cfg   socks5.Config
		host  string
		port  int
		reply byte
		label string
	}{
		{"refused by a closed port", socks5.Config{Dial: dial}, "127.0.0.1", closedPort, 5, socks5.ResultConnectionRefused},
		{"denied by Allow", socks5.Config{Dial: dial, Allow: func(context.Context, string, string, uint16) (string, error) {
			return "", socks5.ErrDenied
		}}, "example.com", 80, 2, socks5.ResultNotAllowed},
		{"denied on the device (EACCES)", socks5.Config{Dial: fails(opErr(syscall.EACCES))}, "example.com", 80, 2, socks5.ResultNotAllowed},
		{"host unreachable", socks5.Config{Dial: fails(opErr(syscall.EHOSTUNREACH))}, "10.1.2.3", 80, 4, socks5.ResultHostUnreachable},
		{"name not found", socks5.Config{Dial: fails(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true})}, "x.invalid", 80, 4, socks5.ResultHostUnreachable},
		{"Allow cannot resolve", socks5.Config{Dial: dial, Allow: func(context.Context, string, string, uint16) (string, error) {
			return "", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}
		}}, "x.invalid", 80, 4, socks5.ResultHostUnreachable},
		{"network unreachable", socks5.Config{Dial: fails(opErr(syscall.ENETUNREACH))}, "10.1.2.3", 80, 3, socks5.ResultNetworkUnreachable},
		{"device not connected (ENETDOWN)", socks5.Config{Dial: fails(syscall.ENETDOWN)}, "example.com", 80, 3, socks5.ResultNetworkUnreachable},
		{"timeout (ConnectTimeout)", socks5.Config{Dial: blocks, ConnectTimeout: 100 * time.Millisecond}, "example.com", 80, 6, socks5.ResultTTLExpired},
		{"timeout on the device (ETIMEDOUT)", socks5.Config{Dial: fails(opErr(syscall.ETIMEDOUT))}, "example.com", 80, 6, socks5.ResultTTLExpired},
		{"anything else", socks5.Config{Dial: fails(errors.New("device out of streams"))}, "example.com", 80, 1, socks5.ResultGeneralFailure},
		{"no Dial", socks5.Config{}, "example.com", 80, 7, socks5.ResultCommandNotSupported},
		{"Dial returns neither conn nor error", socks5.Config{Dial: fails(nil)}, "example.com", 80, 1, socks5.ResultGeneralFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, addr := startServer(t, tc.cfg)
			c := dialClient(t, addr)
			c.greet()
			c.request(1, tc.host, tc.port)
			if rep := c.reply(); rep.Response != tc.reply {
				t.Fatalf("reply %d, want %d", rep.Response, tc.reply)
			}
			c.expectEOF()
			idle(t, srv)
			if got := srv.Stats().Requests[socks5.CmdConnect][tc.label]; got != 1 {
				t.Fatalf("Requests = %v", srv.Stats().Requests)
			}
		})
	}
}

// TestHalfClose: the client half-closes, the destination sees EOF and
// still answers, then the relay ends.
func TestHalfClose(t *testing.T) {
	// Reads everything, then answers with how much it read.
	counter := tcpServer(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		io.WriteString(c, "read "+strconv.FormatInt(n, 10)+" bytes")
	})
	srv, addr := startServer(t, socks5.Config{Dial: dial})
	d, err := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", counter)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, 100000)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "read 100000 bytes" {
		t.Fatalf("answer after half-close: %q, %v", got, err)
	}
	c.Close()
	idle(t, srv)
}
