package seedv3

import (
	"net"
	"os"
	"time"
)

// Listener is a TCP socket listening on the device. The scheduler polls
// sock_accept and queues accepted connections (up to
// NetConfig.AcceptQueue) for Accept.
type Listener struct {
	s    *sock
	addr net.Addr
}

var _ net.Listener = (*Listener)(nil)

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	s := l.s
	s.mu.Lock()
	for {
		switch {
		case s.closing:
			s.mu.Unlock()
			return nil, net.ErrClosed
		case len(s.accepts) > 0:
			c := s.accepts[0]
			s.accepts = s.accepts[1:]
			s.mu.Unlock()
			s.n.kick()
			return c, nil
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return nil, err
		case expired(s.rdl):
			s.mu.Unlock()
			return nil, os.ErrDeadlineExceeded
		}
		dl := s.rdl
		s.mu.Unlock()
		s.wait(s.rnotify, dl)
		s.mu.Lock()
	}
}

// Close stops listening; connections accepted but not taken are closed.
func (l *Listener) Close() error {
	s := l.s
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	pending := s.accepts
	s.accepts = nil
	s.mu.Unlock()
	for _, c := range pending {
		c.Close()
	}
	s.wakeAll()
	s.n.kick()
	return nil
}

// Addr returns the address asked for: v3 has no getsockname, so a port 0
// stays 0.
func (l *Listener) Addr() net.Addr { return l.addr }

// SetDeadline sets the deadline of pending and future Accepts.
func (l *Listener) SetDeadline(t time.Time) error {
	l.s.mu.Lock()
	l.s.rdl = t
	l.s.mu.Unlock()
	notify(l.s.rnotify)
	return nil
}
