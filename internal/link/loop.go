package link

import (
	"fmt"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
)

// slot is one entry of the send window.
type slot struct {
	buf     []byte    // payload; storage reused across sequence numbers
	inUse   bool      // sent (or being sent) and not yet cumulatively acked
	acked   bool      // selectively acknowledged
	lost    bool      // queued for retransmission
	sentAt  time.Time // end of the last transmission; zero while in the writer
	txOrder uint64    // position of the last transmission on the wire
	prevOrd uint64    // position of the transmission before that
	retx    int
}

type rxSlot struct {
	present bool
	p       []byte
}

// loop owns every piece of ARQ and handshake state. Only run's goroutine
// touches it (docs/protocol.md §5, §6).
type loop struct {
	l   *Link
	cfg Config

	local       message.Hello // what we announce; Session changes per session
	peerSeen    uint32        // session id of the last HELLO received
	established bool
	sess        Session
	window      int
	maxPayload  int

	slots          [maxWindow]slot
	sndUna, sndNxt uint16
	lostQ          []uint16
	txOrder        uint64
	rtt            rttEstimator
	minRTT         time.Duration
	sizer          sizer
	cwnd           float64 // congestion window in frames (AIMD)
	recovering     bool    // a loss episode is open until sndUna passes recoverAt
	recoverAt      uint16

	rcv     [maxWindow]rxSlot
	rcvNxt  uint16
	ackOwed bool // a DATA frame has not been acknowledged yet
	ackNow  bool // acknowledge without waiting for data (gap, duplicate, ACKREQ)

	helloNow   bool
	nextHello  time.Time
	writerBusy bool
	inWriter   int // slot index of the DATA frame in the writer, or -1
	txFrame    []byte
	txWire     []byte

	lastRecv, lastSend time.Time
	lastProbe          time.Time
	echoWarned         bool
}

func newLoop(l *Link) *loop {
	lp := &loop{l: l, cfg: l.cfg, local: l.cfg.Hello, inWriter: -1}
	lp.local.Session = l.cfg.Session
	if lp.local.Session == 0 {
		lp.local.Session = newSessionID()
	}
	for i := range lp.slots {
		lp.slots[i].buf = make([]byte, 0, lp.local.MaxPayload)
	}
	lp.txFrame = make([]byte, 0, frame.MinLen+int(lp.local.MaxPayload))
	lp.txWire = make([]byte, 0, 2*(frame.MinLen+int(lp.local.MaxPayload))+2)
	lp.rtt = newRTT(lp.cfg.InitialRTO, lp.cfg.MinRTO, lp.cfg.MaxRTO)
	lp.l.c.localSession.Store(lp.local.Session)
	return lp
}

func (lp *loop) run() {
	l := lp.l
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wake := l.up.Wake()
	for {
		now := time.Now()
		lp.checkTimers(now)
		lp.pump(now)
		timer.Reset(lp.nextDeadline(now))
		select {
		case f := <-l.rx:
			lp.onFrame(f)
			// Take whatever else is ready before sending, so one ACK
			// covers a burst of frames.
			for drained := false; !drained; {
				select {
				case f := <-l.rx:
					lp.onFrame(f)
				default:
					drained = true
				}
			}
		case <-l.txDone:
			lp.onTxDone()
		case <-wake:
		case c := <-l.line:
			lp.onLineChange(c)
		case <-timer.C:
		case <-l.done:
			if lp.established {
				lp.endSession(l.err)
			} else {
				l.up.Down(l.err)
			}
			return
		}
	}
}

// pump hands the writer the most urgent frame, if it is idle
// (docs/protocol.md §6.7: HELLO and ACK never wait behind data;
// retransmissions go before new data).
func (lp *loop) pump(now time.Time) {
	if lp.writerBusy {
		return
	}
	if lp.helloNow || (!lp.established && !now.Before(lp.nextHello)) {
		lp.sendHello(now)
		return
	}
	if !lp.established {
		return
	}
	if lp.probeDue(now) {
		// Heard nothing for a while: a 14-byte ACKREQ gets through noise
		// that long frames do not, and its answer proves the peer alive
		// and brings its SACK state (docs/protocol.md §5.6).
		lp.lastProbe = now
		lp.transmit(now, frame.Header{Type: frame.Ack, Flags: frame.FlagAckReq}, nil, -1)
		return
	}
	if lp.ackNow {
		lp.transmit(now, frame.Header{Type: frame.Ack}, nil, -1)
		return
	}
	if lp.resend(now) || lp.sendNew(now) {
		return
	}
	if lp.ackOwed {
		lp.transmit(now, frame.Header{Type: frame.Ack}, nil, -1)
	}
}

// probeDue says a keepalive probe should go out: nothing valid has been
// heard for KeepAlive, and no probe went out within KeepAlive.
func (lp *loop) probeDue(now time.Time) bool {
	return now.Sub(lp.lastRecv) >= lp.cfg.KeepAlive && now.Sub(lp.lastProbe) >= lp.cfg.KeepAlive
}

func (lp *loop) sendHello(now time.Time) {
	h := lp.local
	h.PeerSession = lp.peerSeen
	h.Established = lp.established
	p, err := message.MarshalHello(h)
	if err != nil {
		lp.l.fail(err) // only a programming error can get here
		return
	}
	lp.helloNow = false
	lp.nextHello = now.Add(lp.cfg.HelloInterval)
	lp.transmit(now, frame.Header{Type: frame.Hello}, p, -1)
}

// resend retransmits the oldest frame known to be lost.
func (lp *loop) resend(now time.Time) bool {
	for len(lp.lostQ) > 0 {
		seq := lp.lostQ[0]
		lp.lostQ = lp.lostQ[1:]
		i := int(seq % maxWindow)
		s := &lp.slots[i]
		if !lp.inFlight(seq) || !s.lost || s.acked {
			continue
		}
		s.lost = false
		s.retx++
		lp.l.c.retransmits.Add(1)
		lp.transmit(now, frame.Header{Type: frame.Data, Flags: frame.FlagAckReq, Seq: seq}, s.buf, i)
		return true
	}
	return false
}

// sendNew asks the upper layer for a payload when the window has room.
func (lp *loop) sendNew(now time.Time) bool {
	if int(lp.sndNxt-lp.sndUna) >= min(lp.window, int(lp.cwnd)) {
		return false
	}
	seq := lp.sndNxt
	i := int(seq % maxWindow)
	s := &lp.slots[i]
	limit := lp.sizer.limit(lp.maxPayload)
	p := lp.l.up.Fill(s.buf[:0], limit)
	if len(p) == 0 {
		return false
	}
	if len(p) > limit {
		p = p[:limit] // a buggy Fill must not break the peer
	}
	*s = slot{buf: p, inUse: true}
	lp.sndNxt++
	lp.l.c.txData.Add(1)
	lp.l.c.txPayload.Add(uint64(len(p)))
	lp.l.c.inFlight.Store(int64(lp.sndNxt - lp.sndUna))
	lp.transmit(now, frame.Header{Type: frame.Data, Seq: seq}, p, i)
	return true
}

// transmit encodes one frame with the current acknowledgement state and
// gives it to the idle writer.
func (lp *loop) transmit(now time.Time, h frame.Header, payload []byte, slotIdx int) {
	if h.Type != frame.Hello { // HELLO carries no acknowledgement (§3.1)
		h.Ack = lp.rcvNxt
		h.Sack = lp.sackBits()
		lp.ackOwed, lp.ackNow = false, false
	}
	if slotIdx >= 0 {
		lp.txOrder++
		s := &lp.slots[slotIdx]
		s.prevOrd, s.txOrder = s.txOrder, lp.txOrder
		s.sentAt = time.Time{}
	}
	lp.txFrame = frame.Append(lp.txFrame[:0], h, payload)
	lp.txWire = slip.AppendEncode(lp.txWire[:0], lp.txFrame)
	lp.writerBusy = true
	lp.inWriter = slotIdx
	lp.lastSend = now
	lp.l.tx <- lp.txWire // capacity 1 and the writer is idle: never blocks
}

func (lp *loop) onTxDone() {
	lp.writerBusy = false
	if lp.inWriter >= 0 {
		if s := &lp.slots[lp.inWriter]; s.inUse {
			s.sentAt = time.Now()
		}
		lp.inWriter = -1
	}
}

func (lp *loop) sackBits() uint32 {
	var bits uint32
	for i := 0; i < lp.window-1; i++ {
		if lp.rcv[(lp.rcvNxt+1+uint16(i))%maxWindow].present {
			bits |= 1 << i
		}
	}
	return bits
}

func (lp *loop) inFlight(seq uint16) bool {
	return seq-lp.sndUna < lp.sndNxt-lp.sndUna
}

func (lp *loop) onFrame(f rxFrame) {
	c := lp.l.c
	switch f.h.Type {
	case frame.Hello:
		// HELLOs do not restart the dead timer (docs/protocol.md §5.6,
		// §15.1 rule 2): a peer that ended its session alone keeps
		// sending them, and must not be taken for a live session.
		lp.onHello(f.payload, f.at)
		return
	case frame.Data, frame.Ack:
		lp.lastRecv = f.at
	default:
		c.drop(DropBadType)
		return
	}
	if !lp.established {
		c.drop(DropNoSession)
		return
	}
	lp.onAck(f.h.Ack, f.h.Sack, f.at)
	if f.h.Flags&frame.FlagAckReq != 0 {
		lp.ackNow = true
	}
	if f.h.Type == frame.Data {
		lp.onData(f.h.Seq, f.payload)
	}
}

// onData implements the receiver rules of docs/protocol.md §6.3.
func (lp *loop) onData(seq uint16, p []byte) {
	c := lp.l.c
	d := int(seq - lp.rcvNxt)
	if d >= lp.window {
		if d >= 1<<15 {
			c.drop(DropDuplicate) // already delivered: our ACK was lost
		} else {
			c.drop(DropOutOfWin)
		}
		lp.ackNow = true
		return
	}
	r := &lp.rcv[seq%maxWindow]
	if d > 0 {
		if r.present {
			c.drop(DropDuplicate)
		} else {
			r.present, r.p = true, p
		}
		lp.ackNow = true // a gap: tell the sender at once
		return
	}
	lp.deliver(p)
	lp.rcvNxt++
	for lp.established {
		r := &lp.rcv[lp.rcvNxt%maxWindow]
		if !r.present {
			break
		}
		p := r.p
		*r = rxSlot{}
		lp.deliver(p)
		lp.rcvNxt++
	}
	if !lp.established {
		return
	}
	lp.ackOwed = true
	if lp.sackBits() != 0 {
		lp.ackNow = true
	}
}

func (lp *loop) deliver(p []byte) {
	if !lp.established {
		return // an earlier payload of this frame burst ended the session
	}
	lp.l.c.rxData.Add(1)
	if err := lp.l.up.Deliver(p); err != nil {
		lp.l.log.Warn().Err(err).Msg("unparseable payload from peer: ending session")
		lp.endSession(fmt.Errorf("%w: %v", ErrProtocol, err))
	}
}

// onAck processes a cumulative ack and SACK bitmap (docs/protocol.md §6.4).
func (lp *loop) onAck(ack uint16, sack uint32, now time.Time) {
	if ack-lp.sndUna > lp.sndNxt-lp.sndUna {
		lp.l.c.drop(DropBadAck)
		return
	}
	var newest uint64 // transmission order of the newest frame this ack covers
	take := func(s *slot) {
		lp.sizer.record(len(s.buf), false)
		if !lp.recovering {
			lp.cwnd = min(lp.cwnd+1/lp.cwnd, float64(lp.window))
		}
		order := s.txOrder
		switch {
		case s.retx == 0 && !s.sentAt.IsZero():
			d := now.Sub(s.sentAt)
			lp.rtt.sample(d)
			if lp.minRTT == 0 || d < lp.minRTT {
				lp.minRTT = d
			}
		case s.sentAt.IsZero() || now.Sub(s.sentAt) < lp.minRTT/2:
			// Too early to be the retransmission's ack: the earlier copy
			// arrived. Judging by the retransmission would declare
			// everything sent in between lost.
			order = s.prevOrd
		}
		newest = max(newest, order)
	}
	for lp.sndUna != ack {
		s := &lp.slots[lp.sndUna%maxWindow]
		if !s.acked {
			take(s)
		}
		*s = slot{buf: s.buf[:0]}
		lp.sndUna++
	}
	for i := 0; sack != 0 && i < 32; i++ {
		if sack&(1<<i) == 0 {
			continue
		}
		seq := ack + 1 + uint16(i)
		if !lp.inFlight(seq) {
			continue
		}
		if s := &lp.slots[seq%maxWindow]; !s.acked {
			s.acked = true
			take(s)
		}
	}
	lp.l.c.inFlight.Store(int64(lp.sndNxt - lp.sndUna))
	if lp.recovering && lp.recoverAt-lp.sndUna > lp.sndNxt-lp.sndUna {
		lp.recovering = false // everything outstanding at the loss is acked
	}
	if newest == 0 {
		return
	}
	// A serial line never reorders: a frame sent before one that arrived
	// and still unacknowledged was lost (docs/protocol.md §6.4).
	for seq := lp.sndUna; seq != lp.sndNxt; seq++ {
		s := &lp.slots[seq%maxWindow]
		if !s.acked && !s.lost && !s.sentAt.IsZero() && s.txOrder < newest {
			lp.markLost(s, seq)
			lp.l.c.fastRetransmits.Add(1)
		}
	}
	lp.publishRTT()
}

// onLineChange applies a UART change made under a running session.
func (lp *loop) onLineChange(c lineChange) {
	if c.baud > 0 && uint(c.baud) != lp.local.Baud {
		lp.local.Baud = uint(c.baud)
		if lp.established {
			lp.afterBaudChange()
		}
	}
	if c.flow != nil {
		lp.cfg.NoFlowControl = !*c.flow
		lp.recovering = false
		if *c.flow {
			lp.cwnd = float64(lp.window)
		}
	}
	if lp.established {
		lp.setLossPolicy()
	}
}

// afterBaudChange resynchronises with the peer after the UART changed rate
// (docs/protocol.md §5.7): frames on the wire at the switch were most
// likely garbled, so they are resent at once (not counted as noise by the
// sizer or the congestion window), the RTT estimate, made at the old rate,
// restarts from the new rate's floor, and an ACK tells the peer where we
// are.
func (lp *loop) afterBaudChange() {
	for seq := lp.sndUna; seq != lp.sndNxt; seq++ {
		s := &lp.slots[seq%maxWindow]
		if !s.acked && !s.lost && !s.sentAt.IsZero() {
			s.lost = true
			lp.lostQ = append(lp.lostQ, seq)
		}
	}
	lp.rtt = newRTT(lp.cfg.InitialRTO, lp.cfg.MinRTO, lp.cfg.MaxRTO)
	lp.setLossPolicy()
	lp.rtt.rto = lp.rtt.min
	lp.minRTT = 0
	lp.publishRTT()
	lp.ackNow = true
}

func (lp *loop) markLost(s *slot, seq uint16) {
	s.lost = true
	lp.lostQ = append(lp.lostQ, seq)
	lp.sizer.record(len(s.buf), true)
	// A receiver that cannot drain its UART (no RTS/CTS) loses whole
	// bursts: halve the frames in flight once per loss episode, as TCP's
	// AIMD does (docs/protocol.md §6.5b). A UART's bandwidth-delay product
	// is one to three frames, so the floor of two keeps a noisy but fast
	// line at full speed.
	if !lp.recovering && lp.cfg.NoFlowControl {
		lp.recovering = true
		lp.recoverAt = lp.sndNxt
		lp.cwnd = max(lp.cwnd/2, 2)
		lp.l.c.cwnd.Store(int64(lp.cwnd))
	}
}

func (lp *loop) publishRTT() {
	lp.l.c.srtt.Store(int64(lp.rtt.srtt))
	lp.l.c.rto.Store(int64(lp.rtt.rto))
}

// checkTimers runs the dead-link and retransmission timers.
func (lp *loop) checkTimers(now time.Time) {
	if !lp.established {
		return
	}
	if now.Sub(lp.lastRecv) >= lp.cfg.DeadTimeout {
		lp.l.c.deadLinks.Add(1)
		lp.l.log.Warn().Dur("silence", now.Sub(lp.lastRecv)).Msg("link dead: no frame from peer")
		lp.endSession(ErrDead)
		return
	}
	// On expiry the frames whose timer ran out are resent, with ACKREQ
	// (docs/protocol.md §6.5). With RTS/CTS that is every expired frame: a
	// loss is noise, and resending one frame per RTO would leave the line
	// idle while a window of long frames, sent before the sizer saw the
	// noise, waits its turn. Without RTS/CTS only the oldest goes, so a
	// receiver that is behind is not flooded again.
	expired := false
	for seq := lp.sndUna; seq != lp.sndNxt; seq++ {
		s := &lp.slots[seq%maxWindow]
		if s.acked || s.lost || s.sentAt.IsZero() {
			continue
		}
		if now.Sub(s.sentAt) < lp.rtt.rto {
			break // later frames were sent later
		}
		lp.markLost(s, seq)
		expired = true
		if lp.cfg.NoFlowControl {
			break
		}
	}
	if expired {
		lp.l.c.timeouts.Add(1)
		lp.rtt.timeout()
		lp.publishRTT()
	}
}

// nextDeadline is how long the loop may sleep before a timer matters.
func (lp *loop) nextDeadline(now time.Time) time.Duration {
	if !lp.established {
		if lp.writerBusy {
			return time.Hour // woken by txDone
		}
		return max(lp.nextHello.Sub(now), 0)
	}
	next := lp.lastRecv.Add(lp.cfg.DeadTimeout)
	if !lp.writerBusy {
		probe := lp.lastRecv.Add(lp.cfg.KeepAlive)
		if p := lp.lastProbe.Add(lp.cfg.KeepAlive); p.After(probe) {
			probe = p
		}
		next = earliest(next, probe)
	}
	for seq := lp.sndUna; seq != lp.sndNxt; seq++ {
		s := &lp.slots[seq%maxWindow]
		if !s.acked && !s.lost && !s.sentAt.IsZero() {
			next = earliest(next, s.sentAt.Add(lp.rtt.rto))
			break
		}
	}
	return max(next.Sub(now), 0)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
