package benchrun

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/seedv3"
	"github.com/uartproxy/uartproxy/internal/uartemu"
	"github.com/uartproxy/uartproxy/internal/uplink"
)

// V3Options configures NewV3Target.
type V3Options struct {
	// Line is the emulated serial line, both ways.
	Line   uartemu.Line
	Logger zerolog.Logger
}

// V3Target is a Target over an emulated board running the seed's v3
// firmware (package seedv3), for comparing it with uartproxy's own
// protocol. A v3 board has no test endpoints, so the target runs "echo",
// "discard" and "source" as TCP services on 127.0.0.1 of this machine and
// OpenService dials them through the board: the emulated board makes real
// sockets here. Echo is a v3 ping carrying the payload hex-encoded.
//
// The device's counters are not seen (it does not implement
// DeviceCounters): uploads are counted as the device reports them sent
// (sock_send), the Net's BytesUp.
//
// Concurrency: the methods are safe for concurrent use; Close stops the
// services, the Net, the Client and the emulator and waits for their
// goroutines.
type V3Target struct {
	baud   int
	hp, dp *uartemu.Port
	dev    *seedv3.Device
	c      *seedv3.Client
	n      *seedv3.Net

	addrs map[string]string // service name → host:port on 127.0.0.1
	lns   []net.Listener
	wg    sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted by the services
	closed bool

	closeOnce sync.Once
}

// v3SourceChunk is what the "source" service writes at once: whole periods
// of the pattern, so that consecutive writes continue it.
const v3SourceChunk = 251 * 128

// NewV3Target starts the v3 board emulator on an emulated line, the host
// side of the v3 RPC and the test services.
func NewV3Target(o V3Options) (*V3Target, error) {
	if o.Line.Baud <= 0 {
		return nil, fmt.Errorf("benchrun: baud %d: want a positive rate", o.Line.Baud)
	}
	t := &V3Target{baud: o.Line.Baud, addrs: map[string]string{}, conns: map[net.Conn]struct{}{}}
	services := map[string]func(net.Conn){
		message.ServiceEcho:    func(c net.Conn) { io.Copy(c, c) },
		message.ServiceDiscard: func(c net.Conn) { io.Copy(io.Discard, c) },
		message.ServiceSource:  serveSource,
	}
	for name, serve := range services {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("benchrun: start the %q service: %w", name, err)
		}
		t.lns = append(t.lns, ln)
		t.addrs[name] = ln.Addr().String()
		t.wg.Go(func() { t.accept(ln, serve) })
	}

	t.hp, t.dp = uartemu.New(uartemu.Symmetric(o.Line))
	dc := seedv3.DefaultDeviceConfig()
	dc.Logger = o.Logger.With().Str("device", "seed v3 emulator").Logger()
	dev, err := seedv3.NewDevice(t.dp, dc)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("benchrun: start the v3 board emulator: %w", err)
	}
	t.dev = dev
	cc := seedv3.DefaultConfig()
	cc.Logger = o.Logger.With().Str("layer", "seedv3").Logger()
	t.c = seedv3.NewClient(t.hp, cc)
	nc := seedv3.DefaultNetConfig()
	nc.Logger = cc.Logger
	t.n = seedv3.NewNet(t.c, nc)
	return t, nil
}

// accept serves ln until it is closed, one goroutine per connection.
func (t *V3Target) accept(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Go(func() {
			serve(c)
			c.Close()
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		})
	}
}

// serveSource writes the "source" pattern (docs/protocol.md §7.14) from
// offset 0 until the connection fails.
func serveSource(c net.Conn) {
	buf := make([]byte, v3SourceChunk)
	for i := range buf {
		buf[i] = message.SourceByte(uint64(i))
	}
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// OpenService dials the local service name through the board.
func (t *V3Target) OpenService(ctx context.Context, name string) (net.Conn, error) {
	addr, ok := t.addrs[name]
	if !ok {
		return nil, fmt.Errorf("benchrun: no %q service", name)
	}
	return t.n.DialContext(ctx, "tcp", addr)
}

// Echo sends p hex-encoded in a v3 ping's "echo" argument and returns what
// the board echoed, decoded.
func (t *V3Target) Echo(ctx context.Context, p []byte) ([]byte, error) {
	r, err := t.c.Call(ctx, seedv3.OpPing, map[string]any{"echo": hex.EncodeToString(p)})
	if err != nil {
		return nil, err
	}
	m, _ := r.(map[string]any)
	s, ok := m["echo"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: ping: no echo in %v", seedv3.ErrBadResponse, r)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: ping: echo %q: %v", seedv3.ErrBadResponse, s, err)
	}
	return b, nil
}

// LinkStats maps the v3 client's counters onto the link's as
// uplink's v3 device does: frames and bytes on the wire, REQ resends as
// retransmissions, calls without an answer as timeouts, bad frames by
// reason. REQs sent for the first time count as DATA frames, so that the
// retransmission rate is resends per call.
func (t *V3Target) LinkStats() link.Stats {
	return uplink.V3LinkStats(t.c, t.n, t.c.Err() == nil)
}

// BytesSent counts the payload the board reports sent for us.
func (t *V3Target) BytesSent() uint64 { return t.n.Stats().BytesUp }

// Baud is the emulated line's rate.
func (t *V3Target) Baud() int { return t.baud }

// Close stops the Net, the Client, the emulator and the services, and
// waits for their goroutines.
func (t *V3Target) Close() error {
	var errs []error
	t.closeOnce.Do(func() {
		if t.n != nil {
			errs = append(errs, t.n.Close())
		}
		if t.c != nil {
			t.c.Close()
		}
		if t.hp != nil {
			t.hp.Close()
		}
		if t.dev != nil {
			errs = append(errs, t.dev.Close())
		}
		if t.dp != nil {
			t.dp.Close()
		}
		t.mu.Lock()
		t.closed = true
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		for _, ln := range t.lns {
			ln.Close()
		}
		t.wg.Wait()
	})
	return errors.Join(errs...)
}
