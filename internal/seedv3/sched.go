package seedv3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// work is what a socket's turn does.
type work uint8

const (
	workNone  work = iota
	workWrite      // sock_send / sock_sendto
	workRead       // sock_recv / sock_accept / sock_recvfrom
	workClose      // sock_close
)

var workNames = [...]string{workNone: "none", workWrite: "write", workRead: "read", workClose: "close"}

func (w work) String() string {
	if int(w) < len(workNames) {
		return workNames[w]
	}
	return "work(?)"
}

// run is the scheduler: the only goroutine that calls the Client for a
// Net. Each round it pings when due, then runs a queued job (open, dns,
// wifi_status) or serves the next socket with work in round-robin order,
// alternating the two when both wait; with nothing to do it sleeps until
// the next poll is due or somebody kicks it.
func (n *Net) run() {
	defer close(n.stopped)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	n.nextPing = time.Now() // a first ping sets the uptime baseline
	for {
		select {
		case <-n.done:
			n.shutdown()
			return
		default:
		}
		now := time.Now()
		if !now.Before(n.nextPing) {
			n.housekeep()
			continue
		}
		t := n.pick(now)
		n.mu.Lock()
		jobs := len(n.jobs)
		var j *job
		if jobs > 0 && (t.s == nil || !n.lastWasJob) {
			j = n.jobs[0]
			n.jobs = n.jobs[1:]
		}
		n.mu.Unlock()
		if j != nil {
			n.runOne(j)
			n.lastWasJob = true
			continue
		}
		if t.s != nil {
			n.lastWasJob = false
			t.others += jobs
			n.serve(t)
			continue
		}
		wake := n.nextPing
		if !t.nextDue.IsZero() && t.nextDue.Before(wake) {
			wake = t.nextDue
		}
		idle.Reset(time.Until(wake))
		select {
		case <-n.wake:
		case <-idle.C:
		case <-n.done:
		}
		idle.Stop()
	}
}

// runOne runs a job with a context that also ends when the Net closes.
func (n *Net) runOne(j *job) {
	ctx, cancel := context.WithCancel(j.ctx)
	stop := context.AfterFunc(n.ctx, cancel)
	j.fn(ctx)
	stop()
	cancel()
	if j.err == nil && n.ctx.Err() != nil {
		j.err = net.ErrClosed
	}
	close(j.done)
}

// call makes one call to the device. A *DownError (no RESP before the
// deadline) fails every socket.
func (n *Net) call(ctx context.Context, op string, args map[string]any) (any, error) {
	n.count(func(s *NetStats) { s.Ops[op]++ })
	r, err := n.c.Call(ctx, op, args)
	var de *DownError
	if errors.As(err, &de) {
		n.linkDown(err)
	}
	return r, err
}

// turn is what the scheduler does next with one socket, and what it
// knows about the others.
type turn struct {
	s       *sock
	w       work
	others  int       // other sockets with work now, plus queued jobs
	shared  bool      // another socket moved data within sharedHold
	nextDue time.Time // the earliest poll due among sockets without work
}

// sharedHold is how long after another socket moved data a read poll
// still asks for SharedRecv bytes at most.
const sharedHold = time.Second

// pick compacts the ring and returns the turn of the first socket after
// the cursor that has work (none: t.s is nil).
func (n *Net) pick(now time.Time) (t turn) {
	kept, cur := n.ring[:0], -1
	for i, s := range n.ring {
		if !s.gone {
			kept = append(kept, s)
			if i <= n.cursor {
				cur = len(kept) - 1
			}
		}
	}
	clear(n.ring[len(kept):])
	n.ring = kept
	if cur < 0 {
		cur = len(kept) - 1
	}
	n.cursor = cur
	chosenAt, busy, recent := -1, 0, 0
	for i := 1; i <= len(n.ring); i++ {
		idx := (n.cursor + i) % len(n.ring)
		s := n.ring[idx]
		if now.Sub(s.lastData) < sharedHold {
			recent++
		}
		wk, due := n.workOf(s, now)
		if wk == workNone {
			if !due.IsZero() && (t.nextDue.IsZero() || due.Before(t.nextDue)) {
				t.nextDue = due
			}
			continue
		}
		busy++
		if t.s == nil {
			t.s, t.w, chosenAt = s, wk, idx
		}
	}
	if t.s != nil {
		n.cursor = chosenAt
		t.others = busy - 1
		if now.Sub(t.s.lastData) < sharedHold {
			recent--
		}
		t.shared = recent > 0
	}
	return t
}

// workOf decides a socket's turn: a queued write, or a read poll that is
// due, alternating when both wait; sock_close once a closed socket's
// writes are out. For a socket without work it returns when its next
// read poll is due (zero when it wants none).
func (n *Net) workOf(s *sock, now time.Time) (work, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		n.remove(s)
		return workNone, time.Time{}
	}
	var hasWrite, readWanted bool
	switch s.kind {
	case kindConn:
		hasWrite = s.wq.Len() > 0
		if s.closing && !hasWrite {
			return workClose, time.Time{}
		}
		readWanted = !s.closing && !s.eof && n.cfg.RecvBuffer-s.rbuf.Len() >= n.minRoom()
	case kindListener:
		if s.closing {
			return workClose, time.Time{}
		}
		readWanted = len(s.accepts) < n.cfg.AcceptQueue
	case kindPacket:
		if s.closing {
			return workClose, time.Time{}
		}
		for len(s.sendq) > 0 && s.sendq[0].canceled {
			s.sendq = s.sendq[1:]
		}
		hasWrite = len(s.sendq) > 0
		readWanted = len(s.dgrams) < maxQueuedDgrams
	}
	readDue := readWanted && !now.Before(s.nextPoll)
	switch {
	case hasWrite && (!readDue || !s.lastWrite):
		return workWrite, time.Time{}
	case readDue:
		return workRead, time.Time{}
	case hasWrite:
		return workWrite, time.Time{}
	case readWanted:
		return workNone, s.nextPoll
	}
	return workNone, time.Time{}
}

// minRoom is the free receive buffer below which a Conn is not polled.
func (n *Net) minRoom() int { return min(n.maxRecv, n.cfg.RecvBuffer/4) }

// pollTimeout is the timeout_ms of a read poll. LongPoll only when the
// socket is the only one with work, has nothing queued to write, and
// either a stream is flowing (its last poll filled at least half the
// request) or it awaits an answer (it wrote since data last came): then
// the device answers as soon as data arrives. It is cut to end when
// another socket's poll or the next ping is due. Otherwise ShortPoll: a
// blocking poll would hold up every other socket, and the socket's own
// next write.
func (n *Net) pollTimeout(t turn, ownWrites bool) int64 {
	short := max(n.cfg.ShortPoll.Milliseconds(), 1)
	if t.others > 0 || ownWrites || !(t.s.hot || t.s.awaiting) {
		return short
	}
	d := n.cfg.LongPoll
	if !t.nextDue.IsZero() {
		d = min(d, time.Until(t.nextDue))
	}
	d = min(d, time.Until(n.nextPing))
	return max(d.Milliseconds(), short)
}

// idle backs a socket's polls off after an empty one.
func (n *Net) idle(s *sock) {
	s.hot, s.awaiting = false, false
	s.backoff = min(max(2*s.backoff, n.cfg.MinIdle), n.cfg.MaxIdle)
	s.nextPoll = time.Now().Add(s.backoff)
	n.count(func(st *NetStats) { st.EmptyPolls++ })
}

// active resets a socket's backoff after data came (or a connection was
// accepted).
func (s *sock) active() {
	s.backoff = 0
	s.nextPoll = time.Now()
	s.lastData = s.nextPoll
}

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

// failAll ends every socket with err.
func (n *Net) failAll(err error) {
	for _, s := range n.ring {
		if !s.gone {
			s.fail(err)
			n.remove(s)
		}
	}
}

// linkDown handles a call that got no RESP before its deadline: the
// device is away, and its sockets with it. When it answers again, a
// sock_reset clears what it may still hold.
func (n *Net) linkDown(err error) {
	n.log.Warn().Err(err).Msg("seedv3: ESP32 not answering; failing its sockets")
	n.failAll(err)
	n.needReset = true
	n.havePing = false
	n.nextPing = time.Now()
	n.count(func(st *NetStats) { st.DeviceDowns++ })
}

// housekeep runs when a ping is due: the sock_reset owed after a reboot or
// an outage, else a ping that checks the uptime for a reboot.
func (n *Net) housekeep() {
	if n.needReset {
		if _, err := n.call(n.ctx, OpSockReset, nil); err == nil {
			n.needReset = false
			n.nextPing = time.Now()
		} else {
			n.nextPing = time.Now().Add(n.cfg.PingEvery)
		}
		return
	}
	sendAt := time.Now()
	r, err := n.call(n.ctx, OpPing, nil)
	recvAt := time.Now()
	n.nextPing = recvAt.Add(n.cfg.PingEvery)
	if err != nil {
		return
	}
	m, _ := r.(map[string]any)
	up, ok := asInt(m["t_ms"])
	if !ok {
		return
	}
	if n.havePing {
		// The device ran this ping after sendAt and the last one before
		// lastPingAt, so its uptime grew by at least the time between;
		// less (beyond clock drift) means it restarted.
		elapsed := sendAt.Sub(n.lastPingAt)
		tol := 50*time.Millisecond + elapsed/1000
		if up < n.lastUp+(elapsed-tol).Milliseconds() {
			n.rebooted(up)
		}
	}
	n.havePing, n.lastUp, n.lastPingAt = true, up, recvAt
}

// rebooted fails every socket with ECONNRESET and owes the device a
// sock_reset, which also closes any socket opened since the reboot.
func (n *Net) rebooted(up int64) {
	n.log.Warn().Int64("uptime_ms", up).Msg("seedv3: ESP32 rebooted; its sockets are gone")
	n.failAll(&ResetError{Reason: "ESP32 rebooted"})
	n.needReset = true
	n.nextPing = time.Now()
	n.count(func(st *NetStats) { st.Reboots++ })
}

// ensureReset sends the sock_reset owed before opening a socket.
func (n *Net) ensureReset(ctx context.Context) error {
	if !n.needReset {
		return nil
	}
	if _, err := n.call(ctx, OpSockReset, nil); err != nil {
		return err
	}
	n.needReset = false
	return nil
}

// shutdown ends every socket and closes them on the device.
func (n *Net) shutdown() {
	had := n.needReset
	for _, s := range n.ring {
		if !s.gone {
			had = true
		}
	}
	n.failAll(net.ErrClosed)
	if had && n.c.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.CloseTimeout)
		n.count(func(s *NetStats) { s.Ops[OpSockReset]++ })
		n.c.Call(ctx, OpSockReset, nil)
		cancel()
	}
	n.ring = nil
}

// abandonSID closes a socket an open gave up on.
func (n *Net) abandonSID(sid int64) {
	if n.ctx.Err() == nil {
		n.call(n.ctx, OpSockClose, map[string]any{"sid": sid})
	}
}

// openSID runs sock_open and returns the new sid.
func (n *Net) openSID(ctx context.Context, family, typ int64) (int64, error) {
	if err := n.ensureReset(ctx); err != nil {
		return 0, err
	}
	r, err := n.call(ctx, OpSockOpen, map[string]any{"family": family, "type": typ})
	if err != nil {
		return 0, err
	}
	m, _ := r.(map[string]any)
	sid, ok := asInt(m["sid"])
	if !ok {
		return 0, fmt.Errorf("%w: sock_open: no sid in %v", ErrBadResponse, r)
	}
	n.claimSID(sid)
	return sid, nil
}

func (n *Net) doDial(ctx context.Context, network, host string, port int, serverName string, useTLS bool) (*Conn, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeStream)
	if err != nil {
		return nil, err
	}
	timeout := n.cfg.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	_, err = n.call(ctx, OpSockConnect, map[string]any{
		"sid": sid, "host": host, "port": port, "timeout_ms": max(timeout.Milliseconds(), 1),
	})
	if err == nil && useTLS {
		_, err = n.call(ctx, OpSockWrapSSL, map[string]any{"sid": sid, "server_hostname": serverName})
		if err != nil && !errors.Is(err, ctx.Err()) {
			n.abandonSID(sid) // the firmware may keep the plain socket
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// A failed connect closed the socket on the device; one we gave
		// up on may still be there.
		if ctx.Err() != nil {
			n.abandonSID(sid)
		}
		n.count(func(st *NetStats) { st.DialErrors++ })
		return nil, err
	}
	s := n.addSock(sid, kindConn)
	s.tls = useTLS
	n.count(func(st *NetStats) { st.Dials++ })
	return &Conn{s: s, local: &net.TCPAddr{IP: net.IPv4zero}, remote: remoteAddr(network, host, port)}, nil
}

func (n *Net) doListen(ctx context.Context, network, host string, port int) (*Listener, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeStream)
	if err != nil {
		return nil, err
	}
	if _, err = n.call(ctx, OpSockBind, map[string]any{"sid": sid, "host": host, "port": port}); err == nil {
		_, err = n.call(ctx, OpSockListen, map[string]any{"sid": sid, "backlog": defaultBacklog})
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		n.abandonSID(sid)
		return nil, err
	}
	s := n.addSock(sid, kindListener)
	s.addr = tcpAddr(host, port)
	return &Listener{s: s, addr: s.addr}, nil
}

func (n *Net) doListenPacket(ctx context.Context, network, host string, port int, bind bool) (*PacketConn, error) {
	sid, err := n.openSID(ctx, familyFor(network, host), sockTypeDgram)
	if err != nil {
		return nil, err
	}
	if bind {
		_, err = n.call(ctx, OpSockBind, map[string]any{"sid": sid, "host": host, "port": port})
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		n.abandonSID(sid)
		return nil, err
	}
	s := n.addSock(sid, kindPacket)
	ua := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ipOr0(host), uint16(port)))
	return &PacketConn{s: s, local: ua}, nil
}

// listenerAddr is the local address of connections a listener accepts.
func (n *Net) listenerAddr(s *sock) net.Addr { return s.addr }

// Result helpers.

func bytesOf(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// addrPortOf reads an address (ip, port).
func addrPortOf(v any) (netip.AddrPort, bool) {
	t, ok := v.([]any)
	if !ok || len(t) < 2 {
		return netip.AddrPort{}, false
	}
	ip, _ := t[0].(string)
	port, ok := asInt(t[1])
	a, err := netip.ParseAddr(ip)
	if err != nil || !ok || port < 0 || port > 0xFFFF {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

func tcpAddrOf(v any) net.Addr {
	if ap, ok := addrPortOf(v); ok {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{IP: net.IPv4zero}
}

func udpAddrOf(v any) *net.UDPAddr {
	if ap, ok := addrPortOf(v); ok {
		return net.UDPAddrFromAddrPort(ap)
	}
	return nil
}

func ipOr0(host string) netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap()
	}
	return netip.IPv4Unspecified()
}

func tcpAddr(host string, port int) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ipOr0(host), uint16(port)))
}
