package mux

import (
	"net"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// PacketConn is a UDP socket on the device. It implements net.PacketConn;
// addresses are Addr values (names allowed when writing).
type PacketConn struct{ st *Stream }

// PacketConn returns a UDP stream's datagram interface (device side, for
// a stream handed to Handler.ServeOpen).
func (st *Stream) PacketConn() *PacketConn { return &PacketConn{st: st} }

// ReadFrom reads one datagram; a datagram longer than p is truncated, as
// a UDP socket does.
func (pc *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	st := pc.st
	s := st.s
	s.mu.Lock()
	for {
		switch {
		case st.localClosed:
			s.mu.Unlock()
			return 0, nil, net.ErrClosed
		case expired(st.rdl):
			s.mu.Unlock()
			return 0, nil, ErrTimeout
		case len(st.dgramsIn) > 0:
			d := st.dgramsIn[0]
			st.dgramsIn[0] = datagram{}
			st.dgramsIn = st.dgramsIn[1:]
			st.consumedLocked(max1(len(d.data)))
			s.mu.Unlock()
			return copy(p, d.data), Addr{Net: "udp", Host: d.host, Port: d.port}, nil
		case st.err != nil:
			err := st.closedErr()
			s.mu.Unlock()
			return 0, nil, err
		}
		dl := st.rdl
		s.mu.Unlock()
		if err := wait(st.readCh, dl); err != nil && err != ErrTimeout {
			return 0, nil, err
		}
		s.mu.Lock()
	}
}

// WriteTo queues one datagram to addr; it blocks while the send queue is
// full.
func (pc *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	host, port, err := addrOf(addr)
	if err != nil {
		return 0, err
	}
	st := pc.st
	s := st.s
	s.mu.Lock()
	for {
		switch {
		case st.localClosed:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case st.err != nil:
			err := st.closedErr()
			s.mu.Unlock()
			return 0, err
		case expired(st.wdl):
			s.mu.Unlock()
			return 0, ErrTimeout
		}
		m := message.Message{Type: message.TypeDgram, SID: st.id, Host: host, Port: port, Data: p}
		enc, _ := message.Append(nil, &m)
		if len(enc) > s.peer.MaxPayload || len(p) > maxDatagram || uint32(max1(len(p))) > st.window {
			s.mu.Unlock()
			return 0, ErrTooLarge
		}
		if st.sendQueued+len(p) <= s.cfg.SendBuffer || st.sendQueued == 0 {
			st.dgramsOut = append(st.dgramsOut, datagram{host: host, port: port, data: append([]byte(nil), p...)})
			st.sendQueued += len(p)
			st.kickLocked()
			s.mu.Unlock()
			return len(p), nil
		}
		dl := st.wdl
		s.mu.Unlock()
		if err := wait(st.writeCh, dl); err != nil && err != ErrTimeout {
			return 0, err
		}
		s.mu.Lock()
	}
}

// MaxDatagram is the largest datagram WriteTo accepts to host now.
func (pc *PacketConn) MaxDatagram(host string) int {
	s := pc.st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	overhead := 1 + 1 + 5 + 1 + len(host) + 2 + 3 + 3
	return max(0, min(s.peer.MaxPayload-overhead, int(pc.st.window)))
}

// Close closes the socket on the device.
func (pc *PacketConn) Close() error { return pc.st.Close() }

// LocalAddr returns the address the device bound.
func (pc *PacketConn) LocalAddr() net.Addr {
	a := pc.st.LocalAddr().(Addr)
	a.Net = "udp"
	return a
}

func (pc *PacketConn) SetDeadline(t time.Time) error      { return pc.st.SetDeadline(t) }
func (pc *PacketConn) SetReadDeadline(t time.Time) error  { return pc.st.SetReadDeadline(t) }
func (pc *PacketConn) SetWriteDeadline(t time.Time) error { return pc.st.SetWriteDeadline(t) }

// Stream returns the underlying stream.
func (pc *PacketConn) Stream() *Stream { return pc.st }
