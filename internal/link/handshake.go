package link

import (
	"time"

	"github.com/uartproxy/uartproxy/internal/message"
)

// onHello runs the handshake of docs/protocol.md §5.2.
func (lp *loop) onHello(p []byte, now time.Time) {
	l := lp.l
	h, err := message.ParseHello(p)
	if err != nil {
		l.c.drop(DropBadHello)
		l.log.Debug().Err(err).Msg("bad HELLO")
		return
	}
	if h.Session == lp.local.Session || h.Role == lp.local.Role {
		l.c.drop(DropBadHello)
		if !lp.echoWarned {
			lp.echoWarned = true
			l.log.Warn().Msg("received a HELLO from our own role: is the line looped back or the tty echoing?")
		}
		return
	}
	rev, err := message.Negotiate(lp.local, h)
	if err != nil {
		l.c.drop(DropBadHello)
		msg := err.Error()
		if old := l.c.incompat.Swap(&msg); old == nil || *old != msg {
			l.log.Error().Err(err).Msg("peer speaks an incompatible protocol")
		}
		return
	}
	lp.peerSeen = h.Session
	switch {
	case lp.established && h.Session == lp.sess.Peer.Session && h.PeerSession == lp.local.Session:
		// Our session; the peer is still waiting for our confirmation.
		if !h.Established {
			lp.helloNow = true
		}
	case !lp.established && h.PeerSession == lp.local.Session:
		lp.establish(h, rev, now)
		if !h.Established {
			lp.helloNow = true
		}
	default:
		// The peer does not know our session, or it is a new peer session.
		if lp.established {
			l.c.peerRestarts.Add(1)
			l.log.Warn().Uint32("old", lp.sess.Peer.Session).Uint32("new", h.Session).Msg("peer restarted")
			lp.endSession(ErrPeerRestarted)
		}
		lp.helloNow = true
	}
}

func (lp *loop) establish(peer message.Hello, rev uint, now time.Time) {
	lp.established = true
	lp.window = int(min(lp.local.Window, peer.Window, maxWindow))
	lp.maxPayload = int(min(lp.local.MaxPayload, peer.MaxPayload))
	lp.sess = Session{Local: lp.local, Peer: peer, Revision: rev, MaxPayload: lp.maxPayload, Window: lp.window}
	lp.resetSequences()
	lp.setLossPolicy()
	lp.sizer = newSizer(lp.maxPayload)
	lp.cwnd, lp.recovering = float64(lp.window), false
	lp.lastRecv = now
	c := lp.l.c
	c.sessions.Add(1)
	c.established.Store(true)
	c.peerSession.Store(peer.Session)
	c.window.Store(int64(lp.window))
	c.maxPayload.Store(int64(lp.maxPayload))
	lp.l.log.Info().Uint32("session", lp.local.Session).Uint32("peer", peer.Session).
		Str("model", peer.Model).Str("firmware", peer.Firmware).
		Int("window", lp.window).Int("max_payload", lp.maxPayload).Msg("link established")
	lp.l.up.Up(lp.sess)
}

// endSession tears the session down; the next one gets a fresh local
// session id so the peer notices even if it missed the failure.
func (lp *loop) endSession(err error) {
	if !lp.established {
		return
	}
	lp.established = false
	lp.resetSequences()
	lp.local.Session = newSessionID()
	lp.nextHello = time.Time{}
	c := lp.l.c
	c.established.Store(false)
	c.localSession.Store(lp.local.Session)
	lp.l.up.Down(err)
}

func (lp *loop) resetSequences() {
	for i := range lp.slots {
		lp.slots[i] = slot{buf: lp.slots[i].buf[:0]}
	}
	lp.rcv = [maxWindow]rxSlot{}
	lp.sndUna, lp.sndNxt, lp.rcvNxt = 0, 0, 0
	lp.lostQ = lp.lostQ[:0]
	lp.ackOwed, lp.ackNow = false, false
	lp.rtt = newRTT(lp.cfg.InitialRTO, lp.cfg.MinRTO, lp.cfg.MaxRTO)
	lp.minRTT = 0
	lp.l.c.inFlight.Store(0)
	// A frame still in the writer belongs to the old session; its slot
	// is gone, so forget it.
	lp.inWriter = -1
}

// setLossPolicy derives the RTO floor and backoff from the line settings
// (docs/protocol.md §6.5, §6.5b).
func (lp *loop) setLossPolicy() {
	lp.rtt.min = max(lp.cfg.MinRTO, ackDelayBound(lp.maxPayload, int(lp.local.Baud), int(lp.sess.Peer.Baud)))
	lp.rtt.maxBackoff = 6
	if !lp.cfg.NoFlowControl {
		// With RTS/CTS a loss is noise, never congestion, and the floor
		// already covers an ack delayed behind a full frame: one doubling
		// absorbs a stale estimate; more would only leave a frame the
		// noise keeps hitting waiting longer between tries.
		lp.rtt.maxBackoff = 1
	}
}
