package mux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

type streamState uint8

// Stream states (docs/protocol.md §8.3).
const (
	stateOpening streamState = iota // we sent OPEN or ACCEPT; waiting for OPEN_OK
	stateServing                    // the peer's OPEN reached our Handler; not answered yet
	stateOpen
	stateClosed
)

func (s streamState) String() string {
	return [...]string{"opening", "serving", "open", "closed"}[s]
}

type datagram struct {
	host string
	port uint16
	data []byte
}

// Stream is one stream: a TCP connection, a service, or (through
// PacketConn and Listener) a UDP socket or a listener on the device. It
// implements net.Conn with working deadlines.
type Stream struct {
	s    *Session
	id   uint32
	kind message.Kind
	own  bool // we allocated the id

	// Guarded by s.mu.
	state       streamState
	err         error
	pushed      bool // created by an ACCEPT we sent (device side)
	local       Addr
	remote      Addr
	window      uint32 // our receive window
	rxAllowed   uint32 // bytes the peer may still send
	creditOwed  uint32 // bytes consumed, not yet returned
	inCredits   bool
	recv        bytes.Buffer
	recvEOF     bool
	send        bytes.Buffer
	sendCredit  uint32
	finPending  bool
	finSent     bool
	localClosed bool
	active      bool
	dgramsIn    []datagram
	dgramsOut   []datagram
	sendQueued  int // bytes in dgramsOut
	acceptQ     []*Stream
	rdl, wdl    time.Time

	readCh, writeCh, openCh chan struct{}
}

func (s *Session) newStreamLocked(id uint32, kind message.Kind, own bool) *Stream {
	st := &Stream{
		s: s, id: id, kind: kind, own: own,
		window:    s.cfg.StreamWindow,
		rxAllowed: s.cfg.StreamWindow,
		readCh:    make(chan struct{}, 1),
		writeCh:   make(chan struct{}, 1),
		openCh:    make(chan struct{}, 1),
	}
	s.streams[id] = st
	if own {
		s.ownOpen++
	}
	s.st.open.Add(1)
	s.st.opened.Add(1)
	return st
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// ID returns the stream id.
func (st *Stream) ID() uint32 { return st.id }

// Kind returns what the stream carries.
func (st *Stream) Kind() message.Kind { return st.kind }

// LocalAddr returns the device-side local address when the device reported
// one.
func (st *Stream) LocalAddr() net.Addr {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.local
}

// RemoteAddr returns the address the stream was opened to, or the peer
// of an accepted connection.
func (st *Stream) RemoteAddr() net.Addr {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.remote
}

// failLocked ends the stream with err and wakes every waiter.
func (st *Stream) failLocked(err error) {
	if st.err == nil {
		st.err = err
	}
	st.state = stateClosed
	for _, a := range st.acceptQ {
		a.failLocked(err)
	}
	st.acceptQ = nil
	notify(st.readCh)
	notify(st.writeCh)
	notify(st.openCh)
}

// finishLocked retires a stream after FIN went both ways.
func (st *Stream) finishLocked() {
	st.state = stateClosed
	if st.err == nil {
		st.err = net.ErrClosed
	}
	st.s.removeLocked(st)
	notify(st.writeCh)
}

// kickLocked puts st on the send list if it can send something.
func (st *Stream) kickLocked() {
	if st.state != stateOpen {
		return
	}
	if (st.send.Len() > 0 && st.sendCredit > 0) || (st.finPending && !st.finSent && st.send.Len() == 0) ||
		(len(st.dgramsOut) > 0 && st.sendCredit >= uint32(max1(len(st.dgramsOut[0].data)))) {
		st.s.activateLocked(st)
	}
}

// consumedLocked records that n received bytes left the buffer and returns
// credit in batches (docs/protocol.md §9).
func (st *Stream) consumedLocked(n int) {
	st.creditOwed += uint32(n)
	if st.recvEOF || st.inCredits || st.creditOwed < max(st.window/creditBatchRatio, 1) {
		return
	}
	st.inCredits = true
	st.s.credits = append(st.s.credits, st)
	st.s.signal()
}

// wait blocks until ch is signalled or the deadline passes. Called without
// the lock.
func wait(ch chan struct{}, deadline time.Time) error {
	if deadline.IsZero() {
		<-ch
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return ErrTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return ErrTimeout
	}
}

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// closedErr maps the terminal error to what callers see after Close.
func (st *Stream) closedErr() error {
	if st.err != nil && !errors.Is(st.err, net.ErrClosed) {
		return st.err
	}
	return net.ErrClosed
}

// Read reads stream bytes; io.EOF after the peer's FIN.
func (st *Stream) Read(p []byte) (int, error) {
	s := st.s
	s.mu.Lock()
	for {
		switch {
		case st.localClosed:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case expired(st.rdl):
			s.mu.Unlock()
			return 0, ErrTimeout
		case st.recv.Len() > 0:
			n, _ := st.recv.Read(p)
			st.consumedLocked(n)
			s.mu.Unlock()
			return n, nil
		case st.recvEOF:
			s.mu.Unlock()
			return 0, io.EOF
		case st.err != nil:
			err := st.closedErr()
			s.mu.Unlock()
			return 0, err
		case len(p) == 0:
			s.mu.Unlock()
			return 0, nil
		}
		dl := st.rdl
		s.mu.Unlock()
		if err := wait(st.readCh, dl); err != nil && err != ErrTimeout {
			return 0, err
		}
		s.mu.Lock()
	}
}

// Write queues p for sending; it blocks while the send buffer is full.
func (st *Stream) Write(p []byte) (int, error) {
	s := st.s
	total := 0
	s.mu.Lock()
	for {
		switch {
		case st.localClosed:
			s.mu.Unlock()
			return total, net.ErrClosed
		case st.err != nil:
			err := st.closedErr()
			s.mu.Unlock()
			return total, err
		case st.finPending:
			s.mu.Unlock()
			return total, ErrWriteClosed
		case expired(st.wdl):
			s.mu.Unlock()
			return total, ErrTimeout
		case st.kind == message.KindUDP || st.kind == message.KindListen:
			s.mu.Unlock()
			return 0, ErrUnsupported
		}
		if space := s.cfg.SendBuffer - st.send.Len(); space > 0 && len(p) > 0 {
			n := min(space, len(p))
			st.send.Write(p[:n])
			p, total = p[n:], total+n
			st.kickLocked()
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return total, nil
		}
		dl := st.wdl
		s.mu.Unlock()
		if err := wait(st.writeCh, dl); err != nil && err != ErrTimeout {
			return total, err
		}
		s.mu.Lock()
	}
}

// CloseWrite sends FIN after the queued data: the peer reads EOF, and
// this side can still read.
func (st *Stream) CloseWrite() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.err != nil {
		return st.closedErr()
	}
	if st.kind != message.KindTCP && st.kind != message.KindService {
		return ErrUnsupported
	}
	st.finPending = true
	st.kickLocked()
	return nil
}

// Close closes the stream. A TCP stream first sends what was written;
// then, if the peer has finished too, a FIN, otherwise a RESET with code
// closed so the peer stops sending what nobody will read (as a TCP close
// with unread data does). SERVICE streams behave the same way; UDP sockets
// and listeners are reset with code closed at once.
func (st *Stream) Close() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.localClosed {
		return nil
	}
	st.localClosed = true
	defer func() {
		notify(st.readCh)
		notify(st.writeCh)
	}()
	if st.err != nil {
		s.removeLocked(st)
		return nil
	}
	if st.state != stateOpen || st.kind == message.KindUDP || st.kind == message.KindListen {
		st.resetLocked(message.CodeOK, "closed")
		return nil
	}
	if n := st.recv.Len(); n > 0 {
		st.recv.Reset()
		st.consumedLocked(n)
	}
	if st.finSent && st.recvEOF {
		st.finishLocked()
		return nil
	}
	st.finPending = true
	st.kickLocked()
	return nil
}

// Reset aborts the stream and tells the peer why.
func (st *Stream) Reset(code message.Code, reason string) {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.err == nil {
		st.resetLocked(code, reason)
	}
}

func (st *Stream) resetLocked(code message.Code, reason string) {
	s := st.s
	if s.up {
		s.resetLocked(st.id, code, reason)
	}
	st.failLocked(&ResetError{Code: code, Reason: reason})
	s.removeLocked(st)
}

// SetDeadline sets both deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline, also for a Read in progress.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.s.mu.Lock()
	st.rdl = t
	st.s.mu.Unlock()
	notify(st.readCh)
	return nil
}

// SetWriteDeadline sets the write deadline, also for a Write in progress.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.s.mu.Lock()
	st.wdl = t
	st.s.mu.Unlock()
	notify(st.writeCh)
	return nil
}

// Accept answers the peer's OPEN with OPEN_OK (device side); local is the
// address bound on the device, if any.
func (st *Stream) Accept(local Addr) error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.state != stateServing {
		return st.closedErr()
	}
	st.state = stateOpen
	st.local = local
	s.queueLocked(message.Message{Type: message.TypeOpenOK, SID: st.id, Window: st.window, Host: local.Host, Port: local.Port})
	st.kickLocked()
	return nil
}

// Reject refuses the peer's OPEN (device side).
func (st *Stream) Reject(code message.Code, reason string) {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.state == stateServing {
		s.st.fail(code)
		st.resetLocked(code, reason)
	}
}
