package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// Lookup resolves a name on the ESP32; network is "ip4" or "ip6" and
	// host has no trailing dot. Its signature is
	// (*net.Resolver).LookupNetIP's, so tests can pass a fake. A name
	// that does not exist is an error that is a *net.DNSError with
	// IsNotFound or whose text says "no such host"; any other error is a
	// server failure. Lookup must return when ctx is done. Required.
	Lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// Upstream, if set, is the "ip:port" of a DNS server reached through
	// the ESP32 for every question other than A and AAAA of class IN
	// (MX, TXT, SRV, PTR, ...). Such queries are relayed unchanged over a
	// UDP socket opened with ListenPacket; there is no TCP fallback. If
	// empty, those questions get NOTIMP.
	Upstream string
	// ListenPacket opens a UDP socket on the ESP32; its signature is
	// (*net.ListenConfig).ListenPacket's. It is called with network
	// "udp" and address "" (any); WriteTo gets a *net.UDPAddr. Required
	// when Upstream is set.
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// TTL is the TTL of A and AAAA answers and how long they are cached.
	// Negative answers (NXDOMAIN, no address of that family) are cached
	// for TTL or 10 s, whichever is smaller.
	TTL time.Duration
	// Timeout bounds the resolution of one query.
	Timeout time.Duration
	// CacheSize is how many (name, type) answers the cache keeps; the
	// least recently used go first.
	CacheSize int
	// MaxInflight bounds the queries being resolved at once; beyond it
	// queries get SERVFAIL at once.
	MaxInflight int
	// MaxTCPConns bounds the TCP connections served at once; beyond it
	// new connections are closed as soon as they are accepted.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection on which no query arrived
	// for that long (RFC 7766 §6.2.3).
	TCPIdleTimeout time.Duration
	Logger         zerolog.Logger
}

// DefaultConfig returns the defaults; Lookup and the upstream are unset.
func DefaultConfig() Config {
	return Config{
		TTL:            60 * time.Second,
		Timeout:        5 * time.Second,
		CacheSize:      1024,
		MaxInflight:    64,
		MaxTCPConns:    64,
		TCPIdleTimeout: 10 * time.Second,
		Logger:         zerolog.Nop(),
	}
}

// withDefaults fills zero fields from DefaultConfig. A zero Logger is
// already a usable logger that discards, so it is left alone.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.CacheSize <= 0 {
		c.CacheSize = d.CacheSize
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = d.MaxTCPConns
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = d.TCPIdleTimeout
	}
	return c
}

// validate checks c and parses the upstream address.
func (c Config) validate() (upstream netip.AddrPort, err error) {
	if c.Lookup == nil {
		return netip.AddrPort{}, errors.New("dnsproxy: Config.Lookup is required")
	}
	if c.Upstream == "" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(c.Upstream)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("dnsproxy: upstream %q is not an ip:port (a name would need DNS to resolve it; use e.g. 1.1.1.1:53)", c.Upstream)
	}
	if c.ListenPacket == nil {
		return netip.AddrPort{}, errors.New("dnsproxy: Config.ListenPacket is required with an upstream")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
