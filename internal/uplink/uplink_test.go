package uplink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const baud = 3000000

// echoServer accepts connections on loopback and echoes them.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, u *Uplink, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := u.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("hello through the ESP32")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	return nil
}

func waitState(t *testing.T, u *Uplink, want State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for u.Status().State != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %v after %v, want %v (%+v)", u.Status().State, within, want, u.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEmulated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Emulate = true
	cfg.Port.Baud = baud
	cfg.InfoInterval = 50 * time.Millisecond
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := roundTrip(t, u, echoServer(t)); err != nil {
		t.Fatal(err)
	}
	waitState(t, u, StateUp, 2*time.Second)
	addrs, err := u.LookupNetIP(context.Background(), "ip4", "localhost")
	if err != nil || len(addrs) == 0 || !addrs[0].IsLoopback() {
		t.Fatalf("LookupNetIP(localhost) = %v, %v", addrs, err)
	}
	_, err = u.LookupNetIP(context.Background(), "ip", "no-such-host.invalid")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("LookupNetIP(invalid) = %v, want a not-found *net.DNSError", err)
	}
	ls, ms := u.Stats()
	if ls.TxFrames == 0 || ms.Opened == 0 || ms.BytesOut == 0 {
		t.Fatalf("stats not counting: %+v %+v", ls, ms)
	}
	deadline := time.Now().Add(2 * time.Second)
	for u.Status().Info.Firmware == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := u.Status(); st.Info.FreeMem == nil || st.Peer.MaxStreams == 0 {
		t.Fatalf("no device info in status: %+v", st)
	}
	// A refused connection on the device's side is ECONNREFUSED here.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if _, err := u.DialContext(context.Background(), "tcp", closed); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want ECONNREFUSED", err)
	}
	// A reboot resets streams and the uplink comes back by itself.
	if err := u.RebootEmulated(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, u, echoServer(t)); err != nil {
		t.Fatalf("after reboot: %v", err)
	}
	deadline = time.Now().Add(2 * time.Second)
	for u.Status().Reboots == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if u.Status().Reboots == 0 {
		t.Fatalf("reboot not counted: %+v", u.Status())
	}
}

// TestPortComesAndGoes starts with no adapter, plugs one in, pulls it out
// and plugs it in again: opens fail fast and clearly while it is away, and
// the uplink resumes by itself each time.
func TestPortComesAndGoes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyESP32")
	cfg := DefaultConfig()
	cfg.Port = serialport.Config{Path: path, Baud: baud, FlowControl: true}
	cfg.MinBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 100 * time.Millisecond
	cfg.DialWait = 300 * time.Millisecond
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	echo := echoServer(t)

	start := time.Now()
	err = roundTrip(t, u, echo)
	if !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("dial with no adapter: %v, want ENETDOWN", err)
	}
	if !strings.Contains(err.Error(), path) || time.Since(start) > 3*time.Second {
		t.Fatalf("error %q after %v: want the port named, within DialWait", err, time.Since(start))
	}

	plug := func() (*uartemu.PTY, *emulator.Device) {
		p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{Baud: baud, FlowControl: true}), path)
		if err != nil {
			t.Fatal(err)
		}
		dc := emulator.DefaultConfig()
		dc.Baud = baud
		dev, err := emulator.New(p.Device(), dc)
		if err != nil {
			t.Fatal(err)
		}
		_ = dev.Session() // see hostlink's rig: orders the emulator's start for the race detector
		return p, dev
	}
	for round := 0; round < 2; round++ {
		p, dev := plug()
		waitState(t, u, StateUp, 5*time.Second)
		if err := roundTrip(t, u, echo); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Unplug.
		dev.Close()
		p.Close()
		waitState(t, u, StateAbsent, 5*time.Second)
		if err := roundTrip(t, u, echo); !errors.Is(err, syscall.ENETDOWN) {
			t.Fatalf("round %d: dial while unplugged: %v", round, err)
		}
	}
	if st := u.Status(); st.Opens != 2 || st.Losses != 2 {
		t.Fatalf("opens %d losses %d, want 2 and 2", st.Opens, st.Losses)
	}
	ls, ms := u.Stats()
	if ls.Sessions < 2 || ms.Opened < 2 {
		t.Fatalf("cumulative stats lost across reconnects: link %+v mux %+v", ls, ms)
	}
}

func TestCloseWhileAbsent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Port = serialport.Config{Path: filepath.Join(t.TempDir(), "none"), Baud: baud}
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	u.Close()
	if st := u.Status(); st.State != StateClosed {
		t.Fatalf("state %v after Close", st.State)
	}
	if _, err := u.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, syscall.ENETDOWN) {
		t.Fatalf("dial after Close: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a port or Emulate succeeded")
	}
}

// TestReplugNoticedAtOnce: with a long backoff, an adapter that appears is
// still picked up within a fraction of it, because a missing device node is
// watched rather than waited out.
func TestReplugNoticedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ttyESP32")
	cfg := DefaultConfig()
	cfg.Port = serialport.Config{Path: path, Baud: baud, FlowControl: true}
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Second, 20*time.Second
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	time.Sleep(100 * time.Millisecond) // the first attempt failed; a 10–20 s wait began
	p, err := uartemu.NewPTY(uartemu.Symmetric(uartemu.Line{Baud: baud, FlowControl: true}), path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dc := emulator.DefaultConfig()
	dc.Baud = baud
	dev, err := emulator.New(p.Device(), dc)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	_ = dev.Session()
	waitState(t, u, StateUp, 5*time.Second)
}
