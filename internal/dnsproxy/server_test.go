package dnsproxy_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/dnsproxy"
)

const (
	typeA    = dnsmessage.TypeA
	typeAAAA = dnsmessage.TypeAAAA
	typeMX   = dnsmessage.TypeMX
)

var (
	rcOK       = dnsmessage.RCodeSuccess
	rcNX       = dnsmessage.RCodeNameError
	rcServFail = dnsmessage.RCodeServerFailure
	rcNotImp   = dnsmessage.RCodeNotImplemented
	rcRefused  = dnsmessage.RCodeRefused
)

// answerCases are questions and the reply every transport and client
// must get.
var answerCases = []struct {
	name    string
	q       query
	digName string // the name as dig takes it, if not q.name
	rcode   dnsmessage.RCode
	want    []string
}{
	{name: "A", q: query{name: "example.test.", qtype: typeA}, want: []string{"192.0.2.1"}},
	{name: "A mixed case", q: query{name: "ExAmPlE.TeSt.", qtype: typeA}, want: []string{"192.0.2.1"}},
	{name: "A without RD", q: query{name: "example.test.", qtype: typeA, noRD: true}, want: []string{"192.0.2.1"}},
	{name: "A EDNS", q: query{name: "example.test.", qtype: typeA, edns: 4096}, want: []string{"192.0.2.1"}},
	{name: "AAAA", q: query{name: "dual.test.", qtype: typeAAAA}, want: []string{"2001:db8::2", "2001:db8::3"}},
	{name: "A IPv4-mapped", q: query{name: "mapped.test.", qtype: typeA}, want: []string{"192.0.2.5"}},
	{name: "A underscore", q: query{name: "_srv.tcp.test.", qtype: typeA}, want: []string{"192.0.2.8"}},
	{name: "NXDOMAIN", q: query{name: "nope.test.", qtype: typeA}, rcode: rcNX},
	{name: "NXDOMAIN AAAA", q: query{name: "nope6.test.", qtype: typeAAAA}, rcode: rcNX},
	{name: "NXDOMAIN by text", q: query{name: "textnx.test.", qtype: typeA}, rcode: rcNX},
	{name: "no AAAA", q: query{name: "v4only.test.", qtype: typeAAAA}},
	{name: "no A", q: query{name: "v6only.test.", qtype: typeA}},
	{name: "empty answer", q: query{name: "empty.test.", qtype: typeA}},
	{name: "device down", q: query{name: "down.test.", qtype: typeA}, rcode: rcServFail},
	{name: "device busy", q: query{name: "temporary.test.", qtype: typeAAAA}, rcode: rcServFail},
	{name: "localhost A", q: query{name: "localhost.", qtype: typeA}, want: []string{"127.0.0.1"}},
	{name: "localhost AAAA", q: query{name: "LocalHost.", qtype: typeAAAA}, want: []string{"::1"}},
	{name: "below localhost", q: query{name: "foo.localhost.", qtype: typeA}, want: []string{"127.0.0.1"}},
	{name: "localhost MX", q: query{name: "localhost.", qtype: typeMX}},
	{name: "not a host name", q: query{name: "a b.test.", qtype: typeA}, digName: `a\032b.test.`, rcode: rcRefused},
	{name: "root", q: query{name: ".", qtype: typeA}, rcode: rcRefused},
	{name: "MX without upstream", q: query{name: "example.test.", qtype: typeMX}, rcode: rcNotImp},
	{name: "A in class CH", q: query{name: "example.test.", qtype: typeA, class: dnsmessage.ClassCHAOS}, rcode: rcNotImp},
}

func TestAnswers(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	for _, c := range answerCases {
		t.Run(c.name, func(t *testing.T) {
			for _, tcp := range []bool{false, true} {
				m := ask(t, s, c.q, tcp)
				var got []string
				for _, a := range answerAddrs(m) {
					got = append(got, a.String())
				}
				if m.Header.RCode != c.rcode || !slices.Equal(got, c.want) || len(got) != len(m.Answers) || m.Header.Truncated {
					t.Errorf("tcp=%v: %v %v (%d answers, TC %v), want %v %v", tcp, m.Header.RCode, got, len(m.Answers), m.Header.Truncated, c.rcode, c.want)
				}
				for _, r := range m.Answers {
					if r.Header.TTL == 0 || r.Header.TTL > 60 {
						t.Errorf("TTL %d", r.Header.TTL)
					}
				}
			}
		})
	}
}

func TestAnswersDig(t *testing.T) {
	needDig(t)
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	for _, c := range answerCases {
		t.Run(c.name, func(t *testing.T) {
			name := c.q.name
			if c.digName != "" {
				name = c.digName
			}
			class := "IN"
			if c.q.class == dnsmessage.ClassCHAOS {
				class = "CH"
			}
			qtype := strings.TrimPrefix(c.q.qtype.String(), "Type")
			var want []string
			for _, a := range c.want {
				want = append(want, qtype+" "+a)
			}
			for _, proto := range []string{"+notcp", "+tcp"} {
				args := []string{proto}
				if c.q.noRD {
					args = append(args, "+nordflag")
				}
				if c.q.edns == 0 {
					args = append(args, "+noedns")
				}
				args = append(args, "-c", class, "-t", qtype, "-q", name)
				out := digOut(t, s, args...)
				if got := digAnswers(out); digStatus(out) != rcodeName(c.rcode) || !slices.Equal(got, want) {
					t.Errorf("dig %s: status %q answers %q, want %s %q\n%s", strings.Join(args, " "), digStatus(out), got, rcodeName(c.rcode), want, out)
				}
			}
		})
	}
}

func TestAnswerTTL(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{TTL: 90 * time.Second})
	m := ask(t, s, query{name: "example.test.", qtype: typeA}, false)
	if len(m.Answers) != 1 || m.Answers[0].Header.TTL != 90 {
		t.Fatalf("answers %v, want one with TTL 90", m.Answers)
	}
	m = ask(t, s, query{name: "example.test.", qtype: typeA}, false)
	if len(m.Answers) != 1 || m.Answers[0].Header.TTL > 90 || m.Answers[0].Header.TTL < 80 {
		t.Fatalf("cached answers %v, want one with TTL a bit under 90", m.Answers)
	}
}

func TestCache(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})

	// A positive answer is looked up once, whatever the case or transport.
	for i, q := range []query{
		{name: "cache.test.", qtype: typeA},
		{name: "CACHE.test.", qtype: typeA},
		{name: "cache.TEST.", qtype: typeA, edns: 1232},
	} {
		m := ask(t, s, q, i == 1)
		if got := answerAddrs(m); len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.4") {
			t.Fatalf("%s: %v", q.name, got)
		}
	}
	if n := dev.Calls("ip4", "cache.test"); n != 1 {
		t.Fatalf("%d lookups of cache.test, want 1", n)
	}
	if out := digOut(t, s, "cache.test", "A"); digStatus(out) != "NOERROR" || dev.Calls("ip4", "cache.test") != 1 {
		t.Fatalf("dig after cache: %d lookups\n%s", dev.Calls("ip4", "cache.test"), out)
	}
	if st := s.Stats(); st.CacheHits < 2 {
		t.Fatalf("cache hits %d, want at least 2", st.CacheHits)
	}

	// NXDOMAIN is confirmed with the other family once, then both are
	// answered from the cache.
	for _, q := range []query{{name: "nx.test.", qtype: typeA}, {name: "nx.test.", qtype: typeA}, {name: "nx.test.", qtype: typeAAAA}} {
		if m := ask(t, s, q, false); m.Header.RCode != rcNX {
			t.Fatalf("%v: %v", q.qtype, m.Header.RCode)
		}
	}
	if a, aaaa := dev.Calls("ip4", "nx.test"), dev.Calls("ip6", "nx.test"); a != 1 || aaaa != 1 {
		t.Fatalf("lookups of nx.test: ip4 %d ip6 %d, want 1 and 1", a, aaaa)
	}

	// No AAAA: the A found while confirming is cached too.
	if m := ask(t, s, query{name: "v4only.test.", qtype: typeAAAA}, false); m.Header.RCode != rcOK || len(m.Answers) != 0 {
		t.Fatalf("AAAA v4only: %v %v", m.Header.RCode, m.Answers)
	}
	if m := ask(t, s, query{name: "v4only.test.", qtype: typeA}, false); len(answerAddrs(m)) != 1 {
		t.Fatalf("A v4only: %v", m.Answers)
	}
	if a, aaaa := dev.Calls("ip4", "v4only.test"), dev.Calls("ip6", "v4only.test"); a != 1 || aaaa != 1 {
		t.Fatalf("lookups of v4only.test: ip4 %d ip6 %d, want 1 and 1", a, aaaa)
	}

	// Failures are not cached: the device may be back next time.
	for range 2 {
		if m := ask(t, s, query{name: "down.test.", qtype: typeA}, false); m.Header.RCode != rcServFail {
			t.Fatal(m.Header.RCode)
		}
	}
	if n := dev.Calls("ip4", "down.test"); n != 2 {
		t.Fatalf("%d lookups of down.test, want 2", n)
	}
}

func TestTimeout(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{Timeout: 200 * time.Millisecond})
	for _, tcp := range []bool{false, true} {
		if m := ask(t, s, query{name: "hang.test.", qtype: typeA}, tcp); m.Header.RCode != rcServFail {
			t.Fatalf("tcp=%v: %v, want SERVFAIL", tcp, m.Header.RCode)
		}
	}
	if out := digOut(t, s, "hang.test", "AAAA"); digStatus(out) != "SERVFAIL" {
		t.Fatalf("dig: %s", out)
	}
}

func TestTruncation(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	cases := []struct {
		q         query
		tcp       bool
		truncated bool
		answers   int
	}{
		{query{name: "many.test.", qtype: typeA}, false, true, 0},
		{query{name: "many.test.", qtype: typeA, edns: 256}, false, true, 0}, // below 512 counts as 512
		{query{name: "many.test.", qtype: typeA, edns: 4096}, false, false, 60},
		{query{name: "many.test.", qtype: typeA}, true, false, 60},
		{query{name: "many.test.", qtype: typeAAAA, edns: 4096}, false, true, 0}, // over 1232
		{query{name: "many.test.", qtype: typeAAAA, edns: 1232}, true, false, 60},
		{query{name: "toomany.test.", qtype: typeA}, true, false, 64}, // capped
	}
	for _, c := range cases {
		m := ask(t, s, c.q, c.tcp)
		if m.Header.Truncated != c.truncated || len(m.Answers) != c.answers || m.Header.RCode != rcOK {
			t.Errorf("%s %v edns %d tcp=%v: TC %v, %d answers, %v; want TC %v, %d answers",
				c.q.name, c.q.qtype, c.q.edns, c.tcp, m.Header.Truncated, len(m.Answers), m.Header.RCode, c.truncated, c.answers)
		}
	}

	t.Run("dig", func(t *testing.T) {
		out := digOut(t, s, "+noedns", "+ignore", "many.test", "A")
		if !strings.Contains(out, " tc") || len(digAnswers(out)) != 0 {
			t.Errorf("dig +ignore: want TC and no answers\n%s", out)
		}
		out = digOut(t, s, "+noedns", "many.test", "A")
		if !strings.Contains(out, "retrying in TCP mode") || len(digAnswers(out)) != 60 {
			t.Errorf("dig: want a retry over TCP and 60 answers\n%s", out)
		}
		if out = digOut(t, s, "+bufsize=1232", "many.test", "A"); len(digAnswers(out)) != 60 {
			t.Errorf("dig with EDNS0: want 60 answers over UDP\n%s", out)
		}
	})
}

func TestConcurrentQueries(t *testing.T) {
	dev := newFakeDevice()
	dev.delay = 20 * time.Millisecond // so that queries for a name overlap
	var names []string
	for i := range 10 {
		name := "c" + string(rune('0'+i)) + ".test"
		names = append(names, name)
		dev.v4[name] = []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})}
		dev.v6[name] = []netip.Addr{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(100 + i)})}
	}
	s := start(t, dev, dnsproxy.Config{MaxInflight: 1000, MaxTCPConns: 1000})

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			name := names[i%10]
			qtype := []dnsmessage.Type{typeA, typeAAAA}[i/10%2]
			m, err := askE(s, query{name: name + ".", qtype: qtype}, i%3 == 0)
			if err != nil {
				errs <- err
				return
			}
			want := dev.v4[name][0]
			if qtype == typeAAAA {
				want = dev.v6[name][0]
			}
			if got := answerAddrs(m); len(got) != 1 || got[0] != want {
				errs <- errors.New(name + ": " + m.GoString())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Queries for a name in flight share one lookup.
	for _, name := range names {
		if a, aaaa := dev.Calls("ip4", name), dev.Calls("ip6", name); a != 1 || aaaa != 1 {
			t.Errorf("%s looked up %d and %d times, want once each", name, a, aaaa)
		}
	}

	t.Run("dig", func(t *testing.T) {
		needDig(t)
		outs := make([]string, 16)
		for i := range outs {
			wg.Go(func() { outs[i] = runDig(s, names[i%10], []string{"A", "AAAA"}[i%2]) })
		}
		wg.Wait()
		for i, out := range outs {
			if digStatus(out) != "NOERROR" || len(digAnswers(out)) != 1 {
				t.Errorf("dig %d:\n%s", i, out)
			}
		}
	})
}

func TestMaxInflight(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{MaxInflight: 2})

	type result struct {
		m   *dnsmessage.Message
		err error
	}
	results := make(chan result, 2)
	for i, name := range []string{"slow1.test.", "slow2.test."} {
		go func() {
			m, err := askE(s, query{name: name, qtype: typeA}, i == 1)
			results <- result{m, err}
		}()
	}
	<-dev.entered
	<-dev.entered

	// Both slots are taken: what needs the device gets SERVFAIL at once.
	for _, tcp := range []bool{false, true} {
		if m := ask(t, s, query{name: "example.test.", qtype: typeA}, tcp); m.Header.RCode != rcServFail {
			t.Fatalf("tcp=%v over the limit: %v, want SERVFAIL", tcp, m.Header.RCode)
		}
	}
	wantOverloaded := uint64(2)
	if _, err := exec.LookPath("dig"); err == nil {
		if out := digOut(t, s, "example.test", "A"); digStatus(out) != "SERVFAIL" {
			t.Errorf("dig over the limit:\n%s", out)
		}
		wantOverloaded++
	}
	// What needs no device is still answered.
	if m := ask(t, s, query{name: "localhost.", qtype: typeA}, false); m.Header.RCode != rcOK || len(m.Answers) != 1 {
		t.Fatalf("localhost over the limit: %v", m.Header.RCode)
	}

	close(dev.release)
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got := answerAddrs(r.m); r.m.Header.RCode != rcOK || len(got) != 1 {
			t.Fatalf("slow query: %v %v", r.m.Header.RCode, got)
		}
	}
	if m := ask(t, s, query{name: "example.test.", qtype: typeA}, false); m.Header.RCode != rcOK {
		t.Fatalf("after the slow ones: %v", m.Header.RCode)
	}
	if st := s.Stats(); st.Overloaded != wantOverloaded {
		t.Fatalf("Overloaded %d, want %d", st.Overloaded, wantOverloaded)
	}
}

func TestStats(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{})
	c, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for _, p := range []struct {
		pkt   []byte
		reply bool
	}{
		{[]byte{1, 2, 3}, false},                // dropped: header
		{bareHeader(0x8000, 0, 0, 0, 0), false}, // dropped: response
		{query{name: "example.test.", qtype: typeA}.pack(1), true},
		{query{name: "example.test.", qtype: typeA}.pack(2), true}, // cache hit
		{query{name: "nope.test.", qtype: typeAAAA}.pack(3), true},
		{query{name: "example.test.", qtype: typeMX}.pack(4), true},
		{bareHeader(0x0100, 0, 0, 0, 0), true}, // FORMERR
	} {
		if _, err := c.Write(p.pkt); err != nil {
			t.Fatal(err)
		}
		if !p.reply {
			continue
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	want := dnsproxy.Stats{
		Queries:     map[string]uint64{"A": 2, "AAAA": 1, "other": 1},
		Responses:   map[string]uint64{"NOERROR": 2, "FORMERR": 1, "SERVFAIL": 0, "NXDOMAIN": 1, "NOTIMP": 1, "REFUSED": 0},
		CacheHits:   1,
		Dropped:     2,
		DropReasons: map[string]uint64{"header": 1, "response": 1},
	}
	if !statsEqual(st, want) {
		t.Fatalf("stats\n%+v\nwant\n%+v", st, want)
	}
}

func statsEqual(a, b dnsproxy.Stats) bool {
	eq := func(x, y map[string]uint64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return eq(a.Queries, b.Queries) && eq(a.Responses, b.Responses) && eq(a.DropReasons, b.DropReasons) &&
		a.CacheHits == b.CacheHits && a.Dropped == b.Dropped && a.Overloaded == b.Overloaded
}

// lockedBuffer is a log sink for many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Names people look up are private; info-level logs must not show them.
func TestLogsNoNamesAtInfo(t *testing.T) {
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		var logs lockedBuffer
		dev := newFakeDevice()
		s := start(t, dev, dnsproxy.Config{Logger: zerolog.New(&logs).Level(level)})
		for _, q := range []query{
			{name: "secret.test.", qtype: typeA},
			{name: "nosecret.test.", qtype: typeA},
			{name: "down.test.", qtype: typeAAAA},
			{name: "secret.test.", qtype: typeMX},
		} {
			ask(t, s, q, false)
		}
		s.Close()
		hasNames := strings.Contains(logs.String(), "secret.test") && strings.Contains(logs.String(), "down.test")
		if level == zerolog.InfoLevel && hasNames || level == zerolog.DebugLevel && !hasNames {
			t.Errorf("level %v: names logged %v\n%s", level, hasNames, logs.String())
		}
	}
}

func TestStartClose(t *testing.T) {
	dev := newFakeDevice()
	s, err := dnsproxy.New(dnsproxy.Config{Lookup: dev.Lookup})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil || s.TCPAddr() != nil {
		t.Fatal("addresses before Start")
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if u, tc := s.Addr().(*net.UDPAddr), s.TCPAddr().(*net.TCPAddr); u.Port != tc.Port || u.Port == 0 {
		t.Fatalf("udp %v tcp %v, want one port", u, tc)
	}
	if err := s.Start("127.0.0.1:0"); !errors.Is(err, dnsproxy.ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}

	// A port in use is a bind error, and Start may be tried again.
	s2, err := dnsproxy.New(dnsproxy.Config{Lookup: dev.Lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(s.Addr().String()); err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	if err := s2.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ask(t, s2, query{name: "example.test.", qtype: typeA}, true)
	s2.Close()

	must(t, s.Close())
	must(t, s.Close())
	if err := s.Start("127.0.0.1:0"); !errors.Is(err, dnsproxy.ErrServerClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	s3, _ := dnsproxy.New(dnsproxy.Config{Lookup: dev.Lookup})
	must(t, s3.Close()) // never started
}

// Close cancels lookups in flight and waits for them (goleak checks).
func TestCloseCancelsLookups(t *testing.T) {
	dev := newFakeDevice()
	s := start(t, dev, dnsproxy.Config{Timeout: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := askE(s, query{name: "slow.test.", qtype: typeA}, true)
		done <- err
	}()
	<-dev.entered
	must(t, s.Close())
	if err := <-done; err == nil {
		t.Fatal("a reply after Close")
	}
}

func TestNewErrors(t *testing.T) {
	lookup := newFakeDevice().Lookup
	listen := (&net.ListenConfig{}).ListenPacket
	for name, cfg := range map[string]dnsproxy.Config{
		"no Lookup":            {},
		"upstream by name":     {Lookup: lookup, Upstream: "dns.google:53", ListenPacket: listen},
		"upstream no port":     {Lookup: lookup, Upstream: "192.0.2.53", ListenPacket: listen},
		"upstream port 0":      {Lookup: lookup, Upstream: "192.0.2.53:0", ListenPacket: listen},
		"upstream, no sockets": {Lookup: lookup, Upstream: "192.0.2.53:53"},
	} {
		if _, err := dnsproxy.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
