package seedv3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Net is the network as seen from a seed v3 board, with the standard
// library's signatures so that the proxies can use it unchanged. One
// scheduler goroutine makes every call to the Client; see the package
// documentation for its policy.
type Net struct {
	// lastAnswer is when the device last answered a call (Unix ns); read
	// by LastAnswer from any goroutine.
	lastAnswer atomic.Int64
	c          *Client
	cfg        NetConfig
	log        zerolog.Logger

	maxRecv, maxSend, maxDgram int // data per op, so that frames fit MaxFrame

	mu     sync.Mutex // guards jobs and closed
	jobs   []*job
	closed bool

	wake      chan struct{} // capacity 1: work arrived
	done      chan struct{} // closed when Close starts
	stopped   chan struct{} // closed when the scheduler has exited
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	// Owned by the scheduler.
	ring       []*sock
	cursor     int
	lastWasJob bool
	nextPing   time.Time
	havePing   bool
	lastUp     int64     // uptime in the last ping
	lastPingAt time.Time // when its RESP arrived
	needReset  bool      // sock_reset before the next open
	down       bool      // the last call got no RESP before its deadline

	statsMu sync.Mutex
	stats   NetStats
}

// job is an operation a user asked for (open, dns, wifi_status), run by
// the scheduler between socket turns.
type job struct {
	ctx  context.Context
	fn   func(ctx context.Context)
	err  error // set when the job never ran (Net closed)
	done chan struct{}
}

// NewNet starts the scheduler for the device behind c. The Net does not
// own c: Close the Net first, then the Client.
func NewNet(c *Client, cfg NetConfig) *Net {
	cfg = cfg.withDefaults()
	mf := c.MaxFrame()
	n := &Net{
		c:        c,
		cfg:      cfg,
		log:      cfg.Logger,
		maxRecv:  mf - recvOverhead,
		maxSend:  mf - sendOverhead,
		maxDgram: mf - addrOverhead,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.stats.Ops = map[string]uint64{}
	go n.run()
	return n
}

// Close fails every open Conn, Listener and PacketConn with net.ErrClosed,
// closes their device sockets with one sock_reset (bounded by
// CloseTimeout) and stops the scheduler. It is idempotent.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		jobs := n.jobs
		n.jobs = nil
		n.mu.Unlock()
		for _, j := range jobs {
			j.err = net.ErrClosed
			close(j.done)
		}
		close(n.done)
		n.cancel()
	})
	<-n.stopped
	return nil
}

// Stats returns a snapshot of the counters.
func (n *Net) Stats() NetStats {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	return n.stats.clone()
}

func (n *Net) count(f func(s *NetStats)) {
	n.statsMu.Lock()
	f(&n.stats)
	n.statsMu.Unlock()
}

// kick wakes the scheduler.
func (n *Net) kick() { notify(n.wake) }

// submit queues fn for the scheduler and waits until it has run. When ctx
// ends while the job is still queued, the job is withdrawn; once running,
// it sees the same ctx and ends soon.
func (n *Net) submit(ctx context.Context, fn func(ctx context.Context)) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return net.ErrClosed
	}
	n.jobs = append(n.jobs, j)
	n.mu.Unlock()
	n.kick()
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
	}
	n.mu.Lock()
	i := slices.Index(n.jobs, j)
	if i >= 0 {
		n.jobs = slices.Delete(n.jobs, i, i+1)
	}
	n.mu.Unlock()
	if i >= 0 {
		return ctx.Err()
	}
	<-j.done
	return j.err
}

// runJob runs f in the scheduler and returns its results.
func runJob[T any](n *Net, ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	var res T
	var err error
	if jerr := n.submit(ctx, func(ctx context.Context) { res, err = f(ctx) }); jerr != nil {
		var zero T
		return zero, jerr
	}
	return res, err
}

// splitAddr splits host:port with a numeric or service port.
func splitAddr(network, address string) (string, int, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		port, err = net.LookupPort(network, ps)
		if err != nil {
			return "", 0, err
		}
	}
	if port < 0 || port > 0xFFFF {
		return "", 0, fmt.Errorf("port %d out of range", port)
	}
	return host, port, nil
}

// familyFor picks sock_open's family for a network and host.
func familyFor(network, host string) int64 {
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		return familyInet6
	}
	if len(network) > 0 && network[len(network)-1] == '6' {
		return familyInet6
	}
	return familyInet
}

// remoteAddr is the RemoteAddr of a connection dialed to host:port.
func remoteAddr(network, host string, port int) net.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Unmap(), uint16(port)))
	}
	return &hostAddr{network: network, host: host, port: port}
}

func itoa(i int) string { return strconv.Itoa(i) }

// opError wraps an error of an open as the standard library does.
func opErr(op, network, address string, err error) error {
	if err == nil {
		return nil
	}
	var re *RemoteError
	if errors.As(err, &re) && isDNSFailure(re) {
		host, _, _ := net.SplitHostPort(address)
		err = &net.DNSError{Err: "no such host: " + re.Detail, Name: host, IsNotFound: true}
	}
	return &net.OpError{Op: op, Net: network, Addr: stringAddr{network, address}, Err: err}
}

// stringAddr is an address as the caller wrote it.
type stringAddr struct{ network, s string }

func (a stringAddr) Network() string { return a.network }
func (a stringAddr) String() string  { return a.s }

// isDNSFailure reports whether the device could not resolve a name.
func isDNSFailure(re *RemoteError) bool {
	if re.Code == CodeDNS {
		return true
	}
	return re.Op == OpSockConnect && re.Code == CodeSockConnect &&
		(containsFold(re.Detail, "EAI_") || containsFold(re.Detail, "-202") || containsFold(re.Detail, "getaddrinfo"))
}

// LastAnswer is when the device last answered a call, zero if it never
// has. The scheduler pings every PingEvery, so while the device is
// reachable this is never much older than that: a caller can tell a live
// board from a silent one without calling it.
func (n *Net) LastAnswer() time.Time {
	ns := n.lastAnswer.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// DialContext connects to address ("host:port") from the device:
// sock_open (type 1), then sock_connect with timeout_ms the smaller of
// ConnectTimeout and ctx's deadline. Names are resolved by the device; a
// name it cannot resolve gives a *net.DNSError with IsNotFound.
func (n *Net) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.dial(ctx, network, address, "", false)
}

// DialTLS connects to address, then wraps the socket in TLS on the device
// (sock_wrap_ssl with serverName as SNI; address's host when empty). The
// device does not verify the server's certificate: v3 cannot.
func (n *Net) DialTLS(ctx context.Context, address, serverName string) (net.Conn, error) {
	return n.dial(ctx, "tcp", address, serverName, true)
}

func (n *Net) dial(ctx context.Context, network, address, serverName string, useTLS bool) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, opErr("dial", network, address, net.UnknownNetworkError(network))
	}
	host, port, err := splitAddr(network, address)
	if err != nil {
		return nil, opErr("dial", network, address, err)
	}
	if serverName == "" {
		serverName = host
	}
	c, err := runJob(n, ctx, func(ctx context.Context) (*Conn, error) {
		return n.doDial(ctx, network, host, port, serverName, useTLS)
	})
	if err != nil {
		return nil, opErr("dial", network, address, err)
	}
	return c, nil
}

// Listen listens for TCP connections on the device: sock_open, sock_bind
// (host "" is every address), sock_listen. Addr reports the address asked
// for, since v3 cannot tell which port 0 became.
func (n *Net) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, opErr("listen", network, address, net.UnknownNetworkError(network))
	}
	host, port, err := splitAddr(network, address)
	if err != nil {
		return nil, opErr("listen", network, address, err)
	}
	l, err := runJob(n, ctx, func(ctx context.Context) (*Listener, error) {
		return n.doListen(ctx, network, host, port)
	})
	if err != nil {
		return nil, opErr("listen", network, address, err)
	}
	return l, nil
}

// ListenPacket opens a UDP socket on the device: sock_open (type 2) and,
// when address is not empty, sock_bind to it (port 0: any port).
func (n *Net) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, opErr("listen", network, address, net.UnknownNetworkError(network))
	}
	host, port, bind := "", 0, false
	if address != "" {
		var err error
		if host, port, err = splitAddr(network, address); err != nil {
			return nil, opErr("listen", network, address, err)
		}
		bind = true
	}
	pc, err := runJob(n, ctx, func(ctx context.Context) (*PacketConn, error) {
		return n.doListenPacket(ctx, network, host, port, bind)
	})
	if err != nil {
		return nil, opErr("listen", network, address, err)
	}
	return pc, nil
}

// LookupNetIP resolves host on the device (the dns op) and keeps the
// addresses of network's family: "ip4", "ip6" or "ip" for both. A name
// that does not resolve gives a *net.DNSError with IsNotFound.
func (n *Net) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	keep := func(a netip.Addr) bool {
		switch network {
		case "ip4":
			return a.Is4()
		case "ip6":
			return a.Is6()
		}
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !keep(a.Unmap()) {
			return nil, &net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true}
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	r, err := runJob(n, ctx, func(ctx context.Context) (any, error) {
		return n.call(ctx, OpDNS, map[string]any{"host": host})
	})
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == CodeDNS {
			return nil, &net.DNSError{Err: "no such host: " + re.Detail, Name: host, IsNotFound: true}
		}
		return nil, &net.DNSError{Err: err.Error(), Name: host, IsTemporary: true, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
	}
	var out []netip.Addr
	list, _ := r.([]any)
	for _, e := range list {
		a, ok := entryAddr(e)
		if ok && keep(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

// entryAddr reads the ip of one getaddrinfo entry [family, type, proto,
// canonname, (ip, port)].
func entryAddr(e any) (netip.Addr, bool) {
	t, ok := e.([]any)
	if !ok || len(t) < 5 {
		return netip.Addr{}, false
	}
	sa, ok := t[4].([]any)
	if !ok || len(sa) < 1 {
		return netip.Addr{}, false
	}
	s, ok := sa[0].(string)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// WiFiStatus asks the device whether it is on the WiFi and its address.
func (n *Net) WiFiStatus(ctx context.Context) (connected bool, ip string, err error) {
	r, err := runJob(n, ctx, func(ctx context.Context) (any, error) {
		return n.call(ctx, OpWiFiStatus, nil)
	})
	if err != nil {
		return false, "", err
	}
	m, _ := r.(map[string]any)
	connected, _ = m["connected"].(bool)
	if cfg, ok := m["ifconfig"].([]any); ok && len(cfg) > 0 {
		ip, _ = cfg[0].(string)
	}
	return connected, ip, nil
}
