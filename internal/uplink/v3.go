package uplink

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/seedv3"
)

// V3Limits are what a board running the seed's v3 firmware cannot do,
// as serve reports them once at start-up and in /healthz.
var V3Limits = []string{
	"one operation at a time: every read is a poll, and a slow connect stalls every stream for up to 5 s",
	"no push and no flow control: data waits on the board until polled",
	"no half-close: a client's end of input reaches the destination only when the connection closes",
	"TLS without certificate verification",
	"no device information beyond wifi_status (no free memory, RSSI or uptime)",
}

// Firmware and model names a v3 board is reported under.
const (
	v3Firmware = "seed v3 firmware"
	v3Model    = "ESP32 (seed v3)"
)

// v3 liveness: a ping every v3PingEvery; the board counts as up while the
// last answer is younger than v3UpFor.
const (
	v3PingEvery = time.Second
	v3UpFor     = 3500 * time.Millisecond
)

// v3Device drives a board running the seed's v3 firmware.
type v3Device struct {
	c        *seedv3.Client
	n        *seedv3.Net
	flow     bool
	closeFn  func() error
	rebootFn func() error // emulated boards only

	stop      chan struct{}
	done      chan struct{} // closed when the port is lost
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu     sync.Mutex
	lastOK time.Time
	err    error
	upCh   chan struct{} // closed and replaced when the board answers after silence
}

func newV3Device(port io.ReadWriteCloser, flow bool, closePort func() error, log zerolog.Logger) *v3Device {
	cc := seedv3.DefaultConfig()
	cc.Logger = log.With().Str("layer", "seedv3").Logger()
	c := seedv3.NewClient(port, cc)
	nc := seedv3.DefaultNetConfig()
	nc.Logger = cc.Logger
	d := &v3Device{
		c: c, n: seedv3.NewNet(c, nc), flow: flow,
		stop: make(chan struct{}), done: make(chan struct{}), upCh: make(chan struct{}),
	}
	d.closeFn = func() error {
		d.n.Close()
		d.c.Close()
		return closePort()
	}
	d.wg.Add(1)
	go d.pinger()
	return d
}

// pinger keeps lastOK fresh and notices a lost port.
func (d *v3Device) pinger() {
	defer d.wg.Done()
	t := time.NewTicker(v3PingEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), v3UpFor)
		_, err := d.c.Ping(ctx)
		cancel()
		d.mu.Lock()
		if err == nil {
			if time.Since(d.lastOK) > v3UpFor {
				close(d.upCh)
				d.upCh = make(chan struct{})
			}
			d.lastOK = time.Now()
		}
		d.mu.Unlock()
		if cerr := d.c.Err(); cerr != nil {
			d.mu.Lock()
			d.err = cerr
			d.mu.Unlock()
			close(d.done)
			return
		}
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
	}
}

func (d *v3Device) isUp() (bool, chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.lastOK.IsZero() && time.Since(d.lastOK) < v3UpFor, d.upCh
}

func (d *v3Device) waitUp(ctx context.Context) error {
	for {
		ok, ch := d.isUp()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-d.stop:
			return errReplaced
		case <-d.done:
			return errReplaced
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *v3Device) up() (message.Hello, int, bool) {
	ok, _ := d.isUp()
	return message.Hello{Firmware: v3Firmware, Model: v3Model}, d.c.MaxFrame(), ok
}

func (d *v3Device) dial(ctx context.Context, network, address string, tls *mux.TLSOptions) (net.Conn, error) {
	if tls == nil {
		return d.n.DialContext(ctx, network, address)
	}
	if tls.Verify {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("the seed's v3 firmware cannot verify certificates")}
	}
	return d.n.DialTLS(ctx, address, tls.ServerName)
}

func (d *v3Device) listenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return d.n.ListenPacket(ctx, network, address)
}

func (d *v3Device) listen(ctx context.Context, network, address string) (net.Listener, error) {
	return d.n.Listen(ctx, network, address)
}

func (d *v3Device) lookup(ctx context.Context, family int, host string) ([]netip.Addr, error) {
	network := "ip"
	switch family {
	case 4:
		network = "ip4"
	case 6:
		network = "ip6"
	}
	return d.n.LookupNetIP(ctx, network, host)
}

func (d *v3Device) info(ctx context.Context) (message.Info, error) {
	connected, ip, err := d.n.WiFiStatus(ctx)
	if err != nil {
		return message.Info{}, err
	}
	state := uint8(message.WiFiDown)
	if connected {
		state = message.WiFiUp
	}
	return message.Info{Firmware: v3Firmware, Model: v3Model, WiFi: &state, IP: ip}, nil
}

// linkStats maps the v3 client's counters onto the link's, so the metrics
// mean the same: frames and bytes on the wire, resends as retransmissions,
// calls without an answer as timeouts, bad frames by reason.
func (d *v3Device) linkStats() link.Stats {
	s := d.c.Stats()
	ok, _ := d.isUp()
	ls := link.Stats{
		TxFrames: s.FramesOut, RxFrames: s.FramesIn, TxBytes: s.BytesOut, RxBytes: s.BytesIn,
		Retransmits: s.Resends, Timeouts: s.Timeouts, Established: ok,
		Dropped: map[string]uint64{}, MaxPayload: d.c.MaxFrame(), Window: 1,
	}
	for r, n := range s.BadFrames {
		ls.Dropped[r] += n
	}
	ns := d.n.Stats()
	ls.PeerRestarts = ns.Reboots
	return ls
}

func (d *v3Device) muxStats() mux.Stats {
	ns := d.n.Stats()
	failed := map[string]uint64{}
	if ns.DialErrors > 0 {
		failed["dial"] = ns.DialErrors
	}
	return mux.Stats{
		StreamsOpen: int64(ns.Open), Opened: ns.Dials + ns.Accepted,
		BytesIn: ns.BytesDown, BytesOut: ns.BytesUp, Failed: failed,
	}
}

func (d *v3Device) Done() <-chan struct{} { return d.done }

func (d *v3Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *v3Device) FlowControl() bool { return d.flow }

func (d *v3Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		close(d.stop)
		err = d.closeFn()
		d.wg.Wait()
	})
	return err
}

func (d *v3Device) reboot() error {
	if d.rebootFn == nil {
		return errors.New("uplink: not an emulated device")
	}
	return d.rebootFn()
}
