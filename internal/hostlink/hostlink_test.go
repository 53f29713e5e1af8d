package hostlink_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/hostlink"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/serialport"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// baud keeps the tests quick: 300 KB/s each way.
const baud = 3000000

// rig is an emulated ESP32 behind a real pseudo-terminal, reached by path.
type rig struct {
	path string // the symlink to the pty slave
	pty  *uartemu.PTY
	dev  *emulator.Device
}

// newRig starts an emulated ESP32 on a pty whose line is l (Baud 0 gets
// baud) and stops it when the test ends.
func newRig(t *testing.T, l uartemu.Line) *rig {
	t.Helper()
	if l.Baud == 0 {
		l.Baud = baud
	}
	path := filepath.Join(t.TempDir(), "ttyESP32")
	p, err := uartemu.NewPTY(uartemu.Symmetric(l), path)
	if err != nil {
		t.Fatal(err)
	}
	dc := emulator.DefaultConfig()
	dc.Baud = l.Baud
	dev, err := emulator.New(p.Device(), dc)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	// emulator.New publishes the device's session without its lock after
	// the link has started, so the race detector flags the INFO handler's
	// read of it. Taking the lock here, before any host exists, orders the
	// two. (Reported; to be fixed in the emulator.)
	_ = dev.Session()
	t.Cleanup(func() {
		dev.Close()
		p.Close()
	})
	return &rig{path: path, pty: p, dev: dev}
}

// open opens the rig's path with hostlink, waits for the handshake, and
// closes the Host when the test ends.
func (r *rig) open(t *testing.T) *hostlink.Host {
	t.Helper()
	h, err := hostlink.Open(hostlink.Config{
		Port: serialport.Config{Path: r.path, Baud: baud, FlowControl: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Session().WaitUp(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("no handshake: %v (host link %+v)", err, h.Link().Stats())
	}
	return h
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// echo sends data through the device's echo service and checks that the
// same bytes come back.
func echo(t *testing.T, h *hostlink.Host, data []byte) {
	t.Helper()
	st, err := h.Session().OpenService(ctxT(t, 5*time.Second), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("echo: read %d bytes of %d: %v", len(got), len(data), err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("echo: write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echo: %d bytes came back for %d sent, and they differ", len(got), len(data))
	}
}

func TestEcho(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	echo(t, h, randomBytes(t, 256<<10))

	p, ok := h.Session().Peer()
	if !ok {
		t.Fatal("no link session after a transfer")
	}
	if p.Peer.Baud != baud || p.Local.Baud != baud {
		t.Errorf("HELLO baud: host announced %d, device %d; want %d", p.Local.Baud, p.Peer.Baud, baud)
	}
	if want := mux.DefaultConfig().MaxStreams; p.Local.MaxStreams != uint(want) {
		t.Errorf("host announced max streams %d, want the mux's %d", p.Local.MaxStreams, want)
	}
}

func TestInfo(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	info, err := h.Session().Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d := emulator.DefaultConfig()
	if info.Model != d.Model || info.Firmware != d.Firmware {
		t.Errorf("Info: model %q firmware %q, want %q %q", info.Model, info.Firmware, d.Model, d.Firmware)
	}
}

// tcpServer listens on 127.0.0.1; each connection is sent reply, then
// half-closed, while what the server reads goes to got. Close stops it and
// waits for its goroutines.
type tcpServer struct {
	ln  net.Listener
	got chan []byte
	wg  sync.WaitGroup
}

func newTCPServer(t *testing.T, reply []byte) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln, got: make(chan []byte, 4)}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				var wg sync.WaitGroup
				wg.Go(func() {
					c.Write(reply)
					c.(*net.TCPConn).CloseWrite()
				})
				b, _ := io.ReadAll(c)
				wg.Wait()
				s.got <- b
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func TestDialBothWays(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	up, down := randomBytes(t, 1<<20), randomBytes(t, 1<<20)
	srv := newTCPServer(t, down)

	c, err := h.Session().Dial(ctxT(t, 5*time.Second), "tcp", srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(up)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	rx, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %d bytes of %d: %v", len(rx), len(down), err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(rx, down) {
		t.Errorf("device→host: got %d bytes, want %d, and they differ", len(rx), len(down))
	}
	select {
	case tx := <-srv.got:
		if !bytes.Equal(tx, up) {
			t.Errorf("host→device: server got %d bytes, want %d, and they differ", len(tx), len(up))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the end of the upload")
	}
}

// TestReopen unplugs the host (closes it) and plugs it in again on the same
// path: a new handshake, and streams work.
func TestReopen(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	echo(t, h, randomBytes(t, 16<<10))
	first, _ := h.Session().Peer()

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(h.Err(), link.ErrClosed) {
		t.Errorf("Err after Close = %v, want link.ErrClosed", h.Err())
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	h2 := r.open(t)
	second, _ := h2.Session().Peer()
	if second.Local.Session == first.Local.Session {
		t.Errorf("the new host kept session id %#x", first.Local.Session)
	}
	echo(t, h2, randomBytes(t, 64<<10))
}

// TestDeviceReboot reboots the device in the middle of a download: the
// stream must fail with an error, soon, and new streams work afterwards.
func TestDeviceReboot(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	st, err := h.Session().OpenService(ctxT(t, 5*time.Second), "source")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(st, make([]byte, 64<<10)); err != nil {
		t.Fatalf("source before the reboot: %v", err)
	}

	rebooted := make(chan error, 1)
	start := time.Now()
	go func() { rebooted <- r.dev.Reboot() }()
	buf := make([]byte, 4096)
	for {
		_, err = st.Read(buf)
		if err != nil {
			break
		}
	}
	took := time.Since(start)
	if err := <-rebooted; err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	var le *mux.LinkError
	switch {
	case errors.Is(err, io.EOF):
		t.Fatalf("the stream ended with EOF after a reboot: a silent truncation (%v)", err)
	case errors.Is(err, mux.ErrTimeout):
		t.Fatalf("the stream hung after the reboot: %v", err)
	case !errors.As(err, &le):
		t.Errorf("the stream failed with %v (%T), want a *mux.LinkError", err, err)
	}
	if took > 2*time.Second {
		t.Errorf("the stream took %v to fail after the reboot, want under 2s", took)
	}
	t.Logf("stream failed %v after the reboot began: %v", took.Round(time.Millisecond), err)

	if err := h.Session().WaitUp(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("no handshake after the reboot: %v", err)
	}
	echo(t, h, randomBytes(t, 64<<10))
	if n := h.Link().Stats().Sessions; n < 2 {
		t.Errorf("host link saw %d sessions, want a second one after the reboot", n)
	}
}

// TestAdapterVanishes removes the pty under an open Host, as pulling out a
// USB adapter does: Done closes and Err says the device went away.
func TestAdapterVanishes(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	h := r.open(t)
	r.dev.Close()
	r.pty.Close()
	select {
	case <-h.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the pty went away")
	}
	if !errors.Is(h.Err(), serialport.ErrDisconnected) {
		t.Errorf("Err = %v, want serialport.ErrDisconnected", h.Err())
	}
	if _, err := h.Session().OpenService(ctxT(t, 200*time.Millisecond), "echo"); err == nil {
		t.Error("a stream opened on a dead link")
	}
}

// TestLossyLine runs a transfer over a line that flips bits: the link's
// CRC and retransmissions make it byte-exact anyway.
func TestLossyLine(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true, BER: 1e-5, Seed: 7})
	h := r.open(t)
	echo(t, h, randomBytes(t, 256<<10))
	dp := r.pty.Device()
	if up, down := dp.RxStats().Corrupted, dp.Stats().Corrupted; up+down == 0 {
		t.Errorf("the line corrupted no bytes (host→device %d, device→host %d): the test tested nothing", up, down)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := hostlink.Open(hostlink.Config{Port: serialport.Config{Path: filepath.Join(t.TempDir(), "nope"), Baud: baud}})
	if err == nil {
		t.Fatal("opened a missing device")
	}

	r := newRig(t, uartemu.Line{FlowControl: true})
	lc := link.Config{KeepAlive: 2 * time.Second, DeadTimeout: time.Second}
	_, err = hostlink.Open(hostlink.Config{Port: serialport.Config{Path: r.path, Baud: baud}, Link: lc})
	if err == nil {
		t.Fatal("a keepalive longer than the dead timeout was accepted")
	}
	// The port was closed again: it opens.
	r.open(t)
}

// TestMirror records a session through Config.Mirror: both directions of
// the line arrive in the capture, readable by sniff's reader.
func TestMirror(t *testing.T) {
	r := newRig(t, uartemu.Line{FlowControl: true})
	var buf bytes.Buffer
	w, err := capture.NewWriter(&buf, capture.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hostlink.Open(hostlink.Config{
		Port:   serialport.Config{Path: r.path, Baud: baud, FlowControl: true},
		Mirror: w,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Session().WaitUp(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Session().Echo(ctxT(t, 2*time.Second), []byte("mirror me")); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rd, err := capture.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got := map[capture.Direction][]byte{}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[rec.Dir] = append(got[rec.Dir], rec.Data...)
	}
	for _, d := range []capture.Direction{capture.HostToDevice, capture.DeviceToHost} {
		if !bytes.Contains(got[d], []byte("mirror me")) {
			t.Errorf("direction %v: %d bytes recorded, without the echoed payload", d, len(got[d]))
		}
	}
}
