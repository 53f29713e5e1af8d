package dnsproxy

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// query is one question on its way to an answer.
type query struct {
	id     uint16
	rd, cd bool
	q      dnsmessage.Question
	kind   int
	key    key  // for A and AAAA of class IN
	edns   bool // the client sent an OPT record
	// limit is the largest reply the client takes: 512 bytes over UDP,
	// more if it said so with EDNS0, 65535 over TCP.
	limit int
	// raw is the query as received, relayed unchanged to the upstream.
	// It belongs to the query.
	raw []byte
}

// begin parses pkt, a query received over UDP or TCP, and answers it if
// it can without the device. It returns a reply to send; or a query that
// needs the device, for finish; or why pkt gets no reply at all. now is
// the time for the cache.
//
// pkt is hostile input. Only a packet too short for a DNS header, or one
// that is itself a response, is dropped; any other error gets FORMERR or
// NOTIMP (RFC 1035 §4.1.1) since its ID is known.
func (s *Server) begin(pkt []byte, tcp bool, now time.Time) (reply []byte, q *query, drop dropReason) {
	var p dnsmessage.Parser
	h, err := p.Start(pkt)
	if err != nil {
		return nil, nil, dropHeader
	}
	if h.Response {
		return nil, nil, dropResponse
	}
	if h.OpCode != 0 {
		// NOTIFY, UPDATE, STATUS, IQUERY: "the name server does not
		// support the requested kind of query".
		return s.bare(h, dnsmessage.RCodeNotImplemented), nil, dropNone
	}
	if qd := binary.BigEndian.Uint16(pkt[4:6]); qd != 1 {
		// RFC 9619: a query has exactly one question.
		return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
	}
	question, err := p.Question()
	if err != nil {
		return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
	}
	if err := p.SkipAllQuestions(); err != nil {
		return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
	}
	if err := p.SkipAllAnswers(); err != nil {
		return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
	}
	q = &query{id: h.ID, rd: h.RecursionDesired, cd: h.CheckingDisabled, q: question, limit: udpMinSize, raw: pkt}
	if tcp {
		q.limit = tcpMaxSize
	}
	badVersion := false
	for {
		rh, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
		}
		if rh.Type == dnsmessage.TypeOPT {
			// RFC 6891 §6.1.1: at most one OPT, owned by the root.
			if q.edns || rh.Name.Length != 1 {
				return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
			}
			q.edns = true
			badVersion = rh.TTL>>16&0xff != 0
			if !tcp {
				q.limit = min(max(int(rh.Class), udpMinSize), udpMaxSize)
			}
		}
		if err := p.SkipAdditional(); err != nil {
			return s.bare(h, dnsmessage.RCodeFormatError), nil, dropNone
		}
	}

	q.kind = kindOther
	if question.Class == dnsmessage.ClassINET {
		switch question.Type {
		case dnsmessage.TypeA:
			q.kind = kindA
		case dnsmessage.TypeAAAA:
			q.kind = kindAAAA
		}
	}
	s.stats.queries[q.kind].Add(1)
	name := lowerName(question.Name)
	s.log.Debug().Str("name", name).Str("type", typeName(question.Type)).Bool("tcp", tcp).Msg("query")

	if badVersion {
		// RFC 6891 §6.1.3: BADVERS, with the version we do speak.
		return s.reply(q, rcodeBadVers, nil, 0), nil, dropNone
	}
	if question.Class == dnsmessage.ClassINET && isLocalhost(name) {
		// RFC 6761 §6.3: loopback for addresses, nothing for the rest.
		ttl := ttlSeconds(s.cfg.TTL)
		switch q.kind {
		case kindA:
			return s.reply(q, dnsmessage.RCodeSuccess, []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, ttl), nil, dropNone
		case kindAAAA:
			return s.reply(q, dnsmessage.RCodeSuccess, []netip.Addr{netip.IPv6Loopback()}, ttl), nil, dropNone
		}
		return s.reply(q, dnsmessage.RCodeSuccess, nil, 0), nil, dropNone
	}
	if q.kind == kindOther {
		if !s.upstream.IsValid() {
			return s.reply(q, dnsmessage.RCodeNotImplemented, nil, 0), nil, dropNone
		}
		return nil, q, dropNone
	}
	if !isHostname(name) {
		// The device resolves host names, not arbitrary bytes.
		return s.reply(q, dnsmessage.RCodeRefused, nil, 0), nil, dropNone
	}
	q.key = key{name: name, qtype: question.Type}
	s.mu.Lock()
	e, ok := s.cache.get(q.key, now)
	s.mu.Unlock()
	if ok {
		s.stats.cacheHits.Add(1)
		return s.answer(q, e, now), nil, dropNone
	}
	return nil, q, dropNone
}

// answer replies to q with e, with the TTL e has left at now.
func (s *Server) answer(q *query, e entry, now time.Time) []byte {
	return s.reply(q, e.rcode, e.addrs, ttlSeconds(e.expires.Sub(now)))
}

// reply builds the reply to q: the question, addrs as answers with ttl,
// an OPT record if the client sent one. A reply larger than the client
// takes is sent without answers and with TC set (RFC 2181 §9), so the
// client retries over TCP.
func (s *Server) reply(q *query, rcode dnsmessage.RCode, addrs []netip.Addr, ttl uint32) []byte {
	msg, err := build(q, rcode, addrs, ttl, false)
	if err == nil && len(msg) > q.limit {
		return s.truncated(q, rcode)
	}
	return s.sent(q, rcode, msg, err)
}

// truncated builds a reply to q with TC set and no answers.
func (s *Server) truncated(q *query, rcode dnsmessage.RCode) []byte {
	msg, err := build(q, rcode, nil, 0, true)
	return s.sent(q, rcode, msg, err)
}

// sent counts a built reply. If building failed, which a question that
// parsed cannot make happen, the client gets SERVFAIL rather than nothing.
func (s *Server) sent(q *query, rcode dnsmessage.RCode, msg []byte, err error) []byte {
	if err != nil {
		s.log.Debug().Err(err).Msg("building reply")
		rcode = dnsmessage.RCodeServerFailure
		msg = bareReply(q.id, 0, q.rd, rcode)
	}
	s.stats.response(rcode)
	return msg
}

// bare counts and returns a reply of a header only, for a query whose
// question could not be used.
func (s *Server) bare(h dnsmessage.Header, rcode dnsmessage.RCode) []byte {
	s.stats.response(rcode)
	return bareReply(h.ID, h.OpCode, h.RecursionDesired, rcode)
}

// bareReply returns a reply of a header only (RFC 1035 §4.1.1).
func bareReply(id uint16, opcode dnsmessage.OpCode, rd bool, rcode dnsmessage.RCode) []byte {
	msg := make([]byte, headerLen)
	flags := uint16(1)<<15 | uint16(opcode&0xf)<<11 | 1<<7 | uint16(rcode&0xf) // QR, opcode, RA, RCODE
	if rd {
		flags |= 1 << 8
	}
	binary.BigEndian.PutUint16(msg[0:], id)
	binary.BigEndian.PutUint16(msg[2:], flags)
	return msg
}

// build packs a reply to q. Addresses of the wrong family for the
// question are left out.
func build(q *query, rcode dnsmessage.RCode, addrs []netip.Addr, ttl uint32, truncated bool) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, udpMinSize), dnsmessage.Header{
		ID:                 q.id,
		Response:           true,
		Truncated:          truncated,
		RecursionDesired:   q.rd,
		RecursionAvailable: true,
		CheckingDisabled:   q.cd,
		RCode:              rcode & 0xf, // the rest goes in the OPT record
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q.q); err != nil {
		return nil, err
	}
	if len(addrs) > 0 {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		rh := dnsmessage.ResourceHeader{Name: q.q.Name, Type: q.q.Type, Class: dnsmessage.ClassINET, TTL: ttl}
		for _, a := range addrs {
			var err error
			switch {
			case q.q.Type == dnsmessage.TypeA && a.Is4():
				err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			case q.q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
				err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if q.edns {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(udpMaxSize, rcode, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// ttlSeconds rounds d up to whole seconds for a TTL field.
func ttlSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(math.Ceil(d.Seconds()), math.MaxInt32)) // RFC 2181 §8
}

// lowerName returns n in ASCII lower case (RFC 4343), with its trailing
// dot.
func lowerName(n dnsmessage.Name) string {
	b := []byte(n.String())
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// isLocalhost reports whether name (lower case, trailing dot) is
// localhost or below it (RFC 6761 §6.3).
func isLocalhost(name string) bool {
	return name == "localhost." || strings.HasSuffix(name, ".localhost.")
}

// isHostname reports whether name (lower case, trailing dot) is worth
// asking the device about: labels of letters, digits, hyphens and
// underscores, and not the root.
func isHostname(name string) bool {
	if len(name) < 2 || name[len(name)-1] != '.' {
		return false
	}
	for _, label := range strings.Split(name[:len(name)-1], ".") {
		if len(label) == 0 || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// typeName returns the mnemonic of t ("A", "MX") for logs.
func typeName(t dnsmessage.Type) string {
	return strings.TrimPrefix(t.String(), "Type")
}
