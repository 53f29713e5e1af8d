package socks5_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/socks5"
)

// TestHostileClients sends what broken and hostile clients send. Each case
// must end with the server closing the connection within the handshake
// timeout, the expected bytes back, the failure counted under its reason,
// and no goroutine left (goleak in TestMain).
func TestHostileClients(t *testing.T) {
	const handshakeTimeout = time.Second
	const greet = "\x05\x01\x00"
	const okGreet = "\x05\x00"
	connectReq := string(requestBytes(1, "127.0.0.1", 80))
	cases := []struct {
		name     string
		auth     bool
		send     string
		slow     time.Duration // between bytes
		hangUp   bool          // half-close after sending
		want     string        // all the server sends
		reason   string        // counted in HandshakeErrors
		request  [2]string     // or counted in Requests
		authFail bool
	}{
		{name: "connect and hang up", hangUp: true, reason: socks5.ReasonTruncated},
		{name: "connect and say nothing", reason: socks5.ReasonTimeout},
		{name: "truncated greeting", send: "\x05", hangUp: true, reason: socks5.ReasonTruncated},
		{name: "SOCKS4 CONNECT", send: "\x04\x01\x00\x50\x7f\x00\x00\x01user\x00", reason: socks5.ReasonBadVersion},
		{name: "SOCKS4a, one byte", send: "\x04", reason: socks5.ReasonBadVersion},
		{name: "HTTP request", send: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", reason: socks5.ReasonBadVersion},
		{name: "TLS ClientHello", send: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", reason: socks5.ReasonBadVersion},
		{name: "255 methods announced, 3 sent", send: "\x05\xff\x00\x01\x02", reason: socks5.ReasonTimeout},
		{name: "255 methods announced, 3 sent, hang up", send: "\x05\xff\x00\x01\x02", hangUp: true, reason: socks5.ReasonTruncated},
		{name: "zero methods", send: "\x05\x00", want: "\x05\xff", reason: socks5.ReasonNoAcceptableMethod},
		{name: "only GSSAPI", send: "\x05\x01\x01", want: "\x05\xff", reason: socks5.ReasonNoAcceptableMethod},
		{name: "auth required, none offered", auth: true, send: greet, want: "\x05\xff", reason: socks5.ReasonNoAcceptableMethod},
		{name: "zero-length username and password", auth: true, send: "\x05\x01\x02\x01\x00\x00", want: "\x05\x02\x01\x01", authFail: true},
		{name: "username of 255 announced, 10 sent, hang up", auth: true, send: "\x05\x01\x02\x01\xff0123456789", hangUp: true, want: "\x05\x02", reason: socks5.ReasonTruncated},
		{name: "username of 255 announced, 10 sent", auth: true, send: "\x05\x01\x02\x01\xff0123456789", want: "\x05\x02", reason: socks5.ReasonTimeout},
		{name: "password of 255 announced, none sent", auth: true, send: "\x05\x01\x02\x01\x01u\xff", want: "\x05\x02", reason: socks5.ReasonTimeout},
		{name: "bad auth version", auth: true, send: "\x05\x01\x02\x05\x01u\x01p", want: "\x05\x02", reason: socks5.ReasonBadAuthVersion},
		{name: "bad address type", send: greet + "\x05\x01\x00\x09\x7f\x00\x00\x01\x00\x50",
			want: okGreet + "\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00", request: [2]string{socks5.CmdConnect, socks5.ResultAddressTypeNotSupported}},
		{name: "bad command", send: greet + "\x05\x09\x00\x01\x7f\x00\x00\x01\x00\x50",
			want: okGreet + "\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00", request: [2]string{socks5.CmdUnknown, socks5.ResultCommandNotSupported}},
		{name: "bad command, garbage after", send: greet + "\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50" + strings.Repeat("garbage", 1000),
			want: okGreet + "\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00", request: [2]string{socks5.CmdUnknown, socks5.ResultCommandNotSupported}},
		{name: "bad address type and bad command", send: greet + "\x05\x7f\x00\x00",
			want: okGreet + "\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00", request: [2]string{socks5.CmdUnknown, socks5.ResultAddressTypeNotSupported}},
		{name: "request in SOCKS4", send: greet + "\x04\x01\x00\x50\x7f\x00\x00\x01\x00", want: okGreet, reason: socks5.ReasonBadVersion},
		{name: "truncated request", send: greet + "\x05\x01\x00\x01\x7f\x00", hangUp: true, want: okGreet, reason: socks5.ReasonTruncated},
		{name: "name of 255 announced, 5 sent", send: greet + "\x05\x01\x00\x03\xffshort", want: okGreet, reason: socks5.ReasonTimeout},
		{name: "name of 255 announced, 5 sent, hang up", send: greet + "\x05\x01\x00\x03\xffshort", hangUp: true, want: okGreet, reason: socks5.ReasonTruncated},
		{name: "empty name", send: greet + "\x05\x01\x00\x03\x00\x00\x50",
			want: okGreet + "\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00", request: [2]string{socks5.CmdConnect, socks5.ResultGeneralFailure}},
		{name: "slowloris", send: greet + connectReq, slow: 300 * time.Millisecond, reason: socks5.ReasonTimeout},
	}
	// The cases run at once (several wait for the timeout), each with its
	// own server, and are checked one by one afterwards.
	type result struct {
		got     []byte
		readErr error
		elapsed time.Duration
		stats   socks5.Stats
		err     error
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := socks5.Config{HandshakeTimeout: handshakeTimeout, Dial: dial}
			if tc.auth {
				cfg.Authenticate = func(user, password string) bool { return false }
			}
			r := &results[i]
			r.got, r.readErr, r.elapsed, r.stats, r.err = runHostile(cfg, tc.send, tc.slow, tc.hangUp, handshakeTimeout+10*time.Second)
		}()
	}
	wg.Wait()

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := results[i]
			switch {
			case r.err != nil:
				t.Fatal(r.err)
			case r.readErr != nil && !isReset(r.readErr):
				t.Fatalf("the connection did not end: %v after %v (read %q)", r.readErr, r.elapsed, r.got)
			case (tc.slow == 0 || tc.want != "") && string(r.got) != tc.want:
				t.Fatalf("server sent %q, want %q", r.got, tc.want)
			}
			st := r.stats
			switch {
			case tc.reason != "":
				if len(st.HandshakeErrors) != 1 || st.HandshakeErrors[tc.reason] != 1 {
					t.Fatalf("HandshakeErrors = %v, want %s: 1", st.HandshakeErrors, tc.reason)
				}
			case tc.request[0] != "":
				if st.Requests[tc.request[0]][tc.request[1]] != 1 || len(st.HandshakeErrors) != 0 {
					t.Fatalf("Requests = %v, HandshakeErrors = %v, want %s/%s", st.Requests, st.HandshakeErrors, tc.request[0], tc.request[1])
				}
			case tc.authFail:
				if st.AuthFailures != 1 || len(st.HandshakeErrors) != 0 {
					t.Fatalf("AuthFailures = %d, HandshakeErrors = %v", st.AuthFailures, st.HandshakeErrors)
				}
			}
		})
	}
}

// runHostile serves cfg, sends send (a byte at a time every slow, if
// set), half-closes if hangUp, and reads until the server closes. It
// returns what was read, how the read ended and the server's counters
// once the connection is gone.
func runHostile(cfg socks5.Config, send string, slow time.Duration, hangUp bool, limit time.Duration) (got []byte, readErr error, elapsed time.Duration, st socks5.Stats, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, 0, st, err
	}
	srv := socks5.New(cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, 0, st, err
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(limit))

	// Writes go on in their own goroutine, so that a slow writer is cut
	// while this one reads.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if slow == 0 {
			c.Write([]byte(send))
		} else {
			for i := 0; i < len(send); i++ {
				if _, err := c.Write([]byte{send[i]}); err != nil {
					return
				}
				time.Sleep(slow)
			}
		}
		if hangUp {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	got, readErr = io.ReadAll(c)
	elapsed = time.Since(start)
	c.Close()
	<-wrote
	for srv.Stats().Active != 0 {
		if time.Since(start) > limit {
			return got, readErr, elapsed, st, errors.New("the server still has the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got, readErr, elapsed, srv.Stats(), nil
}

// TestGarbageAfterConnect: bytes sent with the request are the start of the
// stream and reach the destination.
func TestGarbageAfterConnect(t *testing.T) {
	echoAddr := tcpServer(t, echo)
	srv, addr := startServer(t, socks5.Config{Dial: dial})
	c := dialClient(t, addr)
	host, port := splitHostPort(t, echoAddr)
	garbage := strings.Repeat("\x05\x01\x00\xff", 3000)
	c.send("\x05\x01\x00" + string(requestBytes(1, host, port)) + garbage)
	c.expect("\x05\x00")
	if rep := c.reply(); rep.Response != 0 {
		t.Fatalf("reply %d", rep.Response)
	}
	c.expect(garbage)
	c.Close()
	idle(t, srv)
}
