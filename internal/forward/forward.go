package forward

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// ErrClosed is returned by Start after Shutdown or Close.
var ErrClosed = errors.New("forward: closed")

// state of a Forward
const (
	stateNew      = iota // not started
	stateRunning         // accepting clients
	stateDraining        // Shutdown: no new clients, active ones finish
	stateClosed          // everything closed or being closed
)

// Forward is one running port forward. Its methods may be called from any
// goroutine.
type Forward struct {
	cfg    Config
	log    zerolog.Logger
	warn   warnLimiter
	target net.Addr // where UDP datagrams go on the device's side

	// acceptCtx is cancelled when accepting stops (Shutdown or Close): it
	// aborts device Listen attempts and the remote loop's backoff.
	acceptCtx  context.Context
	stopAccept context.CancelFunc
	// connCtx is cancelled when connections are cut (Close, or Shutdown's
	// deadline): it aborts Dial, DialLocal and ListenPacket.
	connCtx  context.Context
	cutConns context.CancelFunc

	closeOnce sync.Once
	wg        sync.WaitGroup // every goroutine the forward starts

	mu     sync.Mutex
	state  int
	addr   net.Addr           // local listener address
	ln     net.Listener       // local TCP
	devLn  net.Listener       // remote: the device listener, while it is open
	pairs  map[*pair]struct{} // TCP connections being served
	udp    *net.UDPConn       // local UDP
	udpEnd chan struct{}      // closed when udp is closed
	sess   map[netip.AddrPort]*udpSession
	lru    list.List     // of *udpSession, most recently active first
	kick   chan struct{} // wakes the UDP janitor; capacity 1

	active    atomic.Int64
	accepted  atomic.Uint64
	rejected  atomic.Uint64
	bytesUp   atomic.Uint64
	bytesDown atomic.Uint64
	failed    [len(reasons)]atomic.Uint64
	listening atomic.Bool
}

// New checks cfg and returns a Forward that is not started yet.
func New(cfg Config) (*Forward, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, fmt.Errorf("forward %s: %w", cfg.Spec, err)
	}
	f := &Forward{
		cfg:    cfg,
		log:    cfg.Logger.With().Str("forward", cfg.Spec.String()).Logger(),
		warn:   warnLimiter{every: warnEvery},
		pairs:  make(map[*pair]struct{}),
		sess:   make(map[netip.AddrPort]*udpSession),
		udpEnd: make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
	if ip, err := netip.ParseAddr(cfg.Spec.Host); err == nil {
		f.target = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, cfg.Spec.HostPort))
	} else {
		f.target = hostPort(cfg.Spec.Target())
	}
	f.acceptCtx, f.stopAccept = context.WithCancel(context.Background())
	f.connCtx, f.cutConns = context.WithCancel(context.Background())
	return f, nil
}

// hostPort is a UDP destination the device resolves.
type hostPort string

func (hostPort) Network() string  { return "udp" }
func (a hostPort) String() string { return string(a) }

// Start starts the forward. A local forward binds its listener now and
// returns the error if it cannot (address in use, say), then serves in
// the background. A remote forward starts its listen loop, which keeps
// trying while the device is not there; it fails only if the forward was
// started or closed before. The errors do not name the forward: the
// caller knows which one it started.
func (f *Forward) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.state {
	case stateNew:
	case stateClosed:
		return ErrClosed
	default:
		return errors.New("forward: already started")
	}
	sp := f.cfg.Spec
	var lc net.ListenConfig
	switch {
	case sp.Remote:
		f.wg.Add(1)
		go f.remoteLoop()
	case sp.UDP:
		pc, err := lc.ListenPacket(context.Background(), "udp", sp.ListenAddr())
		if err != nil {
			return f.bindError(err)
		}
		udp, ok := pc.(*net.UDPConn)
		if !ok { // not for network "udp"; kept from panicking all the same
			pc.Close()
			return fmt.Errorf("listen udp %s: got a %T", sp.ListenAddr(), pc)
		}
		f.udp = udp
		f.addr = pc.LocalAddr()
		f.wg.Add(2)
		go f.readUDP(f.udp)
		go f.udpJanitor()
	default:
		ln, err := lc.Listen(context.Background(), "tcp", sp.ListenAddr())
		if err != nil {
			return f.bindError(err)
		}
		f.ln = ln
		f.addr = ln.Addr()
		f.wg.Add(1)
		go f.acceptLocal(ln)
	}
	f.state = stateRunning
	if !sp.Remote {
		f.listening.Store(true)
		f.log.Info().Stringer("addr", f.addr).Msg("listening")
	}
	return nil
}

// bindError tells the user what to do about a local listen that failed;
// err (a *net.OpError) already names the address.
func (f *Forward) bindError(err error) error {
	hint := ""
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = " (another program uses this port: stop it or choose another port)"
	case errors.Is(err, syscall.EACCES):
		hint = " (ports below 1024 need privileges: choose a higher port)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = " (the bind address is not one of this host's addresses)"
	}
	return fmt.Errorf("%w%s", err, hint)
}

// Addr returns the local listener's address once a local forward has
// started, and nil for a remote forward.
func (f *Forward) Addr() net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}

// Shutdown stops accepting clients and waits for the active ones to
// finish; when ctx is done first, it closes them and returns ctx.Err().
// A UDP client is finished once it has been quiet for a second (or
// UDPIdleTimeout, if shorter). Shutdown returns when no goroutine of the
// forward is left.
func (f *Forward) Shutdown(ctx context.Context) error {
	// First, so that the remote loop sees its listener closed on purpose
	// and does not report it lost.
	f.stopAccept()
	f.mu.Lock()
	switch f.state {
	case stateRunning:
		f.state = stateDraining
		f.drainLocked()
	case stateNew:
		f.mu.Unlock()
		return f.Close()
	}
	f.mu.Unlock()

	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return f.Close()
	case <-ctx.Done():
		f.Close()
		<-done
		return ctx.Err()
	}
}

// drainLocked stops accepting: it closes the listeners and lets the UDP
// janitor end quiet clients.
func (f *Forward) drainLocked() {
	f.listening.Store(false)
	if f.ln != nil {
		f.ln.Close()
	}
	if f.devLn != nil {
		f.devLn.Close()
	}
	if f.udp != nil {
		if len(f.sess) == 0 {
			f.closeUDPLocked()
		}
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// Close stops the forward and aborts every connection now (a TCP client
// gets a reset, so a cut transfer does not look complete). It returns
// when no goroutine of the forward is left; it may be called again.
func (f *Forward) Close() error {
	f.closeOnce.Do(func() {
		f.stopAccept()
		f.cutConns()
		f.mu.Lock()
		f.state = stateClosed
		f.listening.Store(false)
		if f.ln != nil {
			f.ln.Close()
		}
		if f.devLn != nil {
			f.devLn.Close()
		}
		for p := range f.pairs {
			p.abort()
		}
		var ends []func()
		for _, s := range f.sess {
			ends = append(ends, f.endSessionLocked(s))
		}
		f.closeUDPLocked()
		f.mu.Unlock()
		for _, end := range ends {
			end()
		}
	})
	f.wg.Wait()
	return nil
}

// Stats is a snapshot of a forward's counters.
type Stats struct {
	Spec      string // Spec.String()
	Network   string // "tcp" or "udp"
	Direction string // "local" or "remote"
	// Active counts TCP connections admitted and not finished, or UDP
	// client addresses remembered now.
	Active int64
	// Accepted counts clients admitted (TCP connections or new UDP client
	// addresses); Rejected counts those Admit refused.
	Accepted uint64
	Rejected uint64
	// Failed counts failures to open the other side (Dial, DialLocal or
	// ListenPacket) by reason; every reason is present, zero or not.
	Failed map[string]uint64
	// BytesUp is what went toward the ESP32's network side, BytesDown
	// what came back; both grow while data flows.
	BytesUp, BytesDown uint64
	// Listening: the local listener is open (local), or the device
	// listener is (remote).
	Listening bool
}

// Stats returns the forward's counters now.
func (f *Forward) Stats() Stats {
	sp := f.cfg.Spec
	st := Stats{
		Spec:      sp.String(),
		Network:   sp.Network(),
		Direction: "local",
		Active:    f.active.Load(),
		Accepted:  f.accepted.Load(),
		Rejected:  f.rejected.Load(),
		Failed:    make(map[string]uint64, len(reasons)),
		BytesUp:   f.bytesUp.Load(),
		BytesDown: f.bytesDown.Load(),
		Listening: f.listening.Load(),
	}
	if sp.Remote {
		st.Direction = "remote"
	}
	for i, r := range reasons {
		st.Failed[r] = f.failed[i].Load()
	}
	return st
}

// admit asks Config.Admit about one client and counts a refusal.
func (f *Forward) admit(client string) (release func(), ok bool) {
	release, ok = f.cfg.Admit()
	if !ok {
		f.rejected.Add(1)
		f.logLimited("rejected").Str("client", client).Msg("client refused: too many clients")
		return nil, false
	}
	if release == nil {
		release = func() {}
	}
	return release, true
}

// failOpen counts and logs a failure to open the other side. parent is
// the context the attempt was made under: when it was cancelled, the
// forward or the client was going away and nothing failed.
func (f *Forward) failOpen(parent context.Context, log zerolog.Logger, what string, err error) {
	if parent.Err() != nil {
		log.Debug().Err(err).Msg(what + ": cancelled")
		return
	}
	reason := classify(err)
	f.failed[reasonIndex(reason)].Add(1)
	ev := log.Debug()
	if f.warn.allow(reason) {
		ev = log.Warn()
	}
	ev.Str("reason", reason).Err(err).Msg("cannot " + what)
}

// logLimited returns a warning event if none was logged for reason
// lately, otherwise a debug event.
func (f *Forward) logLimited(reason string) *zerolog.Event {
	if f.warn.allow(reason) {
		return f.log.Warn()
	}
	return f.log.Debug()
}

// sleep waits for d, or returns false when accepting stops first.
func (f *Forward) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.acceptCtx.Done():
		return false
	}
}
