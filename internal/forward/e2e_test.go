package forward

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/testbed"
)

// These tests run forwards over the whole stack: a host mux session, an
// emulated UART and an emulated ESP32 whose network is this host's.

// bedDevice adapts a testbed's host session to Config's functions, the
// way serve adapts its uplink.
type bedDevice struct {
	s       *mux.Session
	lnAddrs chan net.Addr // addresses the device listened on
}

func newBedDevice(t *testing.T) (*testbed.Bed, *bedDevice) {
	t.Helper()
	b, err := testbed.New(testbed.Clean(3000000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, &bedDevice{s: b.Host, lnAddrs: make(chan net.Addr, 10)}
}

func (d *bedDevice) dial(ctx context.Context, network, address string) (net.Conn, error) {
	return d.s.Dial(ctx, network, address)
}

func (d *bedDevice) listenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	pc, err := d.s.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return pc, nil
}

func (d *bedDevice) listen(ctx context.Context, network, address string) (net.Listener, error) {
	ln, err := d.s.Listen(ctx, network, address, 0)
	if err != nil {
		return nil, err
	}
	d.lnAddrs <- ln.Addr()
	return ln, nil
}

func (d *bedDevice) listenAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-d.lnAddrs:
		return a.String()
	case <-time.After(10 * time.Second):
		t.Fatal("the forward did not listen on the device")
		return ""
	}
}

// TestE2ELocalTCP: data both ways and the half-close go through mux
// streams; a refused connect on the device is classified from mux's
// error.
func TestE2ELocalTCP(t *testing.T) {
	b, dev := newBedDevice(t)
	const n = 128 << 10
	upData, downData := make([]byte, n), make([]byte, n)
	rand.Read(upData)
	rand.Read(downData)
	// The server sends its data while it reads ours, then the hash of
	// ours once it has seen EOF.
	srv := tcpServer(t, func(c *net.TCPConn) {
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(downData)
		}()
		h := sha256.New()
		io.Copy(h, c)
		<-wrote
		c.Write(h.Sum(nil))
	})
	f := localTCP(t, srv, func(c *Config) {
		c.Dial = dev.dial
		c.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	})
	c := dialForward(t, f)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		c.Write(upData)
		c.CloseWrite()
	}()
	// The forward's debug log and the link's figures explain a failure.
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%v (host link %+v)", err, b.HostLink.Stats())
	}
	if len(got) != n+32 || !bytes.Equal(got[:n], downData) || !bytes.Equal(got[n:], sha256Of(upData)) {
		t.Fatalf("got %d bytes, not the server's data and the hash of ours (host link %+v)", len(got), b.HostLink.Stats())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr)
	ln.Close()
	g := localTCP(t, dead, func(c *Config) { c.Dial = dev.dial })
	rc := dialForward(t, g)
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read through a refused forward")
	}
	eventually(t, "refusal counted", func() bool { return g.Stats().Failed[ReasonRefused] == 1 })
}

// TestE2EDig: dig through a UDP forward and a device socket.
func TestE2EDig(t *testing.T) {
	dig := need(t, "dig")
	_, dev := newBedDevice(t)
	f := localUDP(t, dnsServer(t), nil, func(c *Config) { c.ListenPacket = dev.listenPacket })
	out, err := exec.CommandContext(ctxT(t, 10*time.Second), dig, "@127.0.0.1", "-p", fmt.Sprint(portOf(f.Addr())),
		"+tries=1", "+time=5", "+short", "test.example", "A").Output()
	if err != nil {
		t.Fatalf("dig: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "192.0.2.7" {
		t.Fatalf("dig answered %q", got)
	}
}

// TestE2ERemoteReboot: a remote forward serves through the device's
// listener, and listens again by itself after the ESP32 reboots.
func TestE2ERemoteReboot(t *testing.T) {
	b, dev := newBedDevice(t)
	srv := tcpServer(t, answerAfterEOF)
	f := start(t, Config{
		Spec:   mustSpec(t, fmt.Sprintf("127.0.0.1:0:127.0.0.1:%d", srv.Port), true),
		Listen: dev.listen,
	})
	if got := roundTrip(t, dev.listenAddr(t), "before"); got != "got: before" {
		t.Fatalf("got %q", got)
	}
	if err := b.Device.Reboot(); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, dev.listenAddr(t), "after"); got != "got: after" {
		t.Fatalf("got %q", got)
	}
	eventually(t, "connections done", func() bool { return f.Stats().Active == 0 })
	if st := f.Stats(); st.Accepted != 2 || !st.Listening {
		t.Fatalf("stats %+v", st)
	}
}
