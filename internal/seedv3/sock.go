package seedv3

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// sockKind tells the three kinds of device socket apart.
type sockKind uint8

const (
	kindConn     sockKind = iota // a connected TCP stream (dialed or accepted)
	kindListener                 // a listening TCP socket
	kindPacket                   // a UDP socket
)

var sockKindNames = [...]string{kindConn: "conn", kindListener: "listener", kindPacket: "packet"}

func (k sockKind) String() string {
	if int(k) < len(sockKindNames) {
		return sockKindNames[k]
	}
	return "sockKind(?)"
}

// maxQueuedDgrams is how many received datagrams a PacketConn holds.
const maxQueuedDgrams = 64

// sock is the state of one device socket shared by its user (a Conn,
// Listener or PacketConn) and the scheduler. The scheduler alone owns the
// fields above mu; mu guards the rest. Blocked users wait on the
// capacity-1 notify channels.
type sock struct {
	n    *Net
	sid  int64
	kind sockKind
	tls  bool     // pass ssl=true to sock_recv
	addr net.Addr // a listener's address, for the Conns it accepts

	// Owned by the scheduler.
	backoff   time.Duration // idle-poll backoff; 0 after data
	nextPoll  time.Time     // no read poll before then
	lastWrite bool          // the socket's last turn was a write
	hot       bool          // the last read poll filled half its request: a stream flows
	awaiting  bool          // it wrote since data last came: an answer is likely
	lastData  time.Time     // when data last moved either way
	gone      bool          // removed from the ring

	mu       sync.Mutex
	err      error // terminal: the socket failed (the device has no such sid any more)
	closing  bool  // the user called Close
	closed   bool  // nothing more to do with the device
	remoteOK bool  // the device still has the sid (sock_close is due at Close)
	eof      bool
	rbuf     bytes.Buffer // conn: received, not yet read
	// conn: CloseWrite was called at wrClosed; lastRx is when data last
	// arrived. See Conn.CloseWrite.
	wrClosed, lastRx time.Time
	wq               bytes.Buffer // conn: written, not yet sent
	dgrams           []datagram   // packet: received
	sendq            []*outDgram  // packet: to send
	accepts          []*Conn      // listener: accepted, not yet taken
	rnotify          chan struct{}
	wnotify          chan struct{}
	rdl, wdl         time.Time
}

type datagram struct {
	data []byte
	from *net.UDPAddr
}

// outDgram is one WriteTo waiting for its sock_sendto.
type outDgram struct {
	data     []byte
	host     string
	port     int
	done     chan error // capacity 1
	canceled bool       // the writer gave up (under sock.mu)
}

func newSock(n *Net, sid int64, kind sockKind) *sock {
	return &sock{
		n: n, sid: sid, kind: kind, remoteOK: true,
		rnotify: make(chan struct{}, 1),
		wnotify: make(chan struct{}, 1),
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wakeAll wakes every blocked user. Call with mu held or not.
func (s *sock) wakeAll() {
	notify(s.rnotify)
	notify(s.wnotify)
}

// fail ends the socket with err; the device no longer has it (or will
// lose it by sock_reset), so no sock_close follows.
func (s *sock) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.closed = true
	s.remoteOK = false
	for _, d := range s.sendq {
		if !d.canceled {
			d.done <- err
		}
	}
	s.sendq = nil
	accepts := s.accepts
	s.accepts = nil
	s.mu.Unlock()
	s.wakeAll()
	for _, c := range accepts {
		c.s.fail(err)
	}
}

// wait blocks until ch is notified, deadline passes or the Net stops.
func (s *sock) wait(ch chan struct{}, deadline time.Time) {
	var tc <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-ch:
	case <-tc:
	case <-s.n.stopped:
	}
}

// expired reports whether deadline is set and has passed.
func expired(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}
