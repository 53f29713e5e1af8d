package mux

import (
	"context"
	"math"
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// handlers dispatches received messages by type (docs/protocol.md §7).
var handlers = [...]func(*Session, *message.Message){
	message.TypeOpen:     (*Session).onOpen,
	message.TypeOpenOK:   (*Session).onOpenOK,
	message.TypeReset:    (*Session).onReset,
	message.TypeData:     (*Session).onData,
	message.TypeFin:      (*Session).onFin,
	message.TypeCredit:   (*Session).onCredit,
	message.TypeDgram:    (*Session).onDgram,
	message.TypeAccept:   (*Session).onAccept,
	message.TypeRequest:  (*Session).onRequest,
	message.TypeResponse: (*Session).onResponse,
	message.TypeEvent:    (*Session).onEvent,
}

// Deliver implements link.Upper: it decodes one DATA payload and applies
// its messages in order (docs/protocol.md §7.15). A message with bad fields
// resets its stream or answers its request; an unknown type is skipped; a
// payload that cannot be split into items returns an error, which ends the
// link session, since messages may have been lost.
func (s *Session) Deliver(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return nil
	}
	for len(p) > 0 {
		m, rest, err := message.Parse(p)
		if err != nil {
			s.st.protoErrors.Add(1)
			s.log.Debug().Err(err).Str("reason", message.Reason(err)).Msg("bad message")
			if rest == nil {
				return err
			}
			s.rejectLocked(&m, err)
			p = rest
			continue
		}
		p = rest
		if m.SID == 0 && m.Type <= message.TypeAccept {
			continue // sid 0 is never used
		}
		handlers[m.Type](s, &m)
	}
	return nil
}

// rejectLocked answers a message whose array framed fine but whose fields
// did not parse.
func (s *Session) rejectLocked(m *message.Message, err error) {
	reason := "malformed " + m.Type.String()
	switch {
	case m.Type >= message.TypeOpen && m.Type <= message.TypeAccept && m.SID != 0:
		if st := s.streams[m.SID]; st != nil {
			s.protoErrorLocked(st, reason)
		} else {
			s.resetLocked(m.SID, message.CodeProtocol, reason)
		}
	case m.Type == message.TypeRequest && m.ID != 0:
		s.queueLocked(message.Message{Type: message.TypeResponse, ID: m.ID, Code: message.CodeProtocol})
	}
}

func (s *Session) resetLocked(sid uint32, code message.Code, reason string) {
	s.queueLocked(message.Message{Type: message.TypeReset, SID: sid, Code: code, Reason: reason})
}

// protoErrorLocked resets a stream whose peer broke the rules.
func (s *Session) protoErrorLocked(st *Stream, reason string) {
	s.st.protoErrors.Add(1)
	s.log.Debug().Uint32("stream", st.id).Str("reason", reason).Msg("protocol error on stream")
	s.resetLocked(st.id, message.CodeProtocol, reason)
	st.failLocked(&ResetError{Code: message.CodeProtocol, Reason: reason})
	s.removeLocked(st)
}

// knownClosed reports whether sid was in use earlier in this session, so
// late messages for it are ignored rather than answered (§8.8).
func (s *Session) knownClosed(sid uint32) bool {
	if s.ownID(sid) {
		return sid < s.nextID
	}
	return sid != 0 && sid <= s.peerMaxID
}

// lookupLocked finds the stream a message is for; unknown ids that were
// never used get a RESET.
func (s *Session) lookupLocked(sid uint32) *Stream {
	if st := s.streams[sid]; st != nil {
		return st
	}
	if !s.knownClosed(sid) {
		s.st.protoErrors.Add(1)
		s.resetLocked(sid, message.CodeProtocol, "unknown stream")
	}
	return nil
}

// claimPeerIDLocked checks an id the peer allocates for a new stream.
func (s *Session) claimPeerIDLocked(sid uint32) bool {
	if sid == 0 || s.ownID(sid) || sid <= s.peerMaxID {
		s.st.protoErrors.Add(1)
		s.resetLocked(sid, message.CodeProtocol, "bad stream id")
		return false
	}
	s.peerMaxID = sid
	return true
}

func (s *Session) onOpen(m *message.Message) {
	if !s.claimPeerIDLocked(m.SID) {
		return
	}
	if s.cfg.Handler == nil {
		s.resetLocked(m.SID, message.CodeUnsupported, "this side does not serve OPEN")
		return
	}
	switch {
	case m.Kind < message.KindTCP || m.Kind > message.KindService:
		s.resetLocked(m.SID, message.CodeUnsupported, "unknown kind")
		return
	case len(s.streams) >= s.cfg.MaxStreams:
		s.st.fail(message.CodeLimit)
		s.resetLocked(m.SID, message.CodeLimit, "too many streams")
		return
	}
	st := s.newStreamLocked(m.SID, m.Kind, false)
	st.state = stateServing
	st.sendCredit = m.Window
	st.remote = Addr{Net: netOf(m.Kind), Host: m.Host, Port: m.Port}
	req := OpenRequest{Kind: m.Kind, Host: m.Host, Port: m.Port, Opts: m.Opts}
	go s.cfg.Handler.ServeOpen(st, req)
}

func (s *Session) onOpenOK(m *message.Message) {
	st := s.streams[m.SID]
	if st == nil {
		return // we gave up on it already; our RESET is on its way
	}
	if st.state != stateOpening || !st.own {
		s.protoErrorLocked(st, "unexpected OPEN_OK")
		return
	}
	st.state = stateOpen
	st.sendCredit = m.Window
	if m.Host != "" || m.Port != 0 {
		st.local = Addr{Net: netOf(st.kind), Host: m.Host, Port: m.Port}
	}
	notify(st.openCh)
	st.kickLocked()
}

func (s *Session) onReset(m *message.Message) {
	st := s.streams[m.SID]
	if st == nil {
		return
	}
	code := m.Code.Normalize()
	if code != message.CodeOK {
		s.st.fail(code)
	}
	st.failLocked(&ResetError{Code: code, Reason: m.Reason, Remote: true})
	s.removeLocked(st)
}

// takeCreditLocked charges n bytes against what st allowed the peer.
func (s *Session) takeCreditLocked(st *Stream, n int) bool {
	if uint64(n) > uint64(st.rxAllowed) {
		s.protoErrorLocked(st, "credit exceeded")
		return false
	}
	st.rxAllowed -= uint32(n)
	s.st.bytesIn.Add(uint64(n))
	return true
}

func (s *Session) onData(m *message.Message) {
	st := s.lookupLocked(m.SID)
	if st == nil {
		return
	}
	switch {
	case st.kind == message.KindUDP || st.kind == message.KindListen:
		s.protoErrorLocked(st, "DATA on a "+st.kind.String()+" stream")
		return
	case st.state != stateOpen && !(st.state == stateOpening && st.pushed):
		s.protoErrorLocked(st, "DATA before OPEN_OK")
		return
	case st.recvEOF:
		s.protoErrorLocked(st, "DATA after FIN")
		return
	}
	if !s.takeCreditLocked(st, len(m.Data)) {
		return
	}
	if st.localClosed {
		st.consumedLocked(len(m.Data)) // nobody will read it; keep the peer moving
		return
	}
	st.recv.Write(m.Data)
	notify(st.readCh)
}

func (s *Session) onFin(m *message.Message) {
	st := s.lookupLocked(m.SID)
	if st == nil || st.recvEOF {
		return
	}
	st.recvEOF = true
	notify(st.readCh)
	if st.finSent {
		st.finishLocked()
	}
}

func (s *Session) onCredit(m *message.Message) {
	st := s.lookupLocked(m.SID)
	if st == nil {
		return
	}
	if uint64(st.sendCredit)+uint64(m.Increment) > math.MaxInt32 {
		s.protoErrorLocked(st, "credit overflow")
		return
	}
	st.sendCredit += m.Increment
	st.kickLocked()
}

func (s *Session) onDgram(m *message.Message) {
	st := s.lookupLocked(m.SID)
	if st == nil {
		return
	}
	if st.kind != message.KindUDP || st.state != stateOpen {
		s.protoErrorLocked(st, "DGRAM on a non-UDP stream")
		return
	}
	if !s.takeCreditLocked(st, max1(len(m.Data))) {
		return
	}
	if st.localClosed {
		return
	}
	st.dgramsIn = append(st.dgramsIn, datagram{host: m.Host, port: m.Port, data: m.Data})
	notify(st.readCh)
}

func (s *Session) onAccept(m *message.Message) {
	if !s.claimPeerIDLocked(m.SID) {
		return
	}
	ln := s.streams[m.Listener]
	switch {
	case s.cfg.Role != message.RoleHost:
		s.resetLocked(m.SID, message.CodeUnsupported, "ACCEPT goes device to host")
		return
	case ln == nil || ln.kind != message.KindListen || ln.localClosed:
		s.resetLocked(m.SID, message.CodeRefused, "listener closed")
		return
	case len(s.streams) >= s.cfg.MaxStreams || len(ln.acceptQ) >= s.cfg.AcceptBacklog:
		s.st.fail(message.CodeLimit)
		s.resetLocked(m.SID, message.CodeLimit, "accept backlog full")
		return
	}
	st := s.newStreamLocked(m.SID, message.KindTCP, false)
	st.state = stateOpen
	st.sendCredit = m.Window
	st.local = ln.local
	st.remote = Addr{Net: "tcp", Host: m.Host, Port: m.Port}
	s.queueLocked(message.Message{Type: message.TypeOpenOK, SID: m.SID, Window: st.window})
	ln.acceptQ = append(ln.acceptQ, st)
	notify(ln.readCh)
}

func (s *Session) onRequest(m *message.Message) {
	h := s.cfg.Handler
	if h == nil {
		s.queueLocked(message.Message{Type: message.TypeResponse, ID: m.ID, Code: message.CodeUnsupported})
		return
	}
	if s.handling >= s.cfg.MaxHandlerRequests {
		s.queueLocked(message.Message{Type: message.TypeResponse, ID: m.ID, Code: message.CodeLimit})
		return
	}
	s.handling++
	id, op, args := m.ID, m.Op, m.Args
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		result, code := h.ServeRequest(ctx, op, args)
		cancel()
		raw, err := message.Marshal(result)
		if err != nil {
			raw, code = nil, message.CodeInternal
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.handling--
		if s.up {
			s.queueLocked(message.Message{Type: message.TypeResponse, ID: id, Code: code, Result: raw})
		}
	}()
}

func (s *Session) onResponse(m *message.Message) {
	if ch, ok := s.pending[m.ID]; ok {
		delete(s.pending, m.ID)
		ch <- response{code: m.Code.Normalize(), result: m.Result}
	}
}

func (s *Session) onEvent(m *message.Message) {
	if f := s.cfg.OnEvent; f != nil {
		kind, value := m.Event, m.Value
		go f(kind, value)
	}
}

func netOf(k message.Kind) string {
	if k == message.KindUDP {
		return "udp"
	}
	return "tcp"
}
