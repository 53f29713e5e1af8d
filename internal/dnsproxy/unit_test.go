package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestCacheLRU(t *testing.T) {
	c := newCache(2)
	a, b, d := key{"a.", dnsmessage.TypeA}, key{"b.", dnsmessage.TypeA}, key{"a.", dnsmessage.TypeAAAA}
	exp := t0.Add(time.Minute)
	c.put(a, entry{expires: exp})
	c.put(b, entry{expires: exp})
	if _, ok := c.get(a, t0); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(d, entry{expires: exp}) // evicts b
	if _, ok := c.get(b, t0); ok {
		t.Fatal("b not evicted")
	}
	for _, k := range []key{a, d} {
		if _, ok := c.get(k, t0); !ok {
			t.Fatalf("%v evicted", k)
		}
	}
	if c.order.Len() != 2 || len(c.items) != 2 {
		t.Fatalf("%d entries", c.order.Len())
	}
	// Updating an entry does not grow the cache.
	c.put(a, entry{rcode: dnsmessage.RCodeNameError, expires: exp})
	if e, _ := c.get(a, t0); e.rcode != dnsmessage.RCodeNameError || c.order.Len() != 2 {
		t.Fatalf("update: %+v, %d entries", e, c.order.Len())
	}
}

func TestCacheExpiry(t *testing.T) {
	c := newCache(10)
	k := key{"a.", dnsmessage.TypeA}
	c.put(k, entry{expires: t0.Add(time.Second)})
	if _, ok := c.get(k, t0.Add(999*time.Millisecond)); !ok {
		t.Fatal("expired early")
	}
	if _, ok := c.get(k, t0.Add(time.Second)); ok {
		t.Fatal("not expired")
	}
	if c.order.Len() != 0 || len(c.items) != 0 {
		t.Fatal("expired entry kept")
	}
}

func TestNegativeTTL(t *testing.T) {
	addr := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	for _, c := range []struct {
		ttl   time.Duration
		rcode dnsmessage.RCode
		addrs []netip.Addr
		want  time.Duration
	}{
		{60 * time.Second, dnsmessage.RCodeSuccess, addr, 60 * time.Second},
		{60 * time.Second, dnsmessage.RCodeSuccess, nil, 10 * time.Second},
		{60 * time.Second, dnsmessage.RCodeNameError, nil, 10 * time.Second},
		{3 * time.Second, dnsmessage.RCodeNameError, nil, 3 * time.Second},
		{3 * time.Second, dnsmessage.RCodeSuccess, addr, 3 * time.Second},
	} {
		s, err := New(Config{Lookup: func(context.Context, string, string) ([]netip.Addr, error) { return nil, nil }, TTL: c.ttl})
		if err != nil {
			t.Fatal(err)
		}
		if e := s.newEntry(c.rcode, c.addrs, t0); e.expires.Sub(t0) != c.want {
			t.Errorf("TTL %v, %v with %d addresses: cached for %v, want %v", c.ttl, c.rcode, len(c.addrs), e.expires.Sub(t0), c.want)
		}
	}
}

func TestFilterAddrs(t *testing.T) {
	in := []netip.Addr{
		netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("fe80::1%eth0"),
		{},
		netip.MustParseAddr("192.0.2.2"),
	}
	if got, want := filterAddrs(in, dnsmessage.TypeA), []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}; !slices.Equal(got, want) {
		t.Errorf("A: %v, want %v", got, want)
	}
	if got, want := filterAddrs(in, dnsmessage.TypeAAAA), []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1")}; !slices.Equal(got, want) {
		t.Errorf("AAAA: %v, want %v", got, want)
	}
	var many []netip.Addr
	a := netip.MustParseAddr("10.0.0.0")
	for range 1000 {
		a = a.Next()
		many = append(many, a)
	}
	if got := filterAddrs(many, dnsmessage.TypeA); len(got) != maxAddrs {
		t.Errorf("%d addresses kept of 1000, want %d", len(got), maxAddrs)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want dnsmessage.RCode
	}{
		{nil, dnsmessage.RCodeSuccess},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, dnsmessage.RCodeNameError},
		{fmt.Errorf("resolve: %w", &net.DNSError{Err: "not found", IsNotFound: true}), dnsmessage.RCodeNameError},
		{errors.New("lookup x: no such host"), dnsmessage.RCodeNameError},
		{&net.DNSError{Err: "i/o timeout", IsTimeout: true}, dnsmessage.RCodeServerFailure},
		{fmt.Errorf("dial: %w", syscall.ENETDOWN), dnsmessage.RCodeServerFailure},
		{context.DeadlineExceeded, dnsmessage.RCodeServerFailure},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}

func TestTTLSeconds(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		-time.Second: 0, 0: 0, time.Nanosecond: 1, 1500 * time.Millisecond: 2, time.Minute: 60,
		1 << 62: 1<<31 - 1,
	} {
		if got := ttlSeconds(d); got != want {
			t.Errorf("%v: %d, want %d", d, got, want)
		}
	}
}

func TestIsHostname(t *testing.T) {
	for name, want := range map[string]bool{
		"example.test.": true, "_srv._tcp.test.": true, "a-b.c0.": true, "x.": true,
		".": false, "": false, "a..b.": false, "a b.": false, "a\x00.": false, "ä.test.": false,
		"example.test": false, "*.test.": false,
	} {
		if got := isHostname(name); got != want {
			t.Errorf("%q: %v, want %v", name, got, want)
		}
	}
}

// muxAddr is an address as the mux's PacketConn reports it: not a
// *net.UDPAddr, but host:port in String.
type muxAddr string

func (a muxAddr) Network() string { return "udp" }
func (a muxAddr) String() string  { return string(a) }

func TestFromUpstream(t *testing.T) {
	s, err := New(Config{
		Lookup:       func(context.Context, string, string) ([]netip.Addr, error) { return nil, nil },
		Upstream:     "192.0.2.53:53",
		ListenPacket: (&net.ListenConfig{}).ListenPacket,
	})
	if err != nil {
		t.Fatal(err)
	}
	var nilUDP *net.UDPAddr
	for _, c := range []struct {
		a    net.Addr
		want bool
	}{
		{net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.53:53")), true},
		{net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.53]:53")), true},
		{muxAddr("192.0.2.53:53"), true},
		{net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.53:54")), false},
		{net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.54:53")), false},
		{muxAddr("dns.test:53"), false},
		{nil, false},
		{nilUDP, false},
	} {
		if got := s.fromUpstream(c.a); got != c.want {
			t.Errorf("%v: %v, want %v", c.a, got, c.want)
		}
	}
}
