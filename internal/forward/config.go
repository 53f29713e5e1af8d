package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for Config.
const (
	DefaultConnectTimeout = 15 * time.Second
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultMaxUDPClients  = 32
)

// tuning (not protocol)
const (
	maxDatagram       = 65507       // largest UDP payload over IPv4, and what the device carries
	readBuffer        = 64 << 10    // one UDP read; larger than any datagram
	copyBuffer        = 32 << 10    // one TCP copy step
	udpQueueDatagrams = 64          // datagrams waiting per UDP client for its device socket
	udpQueueBytes     = 256 << 10   // bytes waiting per UDP client
	udpDrainQuiet     = time.Second // during Shutdown a UDP client this quiet is done
	listenBackoffMin  = 250 * time.Millisecond
	listenBackoffMax  = 5 * time.Second
	acceptBackoffMax  = time.Second     // local Accept errors other than a closed listener
	warnEvery         = 5 * time.Second // at most one warning per reason this often
)

// Config configures one Forward. The functions in it are called from
// several goroutines at once and must allow that.
type Config struct {
	Spec Spec
	// Dial opens a TCP connection through the device (local TCP
	// forwards). It has the signature of (*net.Dialer).DialContext so that
	// tests pass a real dialer. Host names are resolved by the device, not
	// here.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ListenPacket opens a UDP socket on the device (local UDP forwards);
	// it has the signature of (*net.ListenConfig).ListenPacket and is
	// called with address ":0". The forward writes to Spec.Target() with a
	// *net.UDPAddr when Spec.Host is an IP literal, and otherwise with a
	// net.Addr whose String() is "host:port".
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// Listen opens a TCP listener on the device (remote forwards); it has
	// the signature of (*net.ListenConfig).Listen.
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// DialLocal connects to Spec.Target() on this host for remote
	// forwards; nil uses a net.Dialer.
	DialLocal func(ctx context.Context, network, address string) (net.Conn, error)
	// Admit is called for each client before anything is opened for it:
	// an accepted TCP connection (either direction) or a new UDP client
	// address. ok=false means over the concurrent-client limit: the client
	// is closed or its datagram dropped at once, and Stats.Rejected counts
	// it. release is called once when an admitted client is done. nil
	// admits everyone.
	Admit func() (release func(), ok bool)
	// ConnectTimeout bounds one Dial, DialLocal, Listen or ListenPacket,
	// including waiting for a free device stream; default 15 s.
	ConnectTimeout time.Duration
	// UDPIdleTimeout: a UDP client with no datagram either way for this
	// long is forgotten and its device socket closed; default 60 s.
	UDPIdleTimeout time.Duration
	// MaxUDPClients bounds the clients of one UDP forward; beyond it the
	// least recently active client is evicted; default 32.
	MaxUDPClients int
	Logger        zerolog.Logger
}

// DefaultConfig returns the defaults, without a Spec or device functions.
func DefaultConfig() Config {
	return Config{
		ConnectTimeout: DefaultConnectTimeout,
		UDPIdleTimeout: DefaultUDPIdleTimeout,
		MaxUDPClients:  DefaultMaxUDPClients,
		Logger:         zerolog.Nop(),
	}
}

// check fills in defaults and reports what is missing or wrong.
func (c Config) check() (Config, error) {
	sp := c.Spec
	switch {
	case sp.Host == "":
		return c, errors.New("no destination host")
	case sp.HostPort == 0:
		return c, errors.New("destination port 0")
	case sp.Remote && sp.UDP:
		return c, errors.New("remote forwards are TCP only")
	case sp.Bind != "":
		if _, err := netip.ParseAddr(sp.Bind); err != nil {
			return c, fmt.Errorf("bind address %q is not an IP address", sp.Bind)
		}
	}
	switch {
	case sp.Remote && c.Listen == nil:
		return c, errors.New("a remote forward needs Listen")
	case !sp.Remote && sp.UDP && c.ListenPacket == nil:
		return c, errors.New("a local UDP forward needs ListenPacket")
	case !sp.Remote && !sp.UDP && c.Dial == nil:
		return c, errors.New("a local TCP forward needs Dial")
	case c.ConnectTimeout < 0 || c.UDPIdleTimeout < 0 || c.MaxUDPClients < 0:
		return c, errors.New("negative timeout or limit")
	}
	d := DefaultConfig()
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = d.UDPIdleTimeout
	}
	if c.MaxUDPClients == 0 {
		c.MaxUDPClients = d.MaxUDPClients
	}
	if c.DialLocal == nil {
		c.DialLocal = (&net.Dialer{}).DialContext
	}
	if c.Admit == nil {
		c.Admit = func() (func(), bool) { return func() {}, true }
	}
	return c, nil
}
