package dnsproxy

import (
	"strconv"
	"sync/atomic"

	"golang.org/x/net/dns/dnsmessage"
)

// Stats is a snapshot of a Server's counters since New.
type Stats struct {
	// Queries counts parsed queries by question type: "A", "AAAA" and
	// "other".
	Queries map[string]uint64
	// Responses counts replies sent by RCODE name: "NOERROR",
	// "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
	// and whatever else an upstream answered ("YXDOMAIN", "RCODE12").
	Responses map[string]uint64
	// CacheHits counts A and AAAA questions answered from the cache.
	CacheHits uint64
	// Dropped counts packets that got no reply because they could not be
	// parsed or were not queries (DropReasons has them by reason).
	Dropped uint64
	// DropReasons counts dropped packets by reason: "header" (shorter
	// than a DNS header), "response" (QR set: answering responses
	// invites loops).
	DropReasons map[string]uint64
	// Overloaded counts queries answered SERVFAIL because MaxInflight
	// queries were already being resolved.
	Overloaded uint64
}

// Question kinds, the keys of Stats.Queries.
const (
	kindA = iota
	kindAAAA
	kindOther
	numKinds
)

var kindNames = [numKinds]string{"A", "AAAA", "other"}

// rcodeBadVers is the extended RCODE BADVERS (RFC 6891 §9); its low four
// bits go in the header, the rest in the OPT record.
const rcodeBadVers dnsmessage.RCode = 16

// rcodeNames are the RFC 6895 §2.3 mnemonics, the keys of
// Stats.Responses.
var rcodeNames = [...]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
	5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
	10: "NOTZONE", 11: "DSOTYPENI", 16: "BADVERS",
}

// rcodeName returns the mnemonic of rc, or "RCODE<n>".
func rcodeName(rc dnsmessage.RCode) string {
	if int(rc) < len(rcodeNames) && rcodeNames[rc] != "" {
		return rcodeNames[rc]
	}
	return "RCODE" + strconv.Itoa(int(rc))
}

// dropReason says why a packet got no reply; its name is a key of
// Stats.DropReasons.
type dropReason int

const (
	dropNone dropReason = iota
	dropHeader
	dropResponse
	numDrops
)

var dropNames = [numDrops]string{dropHeader: "header", dropResponse: "response"}

func (r dropReason) String() string { return dropNames[r] }

// counters are a Server's statistics.
type counters struct {
	queries    [numKinds]atomic.Uint64
	responses  [len(rcodeNames)]atomic.Uint64 // by RCODE, extended ones too
	cacheHits  atomic.Uint64
	drops      [numDrops]atomic.Uint64
	overloaded atomic.Uint64
}

func (c *counters) response(rc dnsmessage.RCode) {
	if int(rc) < len(c.responses) {
		c.responses[rc].Add(1)
	}
}

// Stats returns a snapshot of the counters. The six common RCODEs and
// every question kind are always present, zero or not.
func (s *Server) Stats() Stats {
	c := &s.stats
	st := Stats{
		Queries:     make(map[string]uint64, numKinds),
		Responses:   make(map[string]uint64, 8),
		DropReasons: make(map[string]uint64, numDrops),
		CacheHits:   c.cacheHits.Load(),
		Overloaded:  c.overloaded.Load(),
	}
	for k, name := range kindNames {
		st.Queries[name] = c.queries[k].Load()
	}
	for rc := range c.responses {
		n := c.responses[rc].Load()
		if n > 0 || rc <= 5 {
			st.Responses[rcodeName(dnsmessage.RCode(rc))] = n
		}
	}
	for r, name := range dropNames {
		if dropReason(r) == dropNone {
			continue
		}
		n := c.drops[r].Load()
		st.DropReasons[name] = n
		st.Dropped += n
	}
	return st
}
