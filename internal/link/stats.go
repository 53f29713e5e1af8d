package link

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Link's counters.
type Stats struct {
	TxFrames, TxBytes   uint64 // frames and wire bytes (after SLIP) written
	RxFrames, RxBytes   uint64 // valid frames received; wire bytes read
	TxData, RxData      uint64 // DATA frames sent first time / delivered
	TxPayload           uint64 // payload bytes in first-time DATA frames
	Retransmits         uint64 // DATA frames sent again
	FastRetransmits     uint64 // of which triggered by a later frame's ack
	Timeouts            uint64 // retransmission timer expiries
	Sessions            uint64 // sessions established
	PeerRestarts        uint64 // sessions ended by a new peer session id
	DeadLinks           uint64 // sessions ended by silence
	Dropped             map[string]uint64
	SRTT, RTO           time.Duration
	InFlight            int // unacknowledged DATA frames
	CongestionWindow    int // frames allowed in flight now
	Established         bool
	LocalSession        uint32
	PeerSession         uint32
	Window, MaxPayload  int // negotiated
	LastIncompatibility string
}

type counters struct {
	txFrames, txBytes, rxFrames, rxBytes atomic.Uint64
	txData, rxData, txPayload            atomic.Uint64
	retransmits, fastRetransmits         atomic.Uint64
	timeouts, sessions                   atomic.Uint64
	peerRestarts, deadLinks              atomic.Uint64
	dropped                              map[string]*atomic.Uint64
	srtt, rto                            atomic.Int64
	inFlight, window, maxPayload, cwnd   atomic.Int64
	established                          atomic.Bool
	localSession, peerSession            atomic.Uint32
	incompat                             atomic.Pointer[string]
}

func newCounters() *counters {
	c := &counters{dropped: make(map[string]*atomic.Uint64, len(DropReasons))}
	for _, r := range DropReasons {
		c.dropped[r] = new(atomic.Uint64)
	}
	return c
}

func (c *counters) drop(reason string) {
	if d, ok := c.dropped[reason]; ok {
		d.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		TxData: c.txData.Load(), RxData: c.rxData.Load(), TxPayload: c.txPayload.Load(),
		Retransmits: c.retransmits.Load(), FastRetransmits: c.fastRetransmits.Load(),
		Timeouts: c.timeouts.Load(), Sessions: c.sessions.Load(),
		PeerRestarts: c.peerRestarts.Load(), DeadLinks: c.deadLinks.Load(),
		Dropped: make(map[string]uint64, len(c.dropped)),
		SRTT:    time.Duration(c.srtt.Load()), RTO: time.Duration(c.rto.Load()),
		InFlight: int(c.inFlight.Load()), CongestionWindow: int(c.cwnd.Load()), Established: c.established.Load(),
		LocalSession: c.localSession.Load(), PeerSession: c.peerSession.Load(),
		Window: int(c.window.Load()), MaxPayload: int(c.maxPayload.Load()),
	}
	for r, v := range c.dropped {
		s.Dropped[r] = v.Load()
	}
	if p := c.incompat.Load(); p != nil {
		s.LastIncompatibility = *p
	}
	return s
}
