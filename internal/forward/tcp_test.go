package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// localTCP starts a local TCP forward to target with a real dialer as the
// device.
func localTCP(t *testing.T, target *net.TCPAddr, mod func(*Config)) *Forward {
	t.Helper()
	cfg := Config{
		Spec: mustSpec(t, fmt.Sprintf("127.0.0.1:0:127.0.0.1:%d", target.Port), false),
		Dial: (&net.Dialer{}).DialContext,
	}
	if mod != nil {
		mod(&cfg)
	}
	return start(t, cfg)
}

func dialForward(t *testing.T, f *Forward) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// TestLocalTCPBothWays sends a few MB each way at once and checks both
// with SHA-256; each side half-closes when done, so the copies must pass
// EOF on with CloseWrite.
func TestLocalTCPBothWays(t *testing.T) {
	const upLen, downLen = 4 << 20, 3 << 20
	upData := make([]byte, upLen)
	downData := make([]byte, downLen)
	rand.Read(upData)
	rand.Read(downData)
	gotUp := make(chan [32]byte, 1)
	srv := tcpServer(t, func(c *net.TCPConn) {
		go func() {
			c.Write(downData)
			c.CloseWrite()
		}()
		h := sha256.New()
		io.Copy(h, c)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		gotUp <- sum
	})
	f := localTCP(t, srv, nil)
	c := dialForward(t, f)
	go func() {
		c.Write(upData)
		c.CloseWrite()
	}()
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), sha256Of(downData)) {
		t.Fatal("data from the server differs")
	}
	select {
	case sum := <-gotUp:
		if !bytes.Equal(sum[:], sha256Of(upData)) {
			t.Fatal("data to the server differs")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not see EOF")
	}
	eventually(t, "connection done", func() bool { return f.Stats().Active == 0 })
	st := f.Stats()
	if st.BytesUp != upLen || st.BytesDown != downLen || st.Accepted != 1 || !st.Listening {
		t.Fatalf("stats %+v", st)
	}
	if st.Spec != f.cfg.Spec.String() || st.Network != "tcp" || st.Direction != "local" {
		t.Fatalf("stats names %+v", st)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestHalfCloseRealClients: ncat and socat send, shut their write side at
// the end of stdin, and must still receive the answer the server sends
// only after EOF.
func TestHalfCloseRealClients(t *testing.T) {
	srv := tcpServer(t, answerAfterEOF)
	f := localTCP(t, srv, nil)
	port := fmt.Sprint(portOf(f.Addr()))
	clients := map[string][]string{
		"ncat":  {"127.0.0.1", port},
		"socat": {"-t", "10", "-", "TCP:127.0.0.1:" + port},
	}
	for name, args := range clients {
		t.Run(name, func(t *testing.T) {
			bin := need(t, name)
			cmd := exec.CommandContext(ctxT(t, 10*time.Second), bin, args...)
			cmd.Stdin = strings.NewReader("hello through the forward\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if want := "got: hello through the forward\n"; string(out) != want {
				t.Fatalf("%s printed %q, want %q", name, out, want)
			}
		})
	}
}

// TestDialFailureClosesClient: a refused connection through the device
// closes the client and is counted; repeated failures give one warning.
func TestDialFailureClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	var logs syncBuffer
	f := localTCP(t, dead, func(c *Config) { c.Logger = zerolog.New(&logs).Level(zerolog.WarnLevel) })
	for range 3 {
		c := dialForward(t, f)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("read %d bytes from a failed forward", n)
		}
	}
	eventually(t, "failures counted", func() bool {
		st := f.Stats()
		return st.Failed[ReasonRefused] == 3 && st.Active == 0
	})
	st := f.Stats()
	if st.Active != 0 || st.Accepted != 3 || len(st.Failed) != len(reasons) {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), `"reason":"refused"`); n != 1 {
		t.Fatalf("%d warnings for 3 refusals:\n%s", n, logs.String())
	}
}

// TestAdmitRefuses: beyond the limit a client is closed at once and
// counted; release is called when an admitted client is done.
func TestAdmitRefuses(t *testing.T) {
	srv := tcpServer(t, answerAfterEOF)
	var mu sync.Mutex
	inUse, released := 0, 0
	admit := func() (func(), bool) {
		mu.Lock()
		defer mu.Unlock()
		if inUse >= 1 {
			return nil, false
		}
		inUse++
		return func() {
			mu.Lock()
			inUse--
			released++
			mu.Unlock()
		}, true
	}
	f := localTCP(t, srv, func(c *Config) { c.Admit = admit })
	first := dialForward(t, f)
	eventually(t, "first client active", func() bool { return f.Stats().Active == 1 })
	second := dialForward(t, f)
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("the second client was served")
	}
	first.Write([]byte("x"))
	first.CloseWrite()
	if b, err := io.ReadAll(first); err != nil || string(b) != "got: x" {
		t.Fatalf("first client: %q, %v", b, err)
	}
	eventually(t, "release", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return released == 1 && inUse == 0
	})
	if st := f.Stats(); st.Rejected != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestShutdownDrains: Shutdown stops accepting at once but lets an
// active transfer finish; bytes are counted while they flow.
func TestShutdownDrains(t *testing.T) {
	srv := tcpServer(t, answerAfterEOF)
	f := localTCP(t, srv, nil)
	addr := f.Addr().String()
	c := dialForward(t, f)
	c.Write([]byte("part one, "))
	eventually(t, "bytes counted live", func() bool { return f.Stats().BytesUp == 10 })

	done := make(chan error, 1)
	go func() { done <- f.Shutdown(ctxT(t, 20*time.Second)) }()
	eventually(t, "not listening", func() bool { return !f.Stats().Listening })
	if c2, err := net.Dial("tcp", addr); err == nil {
		c2.Close()
		t.Fatal("a new client got in during Shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a transfer active", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Write([]byte("part two"))
	c.CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got: part one, part two" {
		t.Fatalf("got %q, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := f.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
}

// TestShutdownDeadlineAndCloseCut: a transfer that does not finish is cut
// when Shutdown's context ends, and at once by Close.
func TestShutdownDeadlineAndCloseCut(t *testing.T) {
	srv := tcpServer(t, answerAfterEOF)
	for _, how := range []string{"shutdown", "close"} {
		t.Run(how, func(t *testing.T) {
			f := localTCP(t, srv, nil)
			c := dialForward(t, f)
			c.Write([]byte("never finished"))
			eventually(t, "data through", func() bool { return f.Stats().BytesUp > 0 })
			if how == "shutdown" {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if err := f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Shutdown: %v", err)
				}
			} else if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b, err := io.ReadAll(c); len(b) != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client read %q, %v after the cut; want a reset", b, err)
			}
			if st := f.Stats(); st.Active != 0 || st.Listening {
				t.Fatalf("stats %+v", st)
			}
			f.Close() // again
		})
	}
}

// TestResetPassesThrough: when the far side resets mid-transfer the
// client gets a reset too, not an end of stream that looks complete.
func TestResetPassesThrough(t *testing.T) {
	srv := tcpServer(t, func(c *net.TCPConn) {
		c.Write([]byte("partial answer"))
		io.ReadFull(c, make([]byte, 5))
		c.SetLinger(0)
		c.Close()
	})
	f := localTCP(t, srv, nil)
	c := dialForward(t, f)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, len("partial answer"))); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	if b, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read %q, %v; want a reset", b, err)
	}
	eventually(t, "connection done", func() bool { return f.Stats().Active == 0 })
}

// TestStartPortInUse: a local listen that cannot bind fails in Start.
func TestStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	lc := &net.ListenConfig{}
	for _, c := range []Config{
		{Spec: mustSpec(t, fmt.Sprintf("127.0.0.1:%d:h:1", portOf(ln.Addr())), false), Dial: (&net.Dialer{}).DialContext},
		{Spec: mustSpec(t, fmt.Sprintf("127.0.0.1:%d:h:1/udp", portOf(pc.LocalAddr())), false), ListenPacket: lc.ListenPacket},
	} {
		f, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		err = f.Start()
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "choose another port") {
			t.Fatalf("Start on a used port: %v", err)
		}
		if f.Stats().Listening {
			t.Fatal("listening after a failed Start")
		}
		f.Close()
	}
}

// TestNewValidates: New says what is missing.
func TestNewValidates(t *testing.T) {
	dial := (&net.Dialer{}).DialContext
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Spec: Spec{Port: 1, Host: "h", HostPort: 1}}, "needs Dial"},
		{Config{Spec: Spec{Port: 1, Host: "h", HostPort: 1, UDP: true}}, "needs ListenPacket"},
		{Config{Spec: Spec{Port: 1, Host: "h", HostPort: 1, Remote: true}}, "needs Listen"},
		{Config{Spec: Spec{Port: 1, Host: "h", HostPort: 1, Remote: true, UDP: true}}, "TCP only"},
		{Config{Spec: Spec{Port: 1, HostPort: 1}, Dial: dial}, "no destination host"},
		{Config{Spec: Spec{Port: 1, Host: "h"}, Dial: dial}, "port 0"},
		{Config{Spec: Spec{Bind: "x", Host: "h", HostPort: 1}, Dial: dial}, "not an IP"},
		{Config{Spec: Spec{Host: "h", HostPort: 1}, Dial: dial, ConnectTimeout: -1}, "negative"},
	}
	for _, c := range cases {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg.Spec, err, c.want)
		}
	}
	f, err := New(Config{Spec: Spec{Host: "h", HostPort: 1}, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.ConnectTimeout != DefaultConnectTimeout || f.cfg.UDPIdleTimeout != DefaultUDPIdleTimeout || f.cfg.MaxUDPClients != DefaultMaxUDPClients {
		t.Fatalf("defaults %+v", f.cfg)
	}
	if f.Addr() != nil {
		t.Fatal("Addr before Start")
	}
	if err := f.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
