package mux

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
)

// Session is one end's view of the streams on a link. It outlives link
// sessions: when the link session ends every stream fails with a
// *LinkError, and new streams work again after the next handshake.
type Session struct {
	cfg Config
	log zerolog.Logger

	wake chan struct{} // to the link: Fill has something

	mu        sync.Mutex
	closed    bool
	up        bool
	peer      link.Session
	upCh      chan struct{} // closed while up; replaced on Down
	slotCh    chan struct{} // closed and replaced when a stream slot frees
	streams   map[uint32]*Stream
	nextID    uint32 // next id we allocate
	peerMaxID uint32 // highest id the peer has allocated this session
	ownOpen   int    // streams we opened that are not closed yet

	ctrl    []message.Message // control messages to send, in order
	credits []*Stream         // streams owing a CREDIT
	active  []*Stream         // streams with sendable data or FIN, round robin
	rr      int

	reqID    uint32
	pending  map[uint32]chan response
	handling int // REQUESTs being served by our Handler

	st stats
}

type response struct {
	code   message.Code
	result []byte
	err    error
}

// New returns a Session; hand it to link.New as the Upper.
func New(cfg Config) *Session {
	cfg = cfg.withDefaults()
	s := &Session{
		cfg:     cfg,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		upCh:    make(chan struct{}),
		slotCh:  make(chan struct{}),
		streams: make(map[uint32]*Stream),
		pending: make(map[uint32]chan response),
	}
	s.resetIDs()
	return s
}

func (s *Session) resetIDs() {
	if s.cfg.Role == message.RoleHost {
		s.nextID = 1
	} else {
		s.nextID = 2
	}
	s.peerMaxID = 0
}

// Close fails every stream and refuses new ones. It does not close the
// link; its owner does.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.failAllLocked(ErrSessionClosed)
	return nil
}

// Peer returns the current link session, if one is up.
func (s *Session) Peer() (link.Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer, s.up
}

// WaitUp blocks until a link session is up or ctx ends.
func (s *Session) WaitUp(ctx context.Context) error {
	s.mu.Lock()
	ch, closed := s.upCh, s.closed
	s.mu.Unlock()
	if closed {
		return ErrSessionClosed
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ErrNotConnected
	}
}

// Wake implements link.Upper.
func (s *Session) Wake() <-chan struct{} { return s.wake }

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Up implements link.Upper.
func (s *Session) Up(ls link.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up, s.peer = true, ls
	s.resetIDs()
	close(s.upCh)
	s.st.sessions.Add(1)
}

// Down implements link.Upper: every stream and request of the session
// fails with a *LinkError.
func (s *Session) Down(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		s.up = false
		s.upCh = make(chan struct{})
	}
	s.failAllLocked(&LinkError{Err: err})
}

func (s *Session) failAllLocked(err error) {
	for _, st := range s.streams {
		st.failLocked(err)
	}
	clear(s.streams)
	s.ownOpen = 0
	s.ctrl, s.credits, s.active = nil, nil, nil
	for id, ch := range s.pending {
		ch <- response{err: err}
		delete(s.pending, id)
	}
	s.freeSlotLocked()
}

func (s *Session) freeSlotLocked() {
	close(s.slotCh)
	s.slotCh = make(chan struct{})
}

// queueLocked adds a control message; a flood from a hostile peer is cut
// off rather than buffered without bound.
func (s *Session) queueLocked(m message.Message) {
	if len(s.ctrl) >= maxCtrlQueue {
		s.st.ctrlDropped.Add(1)
		return
	}
	s.ctrl = append(s.ctrl, m)
	s.signal()
}

func (s *Session) activateLocked(st *Stream) {
	if !st.active {
		st.active = true
		s.active = append(s.active, st)
		s.signal()
	}
}

// removeLocked forgets a finished stream and frees its slot.
func (s *Session) removeLocked(st *Stream) {
	if s.streams[st.id] != st {
		return
	}
	delete(s.streams, st.id)
	if st.own {
		s.ownOpen--
	}
	s.st.open.Add(-1)
	s.freeSlotLocked()
}

// ownID reports whether id is one this side allocates.
func (s *Session) ownID(id uint32) bool {
	host := id%2 == sidParityHost
	return host == (s.cfg.Role == message.RoleHost)
}

// Stats is a snapshot of a Session's counters.
type Stats struct {
	Sessions     uint64
	StreamsOpen  int64
	Opened       uint64
	Failed       map[string]uint64 // by code name
	BytesIn      uint64            // stream and datagram payload received
	BytesOut     uint64            // sent
	ProtoErrors  uint64
	CtrlDropped  uint64
	DgramDropped uint64
}

type stats struct {
	sessions, opened, bytesIn, bytesOut, protoErrors, ctrlDropped, dgramDropped atomic.Uint64
	open                                                                        atomic.Int64
	failed                                                                      [32]atomic.Uint64
}

func (st *stats) fail(c message.Code) { st.failed[int(c.Normalize())%len(st.failed)].Add(1) }

// Stats returns a snapshot of the counters.
func (s *Session) Stats() Stats {
	out := Stats{
		Sessions: s.st.sessions.Load(), StreamsOpen: s.st.open.Load(), Opened: s.st.opened.Load(),
		BytesIn: s.st.bytesIn.Load(), BytesOut: s.st.bytesOut.Load(), ProtoErrors: s.st.protoErrors.Load(),
		CtrlDropped: s.st.ctrlDropped.Load(), DgramDropped: s.st.dgramDropped.Load(),
		Failed: map[string]uint64{},
	}
	for i := range s.st.failed {
		if v := s.st.failed[i].Load(); v > 0 {
			out.Failed[message.Code(i).String()] = v
		}
	}
	return out
}
