package seedv3

import (
	"io"
	"net"
	"os"
	"time"
)

// Conn is a TCP connection made by the device (DialContext, DialTLS or a
// Listener's Accept). It implements net.Conn with working deadlines.
//
// Write queues up to NetConfig.SendBuffer bytes and returns; the scheduler
// sends them in sock_send calls that fit one frame, and a failure shows in
// a later Write (or Read). Read returns what the scheduler's sock_recv
// polls brought, then io.EOF when the device says eof. Close sends what is
// queued, then sock_close, in the background.
type Conn struct {
	s      *sock
	local  net.Addr
	remote net.Addr
}

var _ net.Conn = (*Conn)(nil)

// Read reads received data.
func (c *Conn) Read(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	for {
		switch {
		case s.closing:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case s.rbuf.Len() > 0:
			n, _ := s.rbuf.Read(p)
			s.mu.Unlock()
			s.n.kick() // there is room for another recv
			return n, nil
		case s.eof:
			s.mu.Unlock()
			return 0, io.EOF
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, err
		case len(p) == 0:
			s.mu.Unlock()
			return 0, nil
		case expired(s.rdl):
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		case expired(s.lingerEnd()):
			s.mu.Unlock()
			return 0, io.EOF
		}
		dl := s.rdl
		if le := s.lingerEnd(); !le.IsZero() && (dl.IsZero() || le.Before(dl)) {
			dl = le
		}
		s.mu.Unlock()
		s.wait(s.rnotify, dl)
		s.mu.Lock()
	}
}

// Write queues p for the device.
func (c *Conn) Write(p []byte) (int, error) {
	s := c.s
	limit := s.n.cfg.SendBuffer
	written := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.closing:
			return written, net.ErrClosed
		case s.err != nil:
			return written, s.err
		case len(p) == 0:
			return written, nil
		case expired(s.wdl):
			return written, os.ErrDeadlineExceeded
		}
		if room := limit - s.wq.Len(); room > 0 {
			k := min(room, len(p))
			s.wq.Write(p[:k])
			p = p[k:]
			written += k
			s.n.kick()
			continue
		}
		dl := s.wdl
		s.mu.Unlock()
		s.wait(s.wnotify, dl)
		s.mu.Lock()
	}
}

// Close closes the connection: blocked and later Reads and Writes return
// net.ErrClosed; the scheduler sends the queued bytes, then sock_close.
func (c *Conn) Close() error {
	s := c.s
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	s.wakeAll()
	s.n.kick()
	return nil
}

// HalfCloseLinger is how long a Conn keeps reading after CloseWrite while
// nothing arrives (see CloseWrite).
const HalfCloseLinger = 5 * time.Second

// CloseWrite stands in for a half-close, which v3 cannot do (it has no
// shutdown op): the peer sees the end of the stream only when the
// connection is closed. So that a relay whose client has finished sending
// does not wait forever on a peer that is waiting for more (an HTTP server
// keeping the connection alive), Read keeps delivering what arrives and
// reports io.EOF once nothing has arrived for HalfCloseLinger; the caller
// then closes the connection. A peer that answers within that time after
// the last byte is served in full.
func (c *Conn) CloseWrite() error {
	s := c.s
	s.mu.Lock()
	if s.wrClosed.IsZero() {
		s.wrClosed = time.Now()
	}
	s.mu.Unlock()
	notify(s.rnotify)
	return nil
}

// lingerEnd is when a half-closed conn's Read reports io.EOF; zero if
// CloseWrite was not called. s.mu is held.
func (s *sock) lingerEnd() time.Time {
	if s.wrClosed.IsZero() {
		return time.Time{}
	}
	last := s.wrClosed
	if s.lastRx.After(last) {
		last = s.lastRx
	}
	return last.Add(HalfCloseLinger)
}

// LocalAddr returns the address the connection is from, as far as the
// host knows: v3 has no getsockname, so a dialed connection reports
// 0.0.0.0:0 and an accepted one its listener's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the address dialed (a *net.TCPAddr when it was an IP
// address, else the name and port) or the peer of an accepted connection.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of pending and future Reads.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.s.mu.Lock()
	c.s.rdl = t
	c.s.mu.Unlock()
	notify(c.s.rnotify)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.s.mu.Lock()
	c.s.wdl = t
	c.s.mu.Unlock()
	notify(c.s.wnotify)
	return nil
}

// SID returns the device's socket id, for logs.
func (c *Conn) SID() int64 { return c.s.sid }

// hostAddr is an address given by name: its String is host:port.
type hostAddr struct {
	network string
	host    string
	port    int
}

func (a *hostAddr) Network() string { return a.network }
func (a *hostAddr) String() string  { return net.JoinHostPort(a.host, itoa(a.port)) }
