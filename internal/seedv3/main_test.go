package seedv3

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/slip"
	"github.com/uartproxy/uartproxy/internal/uartemu"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testBaud is the line rate of the Net tests (RTS/CTS on).
const testBaud = 921600

// rig is a Client and a Net on the host end of an emulated line and a
// Device on the other.
type rig struct {
	hp, dp *uartemu.Port
	dev    *Device
	c      *Client
	n      *Net
}

// newRig starts a rig at baud with RTS/CTS; the test's cleanup stops it.
func newRig(t testing.TB, baud int, ncfg NetConfig) *rig {
	return newRigConfig(t, baud, Config{}, ncfg)
}

func newRigConfig(t testing.TB, baud int, ccfg Config, ncfg NetConfig) *rig {
	t.Helper()
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{Baud: baud, FlowControl: true}))
	dev, err := NewDevice(dp, DeviceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(hp, ccfg)
	r := &rig{hp: hp, dp: dp, dev: dev, c: c, n: NewNet(c, ncfg)}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	r.n.Close()
	r.c.Close()
	r.dev.Close()
	r.hp.Close()
	r.dp.Close()
}

// ctxT is a context that ends with the test or after d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpServer runs handle for every connection to a listener on
// 127.0.0.1; the test's cleanup closes it and waits for the handlers.
func tcpServer(t testing.TB, handle func(c net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
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
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr)
}

func echo(c net.Conn) { io.Copy(c, c) }

// source writes a repeating pattern until the connection fails.
func source(c net.Conn) {
	buf := make([]byte, 32<<10)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// sink reads and counts until the connection ends.
func sink(count *countW) func(c net.Conn) {
	return func(c net.Conn) { io.Copy(count, c) }
}

type countW struct {
	mu sync.Mutex
	n  int64
}

func (w *countW) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.n += int64(len(p))
	w.mu.Unlock()
	return len(p), nil
}

func (w *countW) get() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// Frame-level fakes for the client rules.

// wire is one end of an unpaced emulated line, read as v3 frames.
type wire struct {
	port   *uartemu.Port
	frames chan rxFrame
	wg     sync.WaitGroup
}

// newWire reads frames from port until it is closed.
func newWire(port *uartemu.Port) *wire {
	w := &wire{port: port, frames: make(chan rxFrame, 256)}
	w.wg.Go(func() {
		defer close(w.frames)
		dec := slip.NewDecoder(frame.V3MaxFrameLen)
		buf := make([]byte, 4096)
		for {
			n, err := port.Read(buf)
			dec.Feed(buf[:n], func(b []byte) {
				h, p, err := frame.ParseV3(b)
				if err == nil {
					w.frames <- rxFrame{h: h, payload: append([]byte(nil), p...)}
				}
			}, nil)
			if err != nil {
				return
			}
		}
	})
	return w
}

func (w *wire) send(t frame.V3Type, seq uint16, payload []byte) {
	w.port.Write(slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: t, Seq: seq}, payload)))
}

// okResp is the payload of RESP {"ok": true, "result": result}.
func okResp(t testing.TB, result any) []byte {
	b, err := Append(nil, map[string]any{"ok": true, "result": result})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakePair is a Client on one end of an unpaced line and a scripted
// device (a wire) on the other.
func fakePair(t testing.TB, cfg Config) (*Client, *wire) {
	t.Helper()
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	c := NewClient(hp, cfg)
	w := newWire(dp)
	t.Cleanup(func() {
		c.Close()
		dp.Close()
		hp.Close()
		w.wg.Wait()
	})
	return c, w
}

// relay joins a host port and a device port through two emulated lines
// and passes device→host frames through filter, which returns the bytes
// to forward (nil drops the frame).
type relay struct {
	wg sync.WaitGroup
}

func newRelay(t testing.TB, filter func(f []byte) []byte) (host, device *uartemu.Port) {
	t.Helper()
	h1, d1 := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	h2, d2 := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	r := &relay{}
	r.wg.Go(func() { io.Copy(h2, d1) }) // host → device, untouched
	r.wg.Go(func() {
		dec := slip.NewDecoder(frame.V3MaxFrameLen)
		buf := make([]byte, 4096)
		for {
			n, err := h2.Read(buf)
			dec.Feed(buf[:n], func(b []byte) {
				if out := filter(append([]byte(nil), b...)); out != nil {
					d1.Write(slip.AppendEncode(nil, out))
				}
			}, nil)
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		for _, p := range []*uartemu.Port{h1, d1, h2, d2} {
			p.Close()
		}
		r.wg.Wait()
	})
	return h1, d2
}

// isType reports whether a raw frame is of type t.
func isType(f []byte, t frame.V3Type) bool {
	h, _, err := frame.ParseV3(f)
	return err == nil && h.Type == t
}
