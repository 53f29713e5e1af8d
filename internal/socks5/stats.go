package socks5

import "sync/atomic"

// Stats is a snapshot of a Server's counters since New.
type Stats struct {
	Active   int64  // client connections open now
	Accepted uint64 // client connections accepted, including Rejected ones
	Rejected uint64 // closed at once because Admit said no
	// Requests counts replies: command (CmdConnect, ...) -> result
	// (ResultSucceeded, ...) -> count. Only non-zero counts are present.
	// Every request gets exactly one result: BIND's is that of its last
	// reply, UDP ASSOCIATE's that of its only reply.
	Requests map[string]map[string]uint64
	// AuthFailures counts rejected RFC 1929 username/password pairs.
	AuthFailures uint64
	// HandshakeErrors counts connections that ended before a request was
	// read, by reason (ReasonTimeout, ...). Only non-zero counts are present.
	HandshakeErrors map[string]uint64
	// UDPDropped counts datagrams of UDP associations dropped, by reason
	// (DropFragment, ...). Only non-zero counts are present.
	UDPDropped map[string]uint64
	// BytesUp and BytesDown count payload from clients to destinations and
	// back, TCP and UDP (without SOCKS UDP headers).
	BytesUp, BytesDown uint64
}

// counters are the live counters behind Stats.
type counters struct {
	active          atomic.Int64
	accepted        atomic.Uint64
	rejected        atomic.Uint64
	requests        [numCommands][numReplies]atomic.Uint64
	authFailures    atomic.Uint64
	handshakeErrors [numReasons]atomic.Uint64
	udpDropped      [numDropReasons]atomic.Uint64
	bytesUp         atomic.Uint64
	bytesDown       atomic.Uint64
}

func (c *counters) request(cmd command, r reply) {
	if int(r) < numReplies {
		c.requests[cmd.index()][r].Add(1)
	} else {
		c.requests[cmd.index()][repGeneralFailure].Add(1)
	}
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Active:          c.active.Load(),
		Accepted:        c.accepted.Load(),
		Rejected:        c.rejected.Load(),
		Requests:        map[string]map[string]uint64{},
		AuthFailures:    c.authFailures.Load(),
		HandshakeErrors: map[string]uint64{},
		UDPDropped:      map[string]uint64{},
		BytesUp:         c.bytesUp.Load(),
		BytesDown:       c.bytesDown.Load(),
	}
	for i := range c.requests {
		for r := range c.requests[i] {
			n := c.requests[i][r].Load()
			if n == 0 {
				continue
			}
			cmd := command(i).String()
			if st.Requests[cmd] == nil {
				st.Requests[cmd] = map[string]uint64{}
			}
			st.Requests[cmd][reply(r).String()] = n
		}
	}
	for i := range c.handshakeErrors {
		if n := c.handshakeErrors[i].Load(); n != 0 {
			st.HandshakeErrors[reason(i).String()] = n
		}
	}
	for i := range c.udpDropped {
		if n := c.udpDropped[i].Load(); n != 0 {
			st.UDPDropped[dropReason(i).String()] = n
		}
	}
	return st
}
