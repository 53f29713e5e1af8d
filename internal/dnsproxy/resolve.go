package dnsproxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// flight is one lookup in progress; queries for the same key wait for it
// instead of asking the device again.
type flight struct {
	done chan struct{} // closed when e is set
	e    entry
}

// finish resolves q, which begin could not answer, on the device. The
// caller holds an inflight slot.
func (s *Server) finish(ctx context.Context, q *query) []byte {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if q.kind == kindOther {
		return s.relay(ctx, q)
	}
	e := s.resolve(ctx, q.key)
	return s.answer(q, e, time.Now())
}

// resolve returns the cached entry for k, or waits for a lookup of k
// already in flight, or looks k up and caches the outcome.
func (s *Server) resolve(ctx context.Context, k key) entry {
	s.mu.Lock()
	if e, ok := s.cache.get(k, time.Now()); ok {
		s.mu.Unlock()
		s.stats.cacheHits.Add(1)
		return e
	}
	if f, ok := s.flights[k]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.e
		case <-ctx.Done():
			return entry{rcode: dnsmessage.RCodeServerFailure}
		}
	}
	f := &flight{done: make(chan struct{})}
	s.flights[k] = f
	s.mu.Unlock()

	f.e = s.lookup(ctx, k)

	s.mu.Lock()
	delete(s.flights, k)
	if f.e.rcode != dnsmessage.RCodeServerFailure {
		s.cache.put(k, f.e)
	}
	s.mu.Unlock()
	close(f.done)
	return f.e
}

// lookup asks the device about k.
func (s *Server) lookup(ctx context.Context, k key) entry {
	host := strings.TrimSuffix(k.name, ".")
	addrs, err := s.cfg.Lookup(ctx, network(k.qtype), host)
	rc := classify(err)
	if rc == dnsmessage.RCodeNameError {
		rc = s.confirm(ctx, key{name: k.name, qtype: otherType(k.qtype)}, host)
		addrs = nil
	}
	if rc == dnsmessage.RCodeServerFailure {
		s.log.Debug().Err(err).Str("name", host).Str("type", typeName(k.qtype)).Msg("lookup failed")
		return entry{rcode: rc}
	}
	return s.newEntry(rc, filterAddrs(addrs, k.qtype), time.Now())
}

// confirm tells a name that does not exist from a name with addresses of
// the other family only, once the lookup of one family said "no such
// host". Resolvers, the device's among them, say that in both cases; but
// NXDOMAIN means the name has no records at all, so answering it to the
// AAAA question of a name with an A makes clients give the name up
// (musl's getaddrinfo does) and caches forget the A too. other is the key
// of the other family; its outcome is cached as well.
func (s *Server) confirm(ctx context.Context, other key, host string) dnsmessage.RCode {
	s.mu.Lock()
	e, ok := s.cache.get(other, time.Now())
	s.mu.Unlock()
	if ok {
		return e.rcode
	}
	addrs, err := s.cfg.Lookup(ctx, network(other.qtype), host)
	rc := classify(err)
	if rc == dnsmessage.RCodeServerFailure {
		s.log.Debug().Err(err).Str("name", host).Str("type", typeName(other.qtype)).Msg("lookup failed")
		return rc
	}
	e = s.newEntry(rc, filterAddrs(addrs, other.qtype), time.Now())
	s.mu.Lock()
	s.cache.put(other, e)
	s.mu.Unlock()
	return rc
}

// newEntry returns an entry that expires after the TTL, or after at most
// 10 s if it is negative.
func (s *Server) newEntry(rc dnsmessage.RCode, addrs []netip.Addr, now time.Time) entry {
	ttl := s.cfg.TTL
	if rc != dnsmessage.RCodeSuccess || len(addrs) == 0 {
		ttl = min(ttl, negativeTTLMax)
	}
	return entry{rcode: rc, addrs: addrs, expires: now.Add(ttl)}
}

// classify maps a Lookup error to an RCODE: nil is NOERROR, "no such
// host" is NXDOMAIN, anything else (device down, timeout) is SERVFAIL.
func classify(err error) dnsmessage.RCode {
	if err == nil {
		return dnsmessage.RCodeSuccess
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound || strings.Contains(err.Error(), "no such host") {
		return dnsmessage.RCodeNameError
	}
	return dnsmessage.RCodeServerFailure
}

// filterAddrs keeps the addresses of the family qtype asks for, once
// each, without zones, at most maxAddrs. (*net.Resolver).LookupNetIP
// returns IPv4 addresses in their IPv6-mapped form.
func filterAddrs(addrs []netip.Addr, qtype dnsmessage.Type) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if qtype == dnsmessage.TypeA && !a.Is4() || qtype == dnsmessage.TypeAAAA && !a.Is6() {
			continue
		}
		dup := false
		for _, b := range out {
			dup = dup || a == b
		}
		if !dup {
			out = append(out, a)
		}
		if len(out) == maxAddrs {
			break
		}
	}
	return out
}

func network(qtype dnsmessage.Type) string {
	if qtype == dnsmessage.TypeAAAA {
		return "ip6"
	}
	return "ip4"
}

func otherType(qtype dnsmessage.Type) dnsmessage.Type {
	if qtype == dnsmessage.TypeAAAA {
		return dnsmessage.TypeA
	}
	return dnsmessage.TypeAAAA
}

// relay sends q unchanged to the upstream over a UDP socket opened on the
// device, and returns the upstream's reply, or SERVFAIL when none came by
// ctx's deadline. A socket per query gives each its own source port.
func (s *Server) relay(ctx context.Context, q *query) []byte {
	fail := func(what string, err error) []byte {
		s.log.Debug().Err(err).Str("name", q.q.Name.String()).Str("type", typeName(q.q.Type)).Msg("upstream " + what)
		return s.reply(q, dnsmessage.RCodeServerFailure, nil, 0)
	}
	pc, err := s.cfg.ListenPacket(ctx, "udp", "")
	if err != nil {
		return fail("listen", err)
	}
	defer pc.Close()
	if dl, ok := ctx.Deadline(); ok {
		pc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := pc.WriteTo(q.raw, net.UDPAddrFromAddrPort(s.upstream)); err != nil {
		return fail("write", err)
	}
	buf := make([]byte, tcpMaxSize)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fail("read", err)
		}
		if !s.fromUpstream(from) {
			continue
		}
		rc, ok := answers(buf[:n], q)
		if !ok {
			s.log.Debug().Int("len", n).Msg("upstream reply does not match the query")
			continue
		}
		if n > q.limit {
			return s.truncated(q, rc)
		}
		s.stats.response(rc)
		return bytes.Clone(buf[:n])
	}
}

// fromUpstream reports whether a datagram from a came from the upstream.
func (s *Server) fromUpstream(a net.Addr) bool {
	var ap netip.AddrPort
	switch a := a.(type) {
	case nil:
		return false
	case *net.UDPAddr:
		if a == nil {
			return false
		}
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return false
		}
	}
	return ap.Addr().Unmap().WithZone("") == s.upstream.Addr().WithZone("") && ap.Port() == s.upstream.Port()
}

// answers reports whether msg is a reply to q (RFC 5452 §4.3: same ID,
// same question) and returns its RCODE. An error reply may leave the
// question out.
func answers(msg []byte, q *query) (dnsmessage.RCode, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || !h.Response || h.ID != q.id || h.OpCode != 0 {
		return 0, false
	}
	qq, err := p.Question()
	if err == dnsmessage.ErrSectionDone {
		return h.RCode, h.RCode != dnsmessage.RCodeSuccess
	}
	if err != nil || qq.Type != q.q.Type || qq.Class != q.q.Class || !strings.EqualFold(qq.Name.String(), q.q.Name.String()) {
		return 0, false
	}
	return h.RCode, true
}
