package seedv3

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// The socket turns of the scheduler: one op each.

// serve runs one turn.
func (n *Net) serve(t turn) {
	s := t.s
	if t.w == workClose {
		n.closeSock(s)
		return
	}
	switch s.kind {
	case kindConn:
		if t.w == workRead {
			n.connRead(t)
		} else if n.connWrite(s) {
			// The burst is out; an answer usually follows. Look now,
			// in the same turn, and keep looking from MinIdle on.
			s.hot, s.awaiting, s.backoff = false, true, 0
			n.connRead(t)
		}
	case kindListener:
		n.accept(t)
	case kindPacket:
		if t.w == workRead {
			n.recvFrom(t)
		} else if n.sendTo(s) {
			s.hot, s.awaiting, s.backoff = false, true, 0
			n.recvFrom(t)
		}
	}
}

// connWrite sends one chunk of s's queue and reports whether that
// emptied it.
func (n *Net) connWrite(s *sock) bool {
	s.mu.Lock()
	k := min(s.wq.Len(), n.maxSend)
	chunk := make([]byte, k)
	copy(chunk, s.wq.Bytes())
	s.mu.Unlock()
	s.lastWrite = true
	r, err := n.call(n.ctx, OpSockSend, map[string]any{"sid": s.sid, "data": chunk})
	if err != nil {
		n.sockErr(s, err)
		return false
	}
	m, _ := r.(map[string]any)
	sent, ok := asInt(m["n"])
	if !ok || sent <= 0 || sent > int64(k) {
		sent = int64(k)
	}
	s.mu.Lock()
	s.wq.Next(int(sent))
	empty := s.wq.Len() == 0
	s.mu.Unlock()
	notify(s.wnotify)
	s.lastData = time.Now()
	n.count(func(st *NetStats) { st.BytesUp += uint64(sent) })
	return empty
}

func (n *Net) connRead(t turn) {
	s := t.s
	s.mu.Lock()
	room := n.cfg.RecvBuffer - s.rbuf.Len()
	ownWrites := s.wq.Len() > 0
	skip := s.closed || s.closing || s.eof || room < n.minRoom()
	s.mu.Unlock()
	if skip {
		return
	}
	want := min(room, n.maxRecv)
	if t.others > 0 || t.shared {
		want = min(want, n.cfg.SharedRecv)
	}
	args := map[string]any{"sid": s.sid, "n": want, "timeout_ms": n.pollTimeout(t, ownWrites)}
	if s.tls {
		args["ssl"] = true
	}
	s.lastWrite = false
	r, err := n.call(n.ctx, OpSockRecv, args)
	if err != nil {
		if isPollTimeout(err) {
			n.idle(s)
			return
		}
		n.sockErr(s, err)
		return
	}
	m, _ := r.(map[string]any)
	data := bytesOf(m["data"])
	eof, _ := m["eof"].(bool)
	if len(data) > 0 || eof {
		s.mu.Lock()
		s.rbuf.Write(data)
		if len(data) > 0 {
			s.lastRx = time.Now()
		}
		s.eof = s.eof || eof
		s.mu.Unlock()
		notify(s.rnotify)
	}
	if len(data) > 0 {
		s.active()
		s.hot, s.awaiting = 2*len(data) >= want, false
		n.count(func(st *NetStats) { st.BytesDown += uint64(len(data)) })
	} else if !eof {
		n.idle(s)
	}
}

func (n *Net) accept(t turn) {
	s := t.s
	r, err := n.call(n.ctx, OpSockAccept, map[string]any{"sid": s.sid, "timeout_ms": n.pollTimeout(t, false)})
	if err != nil {
		if n.fatalPollErr(err) {
			n.sockErr(s, err)
		} else {
			n.idle(s)
		}
		return
	}
	m, _ := r.(map[string]any)
	sid, ok := asInt(m["sid"])
	if !ok {
		n.idle(s) // a firmware that answers a timeout with no sid
		return
	}
	n.claimSID(sid)
	cs := n.addSock(sid, kindConn)
	c := &Conn{s: cs, remote: tcpAddrOf(m["addr"])}
	s.mu.Lock()
	open := !s.closing && s.err == nil
	if open {
		c.local = n.listenerAddr(s)
		s.accepts = append(s.accepts, c)
	}
	s.mu.Unlock()
	if !open {
		c.Close()
	}
	notify(s.rnotify)
	s.active()
	s.hot = true
	n.count(func(st *NetStats) { st.Accepted++ })
}

// sendTo sends the first queued datagram of s and reports whether the
// queue is empty now.
func (n *Net) sendTo(s *sock) bool {
	s.mu.Lock()
	if len(s.sendq) == 0 {
		s.mu.Unlock()
		return false
	}
	d := s.sendq[0]
	s.sendq = s.sendq[1:]
	s.mu.Unlock()
	s.lastWrite = true
	_, err := n.call(n.ctx, OpSockSendTo, map[string]any{"sid": s.sid, "data": d.data, "host": d.host, "port": d.port})
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && isDNSFailure(re) {
			err = &net.DNSError{Err: "no such host: " + re.Detail, Name: d.host, IsNotFound: true}
		}
		d.done <- err
		if n.fatalPollErr(err) {
			n.sockErr(s, err)
		}
		return false
	}
	d.done <- nil
	s.lastData = time.Now()
	n.count(func(st *NetStats) { st.BytesUp += uint64(len(d.data)) })
	s.mu.Lock()
	empty := len(s.sendq) == 0
	s.mu.Unlock()
	return empty
}

func (n *Net) recvFrom(t turn) {
	s := t.s
	s.mu.Lock()
	ownWrites := len(s.sendq) > 0
	skip := s.closed || s.closing || len(s.dgrams) >= maxQueuedDgrams
	s.mu.Unlock()
	if skip {
		return
	}
	r, err := n.call(n.ctx, OpSockRecvFrom, map[string]any{"sid": s.sid, "n": n.maxDgram, "timeout_ms": n.pollTimeout(t, ownWrites)})
	s.lastWrite = false
	if err != nil {
		if n.fatalPollErr(err) {
			n.sockErr(s, err)
		} else {
			n.idle(s)
		}
		return
	}
	m, _ := r.(map[string]any)
	data := bytesOf(m["data"])
	from := udpAddrOf(m["addr"])
	if from == nil {
		n.idle(s) // a firmware that answers a timeout with an empty result
		return
	}
	s.mu.Lock()
	s.dgrams = append(s.dgrams, datagram{data: data, from: from})
	s.mu.Unlock()
	notify(s.rnotify)
	s.active()
	s.hot, s.awaiting = true, false
	n.count(func(st *NetStats) { st.BytesDown += uint64(len(data)) })
}

// fatalPollErr reports whether an error of a listener's or UDP socket's
// op ends the socket: the device lost it (invalid_sid), the link is down
// or the Net is closing. Other errors (a timeout, a datagram to a name
// that does not resolve) leave it open.
func (n *Net) fatalPollErr(err error) bool {
	var re *RemoteError
	var de *DownError
	switch {
	case errors.As(err, &de), n.ctx.Err() != nil:
		return true
	case errors.As(err, &re):
		return re.Code == CodeInvalidSID || re.Code == CodeInvalidSIDType
	}
	return true
}

// sockErr ends s after a failed op. The device closes a stream socket
// whose send or recv failed, so no sock_close follows; invalid_sid says it
// lost the socket, most likely in a reboot, which a ping checks at once.
func (n *Net) sockErr(s *sock, err error) {
	var de *DownError
	var re *RemoteError
	switch {
	case n.ctx.Err() != nil:
		return // closing: shutdown fails everything
	case errors.As(err, &de):
		return // linkDown failed every socket
	case errors.As(err, &re) && re.Code == CodeInvalidSID:
		n.log.Debug().Int64("sid", s.sid).Msg("seedv3: invalid_sid; checking for a reboot")
		s.fail(&ResetError{Reason: fmt.Sprintf("the ESP32 no longer has socket %d (invalid_sid)", s.sid)})
		n.nextPing = time.Now()
	default:
		s.fail(err)
	}
	n.remove(s)
}

// closeSock sends sock_close for a socket its user closed.
func (n *Net) closeSock(s *sock) {
	s.mu.Lock()
	remote := s.remoteOK
	s.closed, s.remoteOK = true, false
	if s.err == nil {
		s.err = net.ErrClosed
	}
	s.mu.Unlock()
	s.wakeAll()
	n.remove(s)
	if remote {
		n.call(n.ctx, OpSockClose, map[string]any{"sid": s.sid})
	}
}

// addSock puts a new socket into the ring.
func (n *Net) addSock(sid int64, kind sockKind) *sock {
	s := newSock(n, sid, kind)
	s.nextPoll = time.Now()
	n.ring = append(n.ring, s)
	n.count(func(st *NetStats) { st.Open++ })
	return s
}

// remove takes s out of the ring (at the next pick).
func (n *Net) remove(s *sock) {
	if !s.gone {
		s.gone = true
		n.count(func(st *NetStats) { st.Open-- })
	}
}

// claimSID handles a sid that the device just handed out: a live socket
// of ours with that sid is gone from the device (it would not reuse it
// otherwise), which happens after a reboot.
func (n *Net) claimSID(sid int64) {
	for _, s := range n.ring {
		if s.sid == sid && !s.gone {
			s.fail(&ResetError{Reason: fmt.Sprintf("the ESP32 reused socket id %d", sid)})
			n.remove(s)
			n.nextPing = time.Now()
		}
	}
}
