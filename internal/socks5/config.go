package socks5

import (
	"context"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server. The functions in it are called from many
// goroutines at once and must allow that.
type Config struct {
	// Dial opens a TCP connection through the device; it has the signature
	// of (*net.Dialer).DialContext so that tests can pass a real dialer.
	// address is "host:port" and host may be a name: names are not resolved
	// on this host, the device resolves them. nil disables CONNECT (reply
	// 0x07).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ListenPacket opens a UDP socket on the device for UDP ASSOCIATE; it
	// has the signature of (*net.ListenConfig).ListenPacket and is called
	// with address "". Datagrams are written to a *net.UDPAddr when the
	// destination is an IP literal and otherwise to a net.Addr whose
	// String() is "name:port". nil disables UDP ASSOCIATE (reply 0x07).
	ListenPacket func(ctx context.Context, network, address string) (net.PacketConn, error)
	// Listen opens a TCP listener on the device for BIND; it has the
	// signature of (*net.ListenConfig).Listen and is called with address
	// ":0". nil disables BIND (reply 0x07).
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// Allow checks a destination against the access rules before anything
	// is opened and returns the address to use, "host:port" ("" keeps the
	// requested one); it may replace a name by the IP it checked. It is
	// called with cmd CmdConnect before a Dial, with CmdBind and the
	// request's address (the peer the client expects) before a Listen, and
	// with CmdUDPAssociate for each new destination of an association's
	// datagrams (a denied destination's datagrams are dropped). An error
	// matching ErrDenied gives reply 0x02; other errors are classified like
	// dial errors. nil allows everything.
	Allow func(ctx context.Context, cmd string, host string, port uint16) (address string, err error)
	// Authenticate, when non-nil, requires RFC 1929 username/password
	// authentication; clients offering only "no authentication" get 0xFF.
	// It should compare in constant time. Failures are counted in
	// Stats.AuthFailures.
	Authenticate func(user, password string) bool
	// Admit is called for each accepted client connection before anything
	// is read from it. ok=false means over the concurrent-client limit: the
	// connection is closed at once and counted in Stats.Rejected. release
	// is called once when an admitted connection ends. nil admits everyone.
	Admit func() (release func(), ok bool)
	// HandshakeTimeout bounds greeting, authentication and request
	// together, against slowloris clients; default 10 s.
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds one Allow and one Dial, ListenPacket or Listen,
	// including waiting for a free device stream; default 15 s.
	ConnectTimeout time.Duration
	// BindTimeout bounds BIND's wait for the incoming connection; default
	// 60 s.
	BindTimeout time.Duration
	// UDPIdleTimeout ends an association that saw no datagram either way
	// for this long; default 2 min.
	UDPIdleTimeout time.Duration
	// Logger gets one debug line per request and per failed handshake;
	// passwords are never logged. The zero Logger logs nothing.
	Logger zerolog.Logger
}

// DefaultConfig returns the default timeouts, without device functions.
func DefaultConfig() Config {
	return Config{
		HandshakeTimeout: DefaultHandshakeTimeout,
		ConnectTimeout:   DefaultConnectTimeout,
		BindTimeout:      DefaultBindTimeout,
		UDPIdleTimeout:   DefaultUDPIdleTimeout,
		Logger:           zerolog.Nop(),
	}
}

// withDefaults fills in zero (or negative) timeouts and a nil Admit.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.BindTimeout <= 0 {
		c.BindTimeout = d.BindTimeout
	}
	if c.UDPIdleTimeout <= 0 {
		c.UDPIdleTimeout = d.UDPIdleTimeout
	}
	if c.Admit == nil {
		c.Admit = func() (func(), bool) { return func() {}, true }
	}
	return c
}
