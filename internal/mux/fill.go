package mux

import (
	"net"

	"github.com/uartproxy/uartproxy/internal/message"
)

// Fill implements link.Upper. It builds one DATA payload: control messages
// first, then owed credit, then stream data round robin, one chunk per
// stream, so a small interactive write never waits behind more than one
// chunk of a bulk stream (docs/protocol.md §6.7).
func (s *Session) Fill(dst []byte, max int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return dst
	}
	for len(s.ctrl) > 0 {
		before := len(dst)
		out, err := message.Append(dst, &s.ctrl[0])
		if err != nil || len(out)-before > max {
			s.log.Error().Err(err).Stringer("type", s.ctrl[0].Type).Msg("dropping unencodable control message")
			s.ctrl = s.ctrl[1:]
			dst = out[:before]
			continue
		}
		if len(out) > max {
			return out[:before]
		}
		dst = out
		s.ctrl[0] = message.Message{}
		s.ctrl = s.ctrl[1:]
	}
	for len(s.credits) > 0 {
		st := s.credits[0]
		if len(dst)+16 > max {
			return dst
		}
		m := message.Message{Type: message.TypeCredit, SID: st.id, Increment: st.creditOwed}
		dst, _ = message.Append(dst, &m)
		st.rxAllowed += st.creditOwed
		st.creditOwed, st.inCredits = 0, false
		s.credits[0] = nil
		s.credits = s.credits[1:]
	}
	for n := len(s.active); n > 0 && len(s.active) > 0; n-- {
		if max-len(dst) < 32 {
			break
		}
		if s.rr >= len(s.active) {
			s.rr = 0
		}
		st := s.active[s.rr]
		var more bool
		dst, more = st.fillLocked(dst, max)
		if more {
			s.rr++
			continue
		}
		st.active = false
		last := len(s.active) - 1
		copy(s.active[s.rr:], s.active[s.rr+1:])
		s.active[last] = nil
		s.active = s.active[:last]
	}
	return dst
}

// fillLocked appends what st may send now; more reports whether it has
// more sendable right away.
func (st *Stream) fillLocked(dst []byte, max int) ([]byte, bool) {
	s := st.s
	if st.state != stateOpen || st.err != nil {
		return dst, false
	}
	if st.kind == message.KindUDP {
		for len(st.dgramsOut) > 0 {
			d := &st.dgramsOut[0]
			m := message.Message{Type: message.TypeDgram, SID: st.id, Host: d.host, Port: d.port, Data: d.data}
			cost := uint32(max1(len(d.data)))
			if cost > st.sendCredit {
				return dst, false // resumes on CREDIT
			}
			before := len(dst)
			out, _ := message.Append(dst, &m)
			if len(out) > max {
				return out[:before], true
			}
			dst = out
			st.sendCredit -= cost
			st.sendQueued -= len(d.data)
			s.st.bytesOut.Add(uint64(len(d.data)))
			st.dgramsOut[0] = datagram{}
			st.dgramsOut = st.dgramsOut[1:]
			notify(st.writeCh)
		}
		return dst, false
	}
	if st.send.Len() > 0 && st.sendCredit > 0 {
		n := min(st.send.Len(), int(st.sendCredit), message.DataFit(st.id, max-len(dst)))
		if n <= 0 {
			return dst, true
		}
		dst = message.AppendData(dst, st.id, st.send.Next(n))
		st.sendCredit -= uint32(n)
		s.st.bytesOut.Add(uint64(n))
		notify(st.writeCh)
	}
	if st.send.Len() == 0 && st.finPending && !st.finSent {
		if max-len(dst) < 24 {
			return dst, true
		}
		if st.localClosed && !st.recvEOF {
			// Closed without reading to the end: what we wrote is out,
			// now stop the peer sending what nobody will read (§8.5).
			m := message.Message{Type: message.TypeReset, SID: st.id, Code: message.CodeOK, Reason: "closed"}
			dst, _ = message.Append(dst, &m)
			st.failLocked(net.ErrClosed)
			s.removeLocked(st)
			return dst, false
		}
		m := message.Message{Type: message.TypeFin, SID: st.id}
		dst, _ = message.Append(dst, &m)
		st.finSent = true
		if st.recvEOF {
			st.finishLocked()
		}
		return dst, false
	}
	return dst, st.send.Len() > 0 && st.sendCredit > 0
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
