package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/frame"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/slip"
	"github.com/uartproxy/uartproxy/internal/uartemu"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// upper is a test Upper: it sends queued payloads and records deliveries.
type upper struct {
	wake chan struct{}

	mu        sync.Mutex
	queue     [][]byte
	delivered [][]byte
	events    chan string
	sessions  []Session
	downs     []error
	got       chan struct{}
}

func newUpper() *upper {
	return &upper{wake: make(chan struct{}, 1), events: make(chan string, 64), got: make(chan struct{}, 1)}
}

func (u *upper) Wake() <-chan struct{} { return u.wake }

func (u *upper) Fill(dst []byte, max int) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queue) == 0 {
		return dst
	}
	p := u.queue[0]
	if len(p) > max {
		// Split like the mux does: the link chooses the size.
		u.queue[0] = p[max:]
		return append(dst, p[:max]...)
	}
	u.queue = u.queue[1:]
	return append(dst, p...)
}

func (u *upper) Deliver(p []byte) error {
	u.mu.Lock()
	u.delivered = append(u.delivered, append([]byte(nil), p...))
	u.mu.Unlock()
	select {
	case u.got <- struct{}{}:
	default:
	}
	return nil
}

func (u *upper) Up(s Session) {
	u.mu.Lock()
	u.sessions = append(u.sessions, s)
	u.mu.Unlock()
	u.events <- "up"
}

func (u *upper) Down(err error) {
	u.mu.Lock()
	u.queue = nil // like the mux: a session's pending data dies with it
	u.downs = append(u.downs, err)
	u.mu.Unlock()
	u.events <- "down"
}

func (u *upper) send(p ...[]byte) {
	u.mu.Lock()
	u.queue = append(u.queue, p...)
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *upper) bytes() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Join(u.delivered, nil)
}

func expect(t *testing.T, u *upper, want string, within time.Duration) {
	t.Helper()
	select {
	case ev := <-u.events:
		if ev != want {
			t.Fatalf("event %q, want %q", ev, want)
		}
	case <-time.After(within):
		t.Fatalf("no %q within %v", want, within)
	}
}

func cfg(role message.Role) Config {
	c := DefaultConfig()
	c.Hello.Role = role
	c.Hello.Baud = 3000000
	return c
}

type pair struct {
	host, dev         *Link
	hostUp, devUp     *upper
	hostPort, devPort *uartemu.Port
}

func newPair(t *testing.T, line uartemu.Line) *pair {
	t.Helper()
	hp, dp := uartemu.New(uartemu.Symmetric(line))
	p := &pair{hostUp: newUpper(), devUp: newUpper(), hostPort: hp, devPort: dp}
	var err error
	if p.host, err = New(hp, cfg(message.RoleHost), p.hostUp); err != nil {
		t.Fatal(err)
	}
	dc := cfg(message.RoleDevice)
	dc.Hello.Window = 16
	if p.dev, err = New(dp, dc, p.devUp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.host.Close()
		p.dev.Close()
	})
	expect(t, p.hostUp, "up", 3*time.Second)
	expect(t, p.devUp, "up", 3*time.Second)
	return p
}

func TestHandshakeNegotiates(t *testing.T) {
	p := newPair(t, uartemu.Line{Baud: 3000000, FlowControl: true})
	hs, ds := p.hostUp.sessions[0], p.devUp.sessions[0]
	if hs.Peer.Session != ds.Local.Session || ds.Peer.Session != hs.Local.Session {
		t.Fatalf("sessions do not match: host %+v device %+v", hs, ds)
	}
	if hs.Window != 16 || ds.Window != 16 || hs.MaxPayload != 2048 || hs.Revision != 1 {
		t.Fatalf("negotiated %+v", hs)
	}
	if hs.Peer.Role != message.RoleDevice || !p.host.Stats().Established {
		t.Fatal("host does not see a device")
	}
}

// numbered makes n payloads of random sizes whose first 4 bytes count up,
// so loss, duplication and reordering all show.
func numbered(n, maxLen int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]byte, n)
	for i := range out {
		p := make([]byte, 4+r.IntN(maxLen-4))
		binary.BigEndian.PutUint32(p, uint32(i))
		for j := 4; j < len(p); j++ {
			p[j] = byte(r.Uint32())
		}
		out[i] = p
	}
	return out
}

func waitBytes(t *testing.T, u *upper, want []byte, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		got := u.bytes()
		if len(got) >= len(want) {
			if !bytes.Equal(got, want) {
				t.Fatalf("delivered %d bytes, differ from the %d sent", len(got), len(want))
			}
			return
		}
		select {
		case <-u.got:
		case <-deadline:
			t.Fatalf("delivered %d of %d bytes within %v", len(got), len(want), within)
		}
	}
}

func TestExactlyOnceInOrder(t *testing.T) {
	lines := map[string]uartemu.Line{
		"clean":       {Baud: 3000000, FlowControl: true},
		"ber1e-4":     {Baud: 3000000, FlowControl: true, BER: 1e-4, Seed: 1},
		"bursts":      {Baud: 3000000, FlowControl: true, BurstRate: 1e-4, BurstLen: 16, Seed: 2},
		"drops":       {Baud: 3000000, FlowControl: true, DropRate: 1e-3, Seed: 3},
		"no-rtscts":   {Baud: 3000000, FlowControl: false, RxBuffer: 4096, Seed: 4},
		"unpaced":     {FlowControl: true},
		"everything":  {Baud: 3000000, BER: 3e-5, DropRate: 1e-4, BurstRate: 1e-5, RxBuffer: 8192, Seed: 5},
		"slow-115200": {Baud: 115200, FlowControl: true, BER: 1e-5, Seed: 6},
	}
	for name, line := range lines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, line)
			n := 400
			if line.Baud == 115200 {
				n = 40
			}
			up := numbered(n, 3000, 10)
			down := numbered(n, 3000, 11)
			p.hostUp.send(up...)
			p.devUp.send(down...)
			waitBytes(t, p.devUp, bytes.Join(up, nil), 60*time.Second)
			waitBytes(t, p.hostUp, bytes.Join(down, nil), 60*time.Second)
			hs := p.host.Stats()
			t.Logf("host: tx %d data, %d retx (%d fast, %d timeouts), dropped %v", hs.TxData, hs.Retransmits, hs.FastRetransmits, hs.Timeouts, nonZero(hs.Dropped))
			if hs.Sessions != 1 || hs.PeerRestarts != 0 {
				t.Fatalf("session was not kept: %+v", hs)
			}
			// A clean line needs none (the benchmarks show 0), but under
			// -race on a loaded machine an ack may miss the RTO now and
			// then. A loss-detection bug shows as a cascade: most frames
			// resent.
			if name == "clean" && hs.Retransmits*4 > hs.TxData {
				t.Errorf("clean line needed %d retransmissions for %d frames", hs.Retransmits, hs.TxData)
			}
		})
	}
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

// detached lends a port to a link whose Close must not close the port (a
// rebooting device keeps its UART).
type detached struct {
	*uartemu.Port
	mu     sync.Mutex
	closed bool
}

func (d *detached) Read(p []byte) (int, error) {
	n, err := d.Port.Read(p)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, errors.New("detached")
	}
	if err != nil && errors.Is(err, uartemu.ErrClosed) {
		return n, err
	}
	return n, err
}

func (d *detached) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return d.Port.SetReadDeadline(time.Now())
}

func TestPeerRestartIsDetected(t *testing.T) {
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{Baud: 3000000, FlowControl: true}))
	defer dp.Close()
	hostUp := newUpper()
	host, err := New(hp, cfg(message.RoleHost), hostUp)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	boot := func() (*Link, *upper) {
		dp.SetReadDeadline(time.Time{})
		u := newUpper()
		l, err := New(&detached{Port: dp}, cfg(message.RoleDevice), u)
		if err != nil {
			t.Fatal(err)
		}
		return l, u
	}
	dev, devUp := boot()
	expect(t, hostUp, "up", 3*time.Second)
	expect(t, devUp, "up", 3*time.Second)
	first := host.Stats().PeerSession

	// Reboot mid-transfer: the old device vanishes with frames in flight.
	hostUp.send(numbered(200, 2000, 1)...)
	time.Sleep(20 * time.Millisecond)
	dev.Close()
	dp.Flush()
	start := time.Now()
	dev2, dev2Up := boot()
	defer dev2.Close()
	expect(t, hostUp, "down", 2*time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("restart noticed after %v", d)
	}
	hostUp.mu.Lock()
	downErr := hostUp.downs[0]
	hostUp.mu.Unlock()
	if !errors.Is(downErr, ErrPeerRestarted) {
		t.Fatalf("down error %v, want ErrPeerRestarted", downErr)
	}
	expect(t, hostUp, "up", 2*time.Second)
	expect(t, dev2Up, "up", 2*time.Second)
	if s := host.Stats(); s.PeerSession == first || s.PeerRestarts != 1 {
		t.Fatalf("stats after restart: %+v", s)
	}
	// The new session carries data from a clean slate.
	msgs := numbered(50, 1000, 2)
	hostUp.send(msgs...)
	waitBytes(t, dev2Up, bytes.Join(msgs, nil), 10*time.Second)
}

func TestDeadLinkAndRecovery(t *testing.T) {
	p := newPair(t, uartemu.Line{Baud: 3000000, FlowControl: true})
	p.devPort.SetSilent(true)
	start := time.Now()
	expect(t, p.hostUp, "down", 3*time.Second)
	if d := time.Since(start); d < DefaultConfig().DeadTimeout-100*time.Millisecond {
		t.Fatalf("declared dead after only %v", d)
	}
	if err := p.hostUp.downs[0]; !errors.Is(err, ErrDead) {
		t.Fatalf("down error %v", err)
	}
	p.devPort.SetSilent(false)
	// Both sides re-handshake with fresh sessions.
	expect(t, p.hostUp, "up", 3*time.Second)
	if s := p.host.Stats(); s.DeadLinks != 1 || !s.Established {
		t.Fatalf("stats: %+v", s)
	}
}

// rawHello builds a HELLO frame from an arbitrary CBOR map.
func rawHello(t *testing.T, m map[int]any) []byte {
	b, err := message.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Hello}, b))
}

func TestIncompatiblePeerIsReported(t *testing.T) {
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	defer dp.Close()
	u := newUpper()
	l, err := New(hp, cfg(message.RoleHost), u)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 5; i++ {
		dp.Write(rawHello(t, map[int]any{1: 7, 2: 9, 3: 1, 4: 1234, 5: 0, 6: 1024, 7: 8}))
		time.Sleep(20 * time.Millisecond)
	}
	s := l.Stats()
	if s.Established || s.LastIncompatibility == "" || s.Dropped[DropBadHello] == 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestOwnEchoIsNotAPeer(t *testing.T) {
	// A tty left in echo mode sends our HELLOs back to us.
	hp, dp := uartemu.New(uartemu.Symmetric(uartemu.Line{FlowControl: true}))
	defer dp.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := dp.Read(buf)
			if err != nil {
				return
			}
			dp.Write(buf[:n])
		}
	}()
	l, err := New(hp, cfg(message.RoleHost), newUpper())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	s := l.Stats()
	l.Close()
	if s.Established || s.Dropped[DropBadHello] == 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestHostileInputKeepsSessionAlive(t *testing.T) {
	p := newPair(t, uartemu.Line{FlowControl: true})
	// Inject garbage straight onto the host's receive line, interleaved with
	// real traffic: random bytes, oversized frames, bad CRCs, bogus acks,
	// DATA far outside the window, seed v3 frames, unknown types.
	r := rand.New(rand.NewPCG(9, 9))
	var evil [][]byte
	junk := make([]byte, 20000)
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	evil = append(evil, junk, slip.AppendEncode(nil, make([]byte, 9000)))
	good := frame.Append(nil, frame.Header{Type: frame.Ack, Ack: 40000, Sack: 0xffffffff}, nil)
	evil = append(evil, slip.AppendEncode(nil, good))
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	evil = append(evil, slip.AppendEncode(nil, bad))
	evil = append(evil, slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: frame.Data, Seq: 30000}, []byte{0x82, 5, 1})))
	evil = append(evil, slip.AppendEncode(nil, frame.Append(nil, frame.Header{Type: 9}, nil)))
	evil = append(evil, slip.AppendEncode(nil, frame.AppendV3(nil, frame.V3Header{Type: frame.V3Req, Seq: 1}, []byte{0xa0})))
	evil = append(evil, rawHello(t, map[int]any{1: 1}))

	msgs := numbered(300, 2000, 3)
	p.hostUp.send(msgs...)
	p.devUp.send(msgs...)
	// The device link is not the writer of these bytes, so write them from
	// a separate goroutine on the device's port — they mix into its stream
	// between (never inside) its frames' bytes only by chance; either way
	// the host must cope.
	for _, e := range evil {
		p.devPort.Write(e)
	}
	waitBytes(t, p.devUp, bytes.Join(msgs, nil), 20*time.Second)
	waitBytes(t, p.hostUp, bytes.Join(msgs, nil), 20*time.Second)
	s := p.host.Stats()
	if !s.Established || s.Sessions != 1 {
		t.Fatalf("session lost to garbage: %+v", s)
	}
	for _, r := range []string{DropCRC, DropSlipLong, DropBadAck, DropOutOfWin, DropSeedV3, DropBadHello} {
		if s.Dropped[r] == 0 {
			t.Errorf("no %s drop counted: %v", r, nonZero(s.Dropped))
		}
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Hello: message.Hello{MaxPayload: 100}},
		{Hello: message.Hello{MaxPayload: 9000}},
		{Hello: message.Hello{Window: 33}},
		{KeepAlive: time.Second, DeadTimeout: time.Second},
	}
	for _, c := range bad {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestRTTAndSizer(t *testing.T) {
	r := newRTT(500*time.Millisecond, 20*time.Millisecond, 2*time.Second)
	for i := 0; i < 50; i++ {
		r.sample(10 * time.Millisecond)
	}
	if r.rto < 20*time.Millisecond || r.rto > 30*time.Millisecond {
		t.Fatalf("steady 10ms: rto %v", r.rto)
	}
	r.timeout()
	r.timeout()
	if r.rto < 80*time.Millisecond {
		t.Fatalf("backoff: rto %v", r.rto)
	}
	if d := ackDelayBound(2048, 115200, 0); d < 350*time.Millisecond || d > 450*time.Millisecond {
		t.Fatalf("ack delay bound at 115200: %v", d)
	}
	z := newSizer(2048)
	if l := z.limit(2048); l < 400 || l > 900 {
		t.Fatalf("fresh sizer starts at %d, want mid-sized frames", l)
	}
	for i := 0; i < 30; i++ {
		z.record(z.limit(2048), false)
	}
	if z.limit(2048) != 2048 {
		t.Fatalf("clean sizer still at %d after 30 good frames", z.limit(2048))
	}
	z = newSizer(2048)
	// One bit in 1e5 wrong: about one 2 KiB frame in six lost.
	r2 := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		n := z.limit(2048)
		lost := r2.Float64() < 1-pow(1-1e-5, 8*(n+32))
		z.record(n, lost)
	}
	if l := z.limit(2048); l < 300 || l > 1200 {
		t.Fatalf("sizer at BER 1e-5 settled at %d", l)
	}
}

func pow(x float64, n int) float64 {
	r := 1.0
	for i := 0; i < n; i++ {
		r *= x
	}
	return r
}
