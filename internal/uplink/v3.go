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

// v3 liveness: the seedv3 scheduler pings the board every 2 s (and every
// other call is an answer too); the board counts as up while its last
// answer is younger than v3UpFor. v3Watch is how often that is looked at.
const (
	v3UpFor = 5 * time.Second
	v3Watch = 100 * time.Millisecond
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

	mu    sync.Mutex
	alive bool
	err   error
	upCh  chan struct{} // closed and replaced when the board answers after silence
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
	go d.watch()
	return d
}

// watch follows the board's liveness from the scheduler's own calls, and
// notices a lost port. It calls nothing on the board: the seedv3 Net is
// the one caller.
func (d *v3Device) watch() {
	defer d.wg.Done()
	t := time.NewTicker(v3Watch)
	defer t.Stop()
	for {
		last := d.n.LastAnswer()
		up := !last.IsZero() && time.Since(last) < v3UpFor
		d.mu.Lock()
		if up && !d.alive {
			close(d.upCh)
			d.upCh = make(chan struct{})
		}
		d.alive = up
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
	return d.alive, d.upCh
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

func (d *v3Device) linkStats() link.Stats {
	ok, _ := d.isUp()
	return V3LinkStats(d.c, d.n, ok)
}

// V3LinkStats maps a v3 client's and Net's counters onto the link's, so
// metrics and bench mean the same for both protocols: frames and bytes on
// the wire, calls as DATA (requests out, responses in), resends as
// retransmissions, calls without an answer as timeouts, bad frames by
// reason, noticed reboots as peer restarts.
func V3LinkStats(c *seedv3.Client, n *seedv3.Net, established bool) link.Stats {
	s := c.Stats()
	ls := link.Stats{
		TxFrames: s.FramesOut, RxFrames: s.FramesIn, TxBytes: s.BytesOut, RxBytes: s.BytesIn,
		TxData: s.Requests, RxData: s.Responses,
		Retransmits: s.Resends, Timeouts: s.Timeouts, Established: established,
		Dropped: map[string]uint64{}, MaxPayload: c.MaxFrame(), Window: 1,
		PeerRestarts: n.Stats().Reboots,
	}
	for r, k := range s.BadFrames {
		ls.Dropped[r] += k
	}
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
