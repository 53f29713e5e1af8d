package seedv3

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// PacketConn is a UDP socket on the device. WriteTo waits for its
// sock_sendto; ReadFrom returns datagrams that the scheduler's
// sock_recvfrom polls brought (up to 64 are held; more wait on the device,
// whose buffer drops what does not fit).
type PacketConn struct {
	s     *sock
	local net.Addr
}

var _ net.PacketConn = (*PacketConn)(nil)

// ReadFrom reads one datagram; a datagram longer than p is truncated.
func (pc *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	s := pc.s
	s.mu.Lock()
	for {
		switch {
		case s.closing:
			s.mu.Unlock()
			return 0, nil, net.ErrClosed
		case len(s.dgrams) > 0:
			d := s.dgrams[0]
			s.dgrams[0] = datagram{}
			s.dgrams = s.dgrams[1:]
			s.mu.Unlock()
			s.n.kick()
			return copy(p, d.data), d.from, nil
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, nil, err
		case expired(s.rdl):
			s.mu.Unlock()
			return 0, nil, os.ErrDeadlineExceeded
		}
		dl := s.rdl
		s.mu.Unlock()
		s.wait(s.rnotify, dl)
		s.mu.Lock()
	}
}

// WriteTo sends p to addr, whose String must be host:port; the host may be
// a name, which the device resolves.
func (pc *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	s := pc.s
	if addr == nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: syscall.EDESTADDRREQ}
	}
	host, portStr, err := net.SplitHostPort(addr.String())
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: err}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 0xFFFF {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: fmt.Errorf("bad port %q", portStr)}
	}
	if len(p) > s.n.maxDgram {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: syscall.EMSGSIZE}
	}
	d := &outDgram{data: append([]byte(nil), p...), host: host, port: port, done: make(chan error, 1)}
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return 0, net.ErrClosed
	case s.err != nil:
		err := s.err
		s.mu.Unlock()
		return 0, err
	case expired(s.wdl):
		s.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	s.sendq = append(s.sendq, d)
	dl := s.wdl
	s.mu.Unlock()
	s.n.kick()

	var tc <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		tc = t.C
	}
	select {
	case err := <-d.done:
		if err != nil {
			return 0, err
		}
		return len(p), nil
	case <-tc:
	case <-s.n.stopped:
	}
	s.mu.Lock()
	d.canceled = true
	s.mu.Unlock()
	select {
	case err := <-d.done: // it was sent (or failed) meanwhile
		if err != nil {
			return 0, err
		}
		return len(p), nil
	default:
	}
	if expired(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	return 0, net.ErrClosed
}

// Close closes the socket.
func (pc *PacketConn) Close() error {
	s := pc.s
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	for _, d := range s.sendq {
		if !d.canceled {
			d.done <- net.ErrClosed
		}
	}
	s.sendq = nil
	s.mu.Unlock()
	s.wakeAll()
	s.n.kick()
	return nil
}

// LocalAddr returns the address asked for (v3 has no getsockname).
func (pc *PacketConn) LocalAddr() net.Addr { return pc.local }

// SetDeadline sets both deadlines.
func (pc *PacketConn) SetDeadline(t time.Time) error {
	pc.SetReadDeadline(t)
	return pc.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of pending and future ReadFroms.
func (pc *PacketConn) SetReadDeadline(t time.Time) error {
	pc.s.mu.Lock()
	pc.s.rdl = t
	pc.s.mu.Unlock()
	notify(pc.s.rnotify)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future WriteTos.
func (pc *PacketConn) SetWriteDeadline(t time.Time) error {
	pc.s.mu.Lock()
	pc.s.wdl = t
	pc.s.mu.Unlock()
	notify(pc.s.wnotify)
	return nil
}
