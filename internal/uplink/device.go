package uplink

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
)

// device is one opened port with a protocol stack on it. The supervisor
// owns it; the network methods are called from any goroutine.
type device interface {
	// waitUp returns nil once streams can be opened, errReplaced once the
	// device is closed, or ctx's error.
	waitUp(ctx context.Context) error
	// up returns the device's HELLO and the negotiated payload size while
	// the handshake is up.
	up() (peer message.Hello, maxPayload int, ok bool)
	dial(ctx context.Context, network, address string, tls *mux.TLSOptions) (net.Conn, error)
	listenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
	listen(ctx context.Context, network, address string) (net.Listener, error)
	// lookup resolves a name on the device; family is 0, 4 or 6.
	lookup(ctx context.Context, family int, host string) ([]netip.Addr, error)
	info(ctx context.Context) (message.Info, error)
	linkStats() link.Stats
	muxStats() mux.Stats
	// Done is closed when the port is lost.
	Done() <-chan struct{}
	Err() error
	FlowControl() bool
	Close() error
}

// errReplaced is waitUp's answer on a device the supervisor has closed.
var errReplaced = errors.New("uplink: device closed")

// nativeDevice runs uartproxy's own protocol: a link and a mux session.
type nativeDevice struct {
	s        *mux.Session
	l        *link.Link
	flow     func() bool
	close    func() error
	rebootFn func() error // nil unless the device is emulated here
}

// reboot restarts an emulated device.
func (d *nativeDevice) reboot() error {
	if d.rebootFn == nil {
		return errors.New("uplink: not an emulated device")
	}
	return d.rebootFn()
}

func (d *nativeDevice) waitUp(ctx context.Context) error {
	err := d.s.WaitUp(ctx)
	if errors.Is(err, mux.ErrSessionClosed) {
		return errReplaced
	}
	return err
}

func (d *nativeDevice) up() (message.Hello, int, bool) {
	p, ok := d.s.Peer()
	return p.Peer, p.MaxPayload, ok
}

func (d *nativeDevice) dial(ctx context.Context, network, address string, tls *mux.TLSOptions) (net.Conn, error) {
	st, err := d.s.DialStream(ctx, network, address, mux.DialOptions{TLS: tls})
	if err != nil {
		return nil, dnsError(err, address)
	}
	return st, nil
}

func (d *nativeDevice) listenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	pc, err := d.s.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return pc, nil
}

func (d *nativeDevice) listen(ctx context.Context, network, address string) (net.Listener, error) {
	ln, err := d.s.Listen(ctx, network, address, 0)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

func (d *nativeDevice) lookup(ctx context.Context, family int, host string) ([]netip.Addr, error) {
	addrs, err := d.s.Resolve(ctx, host, family)
	if err != nil {
		if mux.CodeOf(err) == message.CodeDNS {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTimeout: errors.Is(err, mux.ErrTimeout), IsTemporary: true}
	}
	return addrs, nil
}

func (d *nativeDevice) info(ctx context.Context) (message.Info, error) { return d.s.Info(ctx) }
func (d *nativeDevice) linkStats() link.Stats                          { return d.l.Stats() }
func (d *nativeDevice) muxStats() mux.Stats                            { return d.s.Stats() }
func (d *nativeDevice) Done() <-chan struct{}                          { return d.l.Done() }
func (d *nativeDevice) Err() error                                     { return d.l.Err() }
func (d *nativeDevice) FlowControl() bool                              { return d.flow() }
func (d *nativeDevice) Close() error                                   { return d.close() }

// dnsError turns the device's "could not resolve" into a *net.DNSError so
// callers that know only the standard library recognise it.
func dnsError(err error, address string) error {
	if mux.CodeOf(err) != message.CodeDNS {
		return err
	}
	host, _, _ := net.SplitHostPort(address)
	var oe *net.OpError
	if errors.As(err, &oe) {
		return &net.OpError{Op: oe.Op, Net: oe.Net, Addr: oe.Addr,
			Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
