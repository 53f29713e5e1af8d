package dnsproxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/uartproxy/uartproxy/internal/dnsproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDevice stands in for the ESP32's resolver. It knows the names in
// v4 and v6, says "no such host" for a family a name lacks (as the real
// device does), and has names that fail or hang.
type fakeDevice struct {
	v4, v6 map[string][]netip.Addr
	// delay is how long every lookup takes.
	delay time.Duration
	// release unblocks lookups of names starting "slow"; entered gets
	// their names when they start.
	release chan struct{}
	entered chan string

	mu    sync.Mutex
	calls map[string]int // by "ip4 name"
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{
		v4: map[string][]netip.Addr{
			"example.test":  {netip.MustParseAddr("192.0.2.1")},
			"dual.test":     {netip.MustParseAddr("192.0.2.2")},
			"v4only.test":   {netip.MustParseAddr("192.0.2.3")},
			"cache.test":    {netip.MustParseAddr("192.0.2.4")},
			"mapped.test":   {netip.MustParseAddr("::ffff:192.0.2.5")},
			"secret.test":   {netip.MustParseAddr("192.0.2.6")},
			"a.test":        {netip.MustParseAddr("192.0.2.7")},
			"many.test":     addrs("192.0.2.0", 60),
			"toomany.test":  addrs("198.51.100.0", 200),
			"_srv.tcp.test": {netip.MustParseAddr("192.0.2.8")},
		},
		v6: map[string][]netip.Addr{
			"example.test": {netip.MustParseAddr("2001:db8::1")},
			"dual.test":    {netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")},
			"v6only.test":  {netip.MustParseAddr("2001:db8::4")},
			"many.test":    addrs("2001:db8::", 60),
		},
		release: make(chan struct{}),
		entered: make(chan string, 16),
		calls:   make(map[string]int),
	}
}

// addrs returns n addresses counting up from the one after first.
func addrs(first string, n int) []netip.Addr {
	a := netip.MustParseAddr(first)
	var out []netip.Addr
	for range n {
		a = a.Next()
		out = append(out, a)
	}
	return out
}

func (f *fakeDevice) Lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	f.calls[network+" "+host]++
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case host == "down.test":
		// What a dial through the mux gives with no link up.
		return nil, &net.OpError{Op: "dial", Net: "udp", Err: fmt.Errorf("mux: not connected: %w", syscall.ENETDOWN)}
	case host == "temporary.test":
		return nil, &net.DNSError{Err: "device busy", Name: host, IsTemporary: true}
	case host == "hang.test":
		<-ctx.Done()
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
	case host == "textnx.test":
		return nil, errors.New("lookup textnx.test: no such host")
	case host == "empty.test":
		return []netip.Addr{}, nil
	case strings.HasPrefix(host, "slow"):
		select {
		case f.entered <- host:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-f.release:
			return []netip.Addr{netip.MustParseAddr("192.0.2.99")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	v4, ok4 := f.v4[host]
	v6, ok6 := f.v6[host]
	if !ok4 && !ok6 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := v4
	if network == "ip6" {
		a = v6
	}
	if len(a) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

func (f *fakeDevice) Calls(network, host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[network+" "+host]
}

func (f *fakeDevice) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// start returns a started server for cfg, with dev's Lookup unless cfg
// has one; it is closed when the test ends.
func start(t testing.TB, dev *fakeDevice, cfg dnsproxy.Config) *dnsproxy.Server {
	t.Helper()
	if cfg.Lookup == nil {
		cfg.Lookup = dev.Lookup
	}
	s, err := dnsproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// query describes a query the Go client sends.
type query struct {
	name  string
	qtype dnsmessage.Type
	class dnsmessage.Class // IN if zero
	edns  int              // EDNS0 UDP size; none if zero
	noRD  bool
}

var nextID struct {
	sync.Mutex
	id uint16
}

func newID() uint16 {
	nextID.Lock()
	defer nextID.Unlock()
	nextID.id++
	return nextID.id*7919 + 1
}

// pack builds q with id; it panics on a name dnsmessage rejects, which
// is a mistake in the test.
func (q query) pack(id uint16) []byte {
	class := q.class
	if class == 0 {
		class = dnsmessage.ClassINET
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: !q.noRD})
	b.EnableCompression()
	check(b.StartQuestions())
	check(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q.name), Type: q.qtype, Class: class}))
	if q.edns > 0 {
		check(b.StartAdditionals())
		var rh dnsmessage.ResourceHeader
		check(rh.SetEDNS0(q.edns, dnsmessage.RCodeSuccess, false))
		check(b.OPTResource(rh, dnsmessage.OPTResource{}))
	}
	msg, err := b.Finish()
	check(err)
	return msg
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

// ask sends q to s over UDP or TCP with the Go client, checks the parts
// of the reply every reply must have right, and returns it.
func ask(t testing.TB, s *dnsproxy.Server, q query, tcp bool) *dnsmessage.Message {
	t.Helper()
	m, err := askE(s, q, tcp)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// askE is ask for goroutines other than the test's.
func askE(s *dnsproxy.Server, q query, tcp bool) (*dnsmessage.Message, error) {
	id := newID()
	raw, err := exchange(s.Addr().String(), q.pack(id), id, tcp)
	if err != nil {
		return nil, fmt.Errorf("%s %v tcp=%v: %w", q.name, q.qtype, tcp, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(raw); err != nil {
		return nil, fmt.Errorf("%s %v: reply does not parse: %w", q.name, q.qtype, err)
	}
	limit := 512
	if tcp {
		limit = 65535
	} else if q.edns > 0 {
		limit = min(max(q.edns, 512), 1232)
	}
	if len(raw) > limit {
		return &m, fmt.Errorf("%s %v: reply of %d bytes, limit %d", q.name, q.qtype, len(raw), limit)
	}
	h := m.Header
	if !h.Response || h.ID != id || !h.RecursionAvailable || h.RecursionDesired != !q.noRD {
		return &m, fmt.Errorf("%s %v: header %+v, want a response with ID %d, RA, RD %v", q.name, q.qtype, h, id, !q.noRD)
	}
	if len(m.Questions) != 1 || m.Questions[0].Name.String() != q.name || m.Questions[0].Type != q.qtype {
		return &m, fmt.Errorf("%s %v: questions %v", q.name, q.qtype, m.Questions)
	}
	var opts []dnsmessage.Resource
	for _, r := range m.Additionals {
		if r.Header.Type == dnsmessage.TypeOPT {
			opts = append(opts, r)
		}
	}
	switch {
	case q.edns == 0 && len(opts) != 0:
		return &m, fmt.Errorf("%s %v: OPT in the reply to a query without", q.name, q.qtype)
	case q.edns > 0 && (len(opts) != 1 || opts[0].Header.Class != 1232):
		return &m, fmt.Errorf("%s %v: want one OPT with size 1232, got %v", q.name, q.qtype, opts)
	}
	for _, r := range m.Answers {
		if r.Header.Name.String() != q.name {
			return &m, fmt.Errorf("%s %v: answer for %s", q.name, q.qtype, r.Header.Name)
		}
	}
	return &m, nil
}

// exchange sends one query and returns the reply with the ID id.
func exchange(addr string, pkt []byte, id uint16, tcp bool) ([]byte, error) {
	if tcp {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(tcpFrame(pkt)); err != nil {
			return nil, err
		}
		return readTCP(c)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return buf[:n], nil
		}
	}
}

func tcpFrame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

func readTCP(c net.Conn) ([]byte, error) {
	var prefix [2]byte
	if _, err := io.ReadFull(c, prefix[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(prefix[:]))
	_, err := io.ReadFull(c, msg)
	return msg, err
}

// answerAddrs returns the A and AAAA answers of m.
func answerAddrs(m *dnsmessage.Message) []netip.Addr {
	var out []netip.Addr
	for _, r := range m.Answers {
		switch b := r.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(b.AAAA))
		}
	}
	return out
}

// needDig skips the test if dig is not installed.
func needDig(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not on PATH (apt-get install dnsutils)")
	}
}

// digOut runs dig against s and returns its output; the test is skipped
// if dig is not installed.
func digOut(t testing.TB, s *dnsproxy.Server, args ...string) string {
	t.Helper()
	needDig(t)
	return runDig(s, args...)
}

// runDig is digOut for goroutines other than the test's.
func runDig(s *dnsproxy.Server, args ...string) string {
	port := s.Addr().(*net.UDPAddr).Port
	args = append([]string{"@127.0.0.1", "-p", strconv.Itoa(port), "+tries=1", "+time=2"}, args...)
	out, _ := exec.Command("dig", args...).CombinedOutput() // dig's exit code says little; the output says it all
	return string(out)
}

// digStatus returns the status dig printed ("NOERROR"), or "" if none.
func digStatus(out string) string {
	_, after, ok := strings.Cut(out, "status: ")
	if !ok {
		return ""
	}
	status, _, _ := strings.Cut(after, ",")
	return status
}

// digAnswers returns the data of the answer records dig printed, like
// "A 192.0.2.1" or "MX 10 mail.example.test.".
func digAnswers(out string) []string {
	var res []string
	in := false
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			in = true
		case line == "" || strings.HasPrefix(line, ";;"):
			in = false
		case in:
			f := strings.Fields(line) // name ttl class type data...
			if len(f) >= 5 {
				res = append(res, strings.Join(f[3:], " "))
			}
		}
	}
	return res
}

func rcodeName(rc dnsmessage.RCode) string {
	return map[dnsmessage.RCode]string{
		dnsmessage.RCodeSuccess: "NOERROR", dnsmessage.RCodeFormatError: "FORMERR",
		dnsmessage.RCodeServerFailure: "SERVFAIL", dnsmessage.RCodeNameError: "NXDOMAIN",
		dnsmessage.RCodeNotImplemented: "NOTIMP", dnsmessage.RCodeRefused: "REFUSED",
	}[rc]
}
