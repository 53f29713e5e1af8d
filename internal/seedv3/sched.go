package seedv3

import (
	"context"
	"errors"
	"net"
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
	switch {
	case errors.As(err, &de):
		n.linkDown(err)
	case err == nil || errors.As(err, new(*RemoteError)):
		n.lastAnswer.Store(time.Now().UnixNano())
		if n.down {
			n.log.Info().Msg("seedv3: ESP32 answering again")
		}
		n.down = false
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
