package dnsproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/dnsproxy"
)

// upstream is a DNS server for the relay tests. It answers MX and TXT,
// keeps the queries it got, and has names that misbehave:
// silent.test. (no answer), spoof.test. (forged replies first),
// big.test. (a 2 KB reply), nx.test. (NXDOMAIN).
type upstream struct {
	pc    net.PacketConn
	spoof net.PacketConn // another socket, for replies from the wrong port
	done  chan struct{}
	count atomic.Int32

	mu      sync.Mutex
	queries [][]byte
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spoof, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{pc: pc, spoof: spoof, done: make(chan struct{})}
	go u.serve()
	t.Cleanup(func() {
		pc.Close()
		spoof.Close()
		<-u.done
	})
	return u
}

func (u *upstream) Addr() string { return u.pc.LocalAddr().String() }

func (u *upstream) Last() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queries) == 0 {
		return nil
	}
	return u.queries[len(u.queries)-1]
}

func (u *upstream) serve() {
	defer close(u.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := u.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		u.count.Add(1)
		u.mu.Lock()
		u.queries = append(u.queries, bytes.Clone(buf[:n]))
		u.mu.Unlock()
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		edns := bytes.Contains(buf[:n], []byte{0, 0, 41}) // an OPT record, near enough for these queries
		name := strings.ToLower(q.Name.String())
		if name == "silent.test." {
			continue
		}
		if name == "spoof.test." {
			u.spoof.WriteTo(u.reply(h.ID, q, 99, "evil.test.", edns), from) // right ID, wrong port
			u.pc.WriteTo(u.reply(h.ID+1, q, 98, "evil.test.", edns), from)  // wrong ID
			q2 := q
			q2.Name = dnsmessage.MustNewName("other.test.")
			u.pc.WriteTo(u.reply(h.ID, q2, 97, "evil.test.", edns), from) // wrong question
		}
		u.pc.WriteTo(u.reply(h.ID, q, 10, "mail.example.test.", edns), from)
	}
}

// reply builds the answer to q; MX answers get pref and host. With edns
// it has an OPT record, as the query had.
func (u *upstream) reply(id uint16, q dnsmessage.Question, pref uint16, host string, edns bool) []byte {
	name := strings.ToLower(q.Name.String())
	hdr := dnsmessage.Header{ID: id, Response: true, RecursionDesired: true, RecursionAvailable: true}
	if name == "nx.test." {
		hdr.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, hdr)
	b.EnableCompression()
	check(b.StartQuestions())
	check(b.Question(q))
	check(b.StartAnswers())
	rh := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: 300}
	switch {
	case hdr.RCode != 0:
	case q.Type == dnsmessage.TypeMX:
		check(b.MXResource(rh, dnsmessage.MXResource{Pref: pref, MX: dnsmessage.MustNewName(host)}))
	case q.Type == dnsmessage.TypeTXT && name == "big.test.":
		for i := range 20 {
			check(b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{fmt.Sprintf("%02d", i) + strings.Repeat("x", 98)}}))
		}
	case q.Type == dnsmessage.TypeTXT:
		check(b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{"hello"}}))
	}
	if edns {
		check(b.StartAdditionals())
		var opt dnsmessage.ResourceHeader
		check(opt.SetEDNS0(1232, dnsmessage.RCodeSuccess, false))
		check(b.OPTResource(opt, dnsmessage.OPTResource{}))
	}
	msg, err := b.Finish()
	check(err)
	return msg
}

func startRelay(t *testing.T, u *upstream, cfg dnsproxy.Config) (*dnsproxy.Server, *fakeDevice) {
	t.Helper()
	dev := newFakeDevice()
	cfg.Upstream = u.Addr()
	if cfg.ListenPacket == nil {
		cfg.ListenPacket = (&net.ListenConfig{}).ListenPacket
	}
	return start(t, dev, cfg), dev
}

func mxOf(m *dnsmessage.Message) []string {
	var out []string
	for _, r := range m.Answers {
		if mx, ok := r.Body.(*dnsmessage.MXResource); ok {
			out = append(out, fmt.Sprintf("%d %s", mx.Pref, mx.MX))
		}
	}
	return out
}

func TestUpstreamRelay(t *testing.T) {
	u := startUpstream(t)
	s, dev := startRelay(t, u, dnsproxy.Config{})
	for _, tcp := range []bool{false, true} {
		for _, q := range []query{
			{name: "example.test.", qtype: typeMX},
			{name: "Example.TEST.", qtype: typeMX, edns: 1232},
			{name: "spoof.test.", qtype: typeMX}, // forged replies are ignored
		} {
			id := newID()
			pkt := q.pack(id)
			m := ask(t, s, q, tcp)
			if got := mxOf(m); m.Header.RCode != rcOK || len(got) != 1 || got[0] != "10 mail.example.test." {
				t.Errorf("%s MX tcp=%v: %v %v", q.name, tcp, m.Header.RCode, got)
			}
			// Relayed unchanged: the same bytes but for the ID ask chose.
			last := u.Last()
			if len(last) != len(pkt) || !bytes.Equal(last[2:], pkt[2:]) {
				t.Errorf("upstream got %q, want %q", last, pkt)
			}
		}
	}
	txt := ask(t, s, query{name: "example.test.", qtype: dnsmessage.TypeTXT}, false)
	if len(txt.Answers) != 1 {
		t.Errorf("TXT: %v", txt.Answers)
	}
	if m := ask(t, s, query{name: "nx.test.", qtype: typeMX}, false); m.Header.RCode != rcNX {
		t.Errorf("NXDOMAIN from upstream: %v", m.Header.RCode)
	}

	// A and AAAA still go to the device, never upstream.
	before := u.count.Load()
	ask(t, s, query{name: "example.test.", qtype: typeA}, false)
	ask(t, s, query{name: "example.test.", qtype: typeAAAA}, true)
	if u.count.Load() != before || dev.TotalCalls() != 2 {
		t.Errorf("A/AAAA: %d upstream queries, %d lookups; want 0 and 2", u.count.Load()-before, dev.TotalCalls())
	}

	st := s.Stats()
	if st.Queries["other"] != 8 || st.Responses["NXDOMAIN"] != 1 {
		t.Errorf("stats %+v", st)
	}

	t.Run("dig", func(t *testing.T) {
		for _, proto := range []string{"+notcp", "+tcp"} {
			out := digOut(t, s, proto, "-t", "MX", "-q", "example.test")
			if got := digAnswers(out); digStatus(out) != "NOERROR" || len(got) != 1 || got[0] != "MX 10 mail.example.test." {
				t.Errorf("dig %s MX: %q\n%s", proto, got, out)
			}
		}
	})
}

func TestUpstreamTruncates(t *testing.T) {
	u := startUpstream(t)
	s, _ := startRelay(t, u, dnsproxy.Config{})
	for _, c := range []struct {
		q         query
		tcp       bool
		truncated bool
	}{
		{query{name: "big.test.", qtype: dnsmessage.TypeTXT}, false, true},
		{query{name: "big.test.", qtype: dnsmessage.TypeTXT, edns: 4096}, false, true}, // 2 KB is over 1232
		{query{name: "big.test.", qtype: dnsmessage.TypeTXT}, true, false},
	} {
		m := ask(t, s, c.q, c.tcp)
		if m.Header.Truncated != c.truncated || (c.truncated != (len(m.Answers) == 0)) || !c.truncated && len(m.Answers) != 20 {
			t.Errorf("edns %d tcp=%v: TC %v with %d answers", c.q.edns, c.tcp, m.Header.Truncated, len(m.Answers))
		}
	}
	t.Run("dig", func(t *testing.T) {
		out := digOut(t, s, "-t", "TXT", "-q", "big.test")
		if !strings.Contains(out, "retrying in TCP mode") || len(digAnswers(out)) != 20 {
			t.Errorf("dig TXT: want a retry over TCP and 20 answers\n%s", out)
		}
	})
}

func TestUpstreamFailures(t *testing.T) {
	u := startUpstream(t)
	s, _ := startRelay(t, u, dnsproxy.Config{Timeout: 300 * time.Millisecond})
	for _, tcp := range []bool{false, true} {
		if m := ask(t, s, query{name: "silent.test.", qtype: typeMX}, tcp); m.Header.RCode != rcServFail {
			t.Errorf("silent upstream tcp=%v: %v, want SERVFAIL", tcp, m.Header.RCode)
		}
	}

	down := func(ctx context.Context, network, address string) (net.PacketConn, error) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: syscall.ENETDOWN}
	}
	s2, _ := startRelay(t, u, dnsproxy.Config{ListenPacket: down})
	if m := ask(t, s2, query{name: "example.test.", qtype: typeMX}, false); m.Header.RCode != rcServFail {
		t.Errorf("device down: %v, want SERVFAIL", m.Header.RCode)
	}
	if out := digOut(t, s2, "-t", "MX", "-q", "example.test"); digStatus(out) != "SERVFAIL" {
		t.Errorf("dig, device down:\n%s", out)
	}
}

func TestNoUpstreamDig(t *testing.T) {
	s := start(t, newFakeDevice(), dnsproxy.Config{})
	for _, qtype := range []string{"MX", "TXT", "SRV", "PTR"} {
		if out := digOut(t, s, "-t", qtype, "-q", "example.test"); digStatus(out) != "NOTIMP" {
			t.Errorf("%s without upstream:\n%s", qtype, out)
		}
	}
}
