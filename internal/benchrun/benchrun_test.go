package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/uartproxy/uartproxy/internal/meter"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uartproxy/uartproxy/internal/emulator"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// baud keeps the tests quick: 300 KB/s each way.
const baud = 3000000

func newBed(t *testing.T, l uartemu.Line) *testbed.Bed {
	t.Helper()
	dc := emulator.DefaultConfig()
	dc.Baud = l.Baud
	bed, err := testbed.New(testbed.Options{Line: uartemu.Symmetric(l), Device: dc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bed.Close)
	return bed
}

// short is a quick plan; the figures still come from a whole window.
var short = Options{Duration: 500 * time.Millisecond, Warmup: 200 * time.Millisecond, Target: "testbed", Flow: "rtscts"}

func TestRunClean(t *testing.T) {
	bed := newBed(t, uartemu.Line{Baud: baud, FlowControl: true})
	var mu sync.Mutex
	seen := map[string]time.Duration{} // phase → last done
	rep, err := Run(t.Context(), BedTarget(bed), short, func(phase string, done, total time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if total != short.Warmup+short.Duration || done < seen[phase] || done > total {
			t.Errorf("progress %s %v of %v after %v", phase, done, total, seen[phase])
		}
		seen[phase] = done
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PhaseEcho, PhaseUp, PhaseDown, PhaseBoth} {
		if seen[name] != short.Warmup+short.Duration {
			t.Errorf("progress of %s ended at %v, want %v", name, seen[name], short.Warmup+short.Duration)
		}
	}
	if rep.Baud != baud || rep.LineRate != baud/10 || !rep.DeviceCounters || rep.Target != "testbed" || rep.Flow != "rtscts" {
		t.Errorf("report header %+v", rep)
	}
	if len(rep.Phases) != 4 {
		t.Fatalf("%d phases, want 4: %+v", len(rep.Phases), rep.Phases)
	}
	for _, p := range rep.Phases {
		if p.Window < short.Duration.Seconds() {
			t.Errorf("%s: window %vs, want at least %v", p.Name, p.Window, short.Duration)
		}
		if p.Device == nil {
			t.Errorf("%s: no device figures from a testbed", p.Name)
		}
		for _, f := range []*LinkFigures{&p.Host, p.Device} {
			if f != nil && (f.FramesReceived == 0 || f.CRCErrors != 0 || f.CRCErrorRate != 0) {
				t.Errorf("%s: figures %+v on a clean line", p.Name, *f)
			}
		}
	}

	echo := rep.Phase(PhaseEcho)
	if r := echo.RTT; r == nil || r.Count == 0 || r.Size != defaultEchoSize || !(0 < r.MinMS && r.MinMS <= r.MedianMS && r.MedianMS <= r.P99MS && r.P99MS <= r.MaxMS) {
		t.Errorf("echo RTT %+v", echo.RTT)
	}
	if echo.Up != nil || echo.Down != nil {
		t.Errorf("echo phase has goodput %+v %+v", echo.Up, echo.Down)
	}

	check := func(name, dir string, g *Goodput, counted string) {
		t.Helper()
		if g == nil {
			t.Errorf("%s: no %s goodput", name, dir)
			return
		}
		if !(g.LineShare > 0 && g.LineShare < 1) || g.Bytes <= 0 || g.BytesPerSecond <= 0 || g.CountedAt != counted {
			t.Errorf("%s %s: %+v, want a share in (0, 1) counted at %s", name, dir, *g, counted)
		}
		if want := g.BytesPerSecond / (baud / 10); g.LineShare != want {
			t.Errorf("%s %s: share %v, want %v", name, dir, g.LineShare, want)
		}
	}
	up, down, both := rep.Phase(PhaseUp), rep.Phase(PhaseDown), rep.Phase(PhaseBoth)
	check(PhaseUp, "up", up.Up, CountedDevice)
	check(PhaseDown, "down", down.Down, CountedHostRead)
	check(PhaseBoth, "up", both.Up, CountedDevice)
	check(PhaseBoth, "down", both.Down, CountedHostRead)
	if up.Down != nil || down.Up != nil {
		t.Errorf("one-way phases measured the other way: %+v %+v", up.Down, down.Up)
	}
	for _, g := range []*Goodput{down.Down, both.Down} {
		if g != nil && g.Verified < g.Bytes {
			t.Errorf("download checked %d bytes against the pattern, fewer than the %d it counted", g.Verified, g.Bytes)
		}
	}
	if up.Host.DataFramesSent == 0 || down.Device.DataFramesSent == 0 {
		t.Errorf("the senders sent no DATA frames: up host %+v, down device %+v", up.Host, *down.Device)
	}
	if !strings.HasPrefix(rep.Verdict, "good: ") && !strings.HasPrefix(rep.Verdict, "fair: ") && !strings.HasPrefix(rep.Verdict, "poor: ") {
		t.Errorf("verdict %q", rep.Verdict)
	}
	if !strings.Contains(rep.Verdict, "no CRC errors") {
		t.Errorf("verdict %q on a clean line", rep.Verdict)
	}

	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rep) {
		t.Errorf("JSON round trip changed the report:\n%s\n%+v\n%+v", b, back, rep)
	}
	for _, key := range []string{`"line_share":`, `"crc_error_rate":`, `"retransmit_rate":`, `"median_ms":`, `"verified_bytes":`, `"counted_at":"device"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
}

// TestRunNoisy runs over a line with bit errors both ways: frames fail
// their CRC and are resent, and every byte still arrives right.
func TestRunNoisy(t *testing.T) {
	bed := newBed(t, uartemu.Line{Baud: baud, FlowControl: true, BER: 1e-4, Seed: 7})
	rep, err := Run(t.Context(), BedTarget(bed), short, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The receiver of each direction sees CRC errors; its sender resends.
	// Summed over the phases: a phase may stall (see below) and see few.
	var devCRC, hostCRC, hostRetx, devRetx float64
	var verified int64
	for _, p := range rep.Phases {
		hostCRC += p.Host.CRCErrorRate
		devCRC += p.Device.CRCErrorRate
		hostRetx += p.Host.RetransmitRate
		devRetx += p.Device.RetransmitRate
		for _, f := range []*LinkFigures{&p.Host, p.Device} {
			if f.CRCErrorRate < 0 || f.CRCErrorRate >= 1 || f.RetransmitRate < 0 {
				t.Errorf("%s: rates %+v", p.Name, *f)
			}
		}
		if p.Down != nil {
			verified += p.Down.Verified
			if p.Down.Bytes == 0 {
				// A fresh burst of 2048-byte frames at BER 1e-4 can stall
				// the link for seconds; the report then says 0 honestly.
				t.Logf("%s: the download stalled over the window: %+v, device %+v", p.Name, *p.Down, *p.Device)
			}
		}
	}
	if hostCRC <= 0 || devCRC <= 0 || hostRetx <= 0 || devRetx <= 0 {
		t.Errorf("CRC error rates host %v, device %v; retransmission rates host %v, device %v; want all > 0", hostCRC, devCRC, hostRetx, devRetx)
	}
	if verified <= 0 {
		t.Errorf("no byte of the downloads was checked against the source pattern")
	}
	if !strings.Contains(rep.Verdict, "failed their CRC") {
		t.Errorf("verdict %q on a noisy line", rep.Verdict)
	}
}

// TestRunCancel stops a run when its context ends.
func TestRunCancel(t *testing.T) {
	bed := newBed(t, uartemu.Line{Baud: baud, FlowControl: true})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rep, err := Run(ctx, BedTarget(bed), Options{Duration: time.Minute}, func(phase string, done, _ time.Duration) {
		if done > 100*time.Millisecond {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "echo: ") {
		t.Fatalf("Run: %v, want the echo phase cancelled", err)
	}
	if len(rep.Phases) != 0 {
		t.Errorf("phases %+v after a cancel in the first one", rep.Phases)
	}
}

// drainConn is a net.Conn that reads data once, then fails as a locally
// closed stream does.
type drainConn struct {
	net.Conn
	data []byte
}

func (c *drainConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, net.ErrClosed
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestDrainChecksThePattern(t *testing.T) {
	good := make([]byte, 1000)
	for i := range good {
		good[i] = message.SourceByte(uint64(i))
	}
	var m meter.Meter
	if err := drain(&drainConn{data: good}, &m); err != nil || m.Total() != 1000 {
		t.Errorf("drain of the pattern: %v, counted %d", err, m.Total())
	}
	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
		at   string
	}{
		{"corrupted", func(b []byte) []byte { b[600] ^= 1; return b }, "at offset 600"},
		{"lost byte", func(b []byte) []byte { return append(b[:300:300], b[301:]...) }, "at offset 300"},
		{"repeated byte", func(b []byte) []byte { return append(b[:301:301], b[300:]...) }, "at offset 301"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), good...))
			err := drain(&drainConn{data: b}, &meter.Meter{})
			if !errors.Is(err, ErrPattern) || !strings.Contains(err.Error(), tt.at) {
				t.Errorf("drain: %v, want ErrPattern %s", err, tt.at)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	phase := func(name string, share float64, crc, retx uint64) Phase {
		p := Phase{Name: name, Host: LinkFigures{FramesReceived: 1000, CRCErrors: crc, DataFramesSent: 1000, Retransmits: retx}}
		g := &Goodput{LineShare: share}
		if name == PhaseUp {
			p.Up = g
		} else {
			p.Down = g
		}
		return p
	}
	tests := []struct {
		name   string
		phases []Phase
		flow   string
		want   []string
	}{
		{"clean", []Phase{phase(PhaseUp, 0.98, 0, 0), phase(PhaseDown, 0.979, 0, 0)}, "rtscts",
			[]string{"good: 98.0%, 97.9% of the line (up, down); no CRC errors, no retransmissions"}},
		{"idle line", []Phase{phase(PhaseUp, 0.80, 0, 0), phase(PhaseDown, 0.97, 0, 0)}, "rtscts",
			[]string{"poor: 80.0%, 97.0%", "the line sat idle"}},
		{"noisy", []Phase{phase(PhaseUp, 0.90, 10, 12), phase(PhaseDown, 0.90, 20, 0)}, "rtscts",
			[]string{"fair: ", "30 of 2000 frames failed their CRC (1.5%) and 12 were resent", "lower --baud"}},
		{"overrun", []Phase{phase(PhaseUp, 0.90, 0, 5), phase(PhaseDown, 0.96, 0, 0)}, "none",
			[]string{"no CRC errors, but 5 of 2000 frames were resent", "wire RTS/CTS"}},
		{"nothing", nil, "rtscts", []string{"no throughput measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := verdict(Report{Flow: tt.flow, Phases: tt.phases})
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("verdict %q lacks %q", got, w)
				}
			}
		})
	}
}
