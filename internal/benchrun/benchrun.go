// Package benchrun measures a link to a device with the device's test
// endpoints (docs/protocol.md §7.12, §7.14), for `uartproxy bench`: the
// round trip of ECHO requests on an idle link, then the goodput into
// "discard", out of "source" (every byte checked against the pattern) and
// both at once, each as a share of the line's baud/10 bytes per second,
// with the links' CRC errors, retransmissions and timeouts over the same
// window.
//
// Every phase lets the transfer settle for a warm-up and then measures over
// a fixed window, as the Go benchmarks of internal/testbed do
// (docs/benchmarks.md), so figures from both agree.
//
// Concurrency: Run starts the goroutines of each phase (the transfer and a
// counter poller) and waits for them before the phase ends. It calls
// progress from its own goroutine only.
package benchrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/uartproxy/uartproxy/internal/meter"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
)

// DefaultDuration is each phase's measuring window when Options.Duration is
// zero.
const DefaultDuration = 3 * time.Second

// Measurement plan; tuning of the measurement, not of the protocol.
const (
	// maxFrameWire is the wire size of one max-size frame: a 2048-byte
	// payload with header, CRC and SLIP ENDs.
	maxFrameWire = 2048 + 16
	// minWarmup and warmupFrames set the default warm-up: enough for the
	// stream's start, buffer filling and, on a noisy line, the frame sizer.
	minWarmup    = 300 * time.Millisecond
	warmupFrames = 4
	// edgeFrames and minEdge bound the wait for the first and after the
	// last arrival in a window that counts as steady (see meter.Meter.Rate):
	// data arrives a frame at a time, plus scheduling latency.
	edgeFrames = 3
	minEdge    = 20 * time.Millisecond
	// pollEvery is how often counters without events (the bytes the
	// device or the host's mux counted) are sampled.
	pollEvery = time.Millisecond
	// tickEvery is how often progress is reported.
	tickEvery = 100 * time.Millisecond
	// openTimeout bounds opening a test endpoint; echoTimeout one ECHO.
	openTimeout = 5 * time.Second
	echoTimeout = 5 * time.Second
	// defaultEchoSize is the payload of an ECHO request.
	defaultEchoSize = 32
	// writeChunk is what an upload hands to one Write; readBuf what a
	// download reads at once.
	writeChunk = 16 << 10
	readBuf    = 64 << 10
)

// Options configures Run.
type Options struct {
	// Duration is each phase's measuring window (0 → DefaultDuration).
	Duration time.Duration
	// Warmup is what each phase runs before its window (0 →
	// max(300 ms, 4 max-size frame times)).
	Warmup time.Duration
	// EchoSize is the payload of each ECHO request (0 → 32 bytes).
	EchoSize int
	// Target and Flow describe the link for the report, e.g.
	// "/dev/ttyUSB0" and "rtscts"; Run copies them.
	Target, Flow string
}

func (o Options) withDefaults(baud int) Options {
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Warmup <= 0 {
		o.Warmup = max(minWarmup, warmupFrames*frameTime(baud))
	}
	if o.EchoSize <= 0 {
		o.EchoSize = defaultEchoSize
	}
	return o
}

// frameTime is how long one max-size frame takes on the wire at baud.
func frameTime(baud int) time.Duration {
	if baud <= 0 {
		return 0
	}
	return time.Duration(float64(maxFrameWire*10) / float64(baud) * float64(time.Second))
}

// Run measures the link to t, phase after phase (PhaseEcho, PhaseUp,
// PhaseDown, PhaseBoth). progress, if not nil, is told every 100 ms how
// far the current phase is, warm-up included. Run stops at the first error:
// a stream or request that failed, data that came back wrong, or ctx
// ending; the report then holds the phases done so far.
func Run(ctx context.Context, t Target, o Options, progress func(phase string, done, total time.Duration)) (Report, error) {
	baud := t.Baud()
	if baud <= 0 {
		return Report{}, fmt.Errorf("benchrun: baud %d: want a positive rate", baud)
	}
	o = o.withDefaults(baud)
	r := &runner{ctx: ctx, t: t, o: o, progress: progress, lineRate: float64(baud) / 10,
		maxEdge: max(edgeFrames*frameTime(baud), minEdge)}
	r.dev, _ = t.(DeviceCounters)
	rep := Report{
		Target: o.Target, Flow: o.Flow, Baud: baud, LineRate: r.lineRate,
		DeviceCounters: r.dev != nil,
		Warmup:         o.Warmup.Seconds(), Duration: o.Duration.Seconds(),
	}
	phases := []struct {
		name     string
		up, down bool
	}{{PhaseEcho, false, false}, {PhaseUp, true, false}, {PhaseDown, false, true}, {PhaseBoth, true, true}}
	for _, ph := range phases {
		var p Phase
		var err error
		if ph.name == PhaseEcho {
			p, err = r.echo()
		} else {
			p, err = r.transfer(ph.name, ph.up, ph.down)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", ph.name, err)
		}
		rep.Phases = append(rep.Phases, p)
	}
	rep.Verdict = verdict(rep)
	return rep, nil
}

// runner is one Run.
type runner struct {
	ctx      context.Context
	t        Target
	dev      DeviceCounters // nil for a device out of sight
	o        Options
	progress func(phase string, done, total time.Duration)
	lineRate float64
	// maxEdge is the longest a steady transfer waits for its next
	// arrival at either end of a window (see meter.Meter.Rate).
	maxEdge time.Duration
}

// snapshot is the links' counters at one instant.
type snapshot struct {
	t         time.Time
	host, dev link.Stats
}

func (r *runner) snap() snapshot {
	s := snapshot{t: time.Now(), host: r.t.LinkStats()}
	if r.dev != nil {
		s.dev = r.dev.DeviceLinkStats()
	}
	return s
}

// errStopped ends a window whose workers failed; the worker's error is
// the one returned.
var errStopped = errors.New("benchrun: a worker failed")

// window lets a phase warm up, then measures, and returns the counters at
// the window's ends. It returns early when ctx ends or failed is closed.
func (r *runner) window(name string, failed <-chan struct{}) (s0, s1 snapshot, err error) {
	total := r.o.Warmup + r.o.Duration
	start := time.Now()
	wait := func(until time.Time) error {
		for {
			now := time.Now()
			r.report(name, now.Sub(start), total)
			if !now.Before(until) {
				return nil
			}
			t := time.NewTimer(min(tickEvery, until.Sub(now)))
			select {
			case <-r.ctx.Done():
				t.Stop()
				return r.ctx.Err()
			case <-failed:
				t.Stop()
				return errStopped
			case <-t.C:
			}
		}
	}
	if err := wait(start.Add(r.o.Warmup)); err != nil {
		return s0, s1, err
	}
	s0 = r.snap()
	if err := wait(s0.t.Add(r.o.Duration)); err != nil {
		return s0, s1, err
	}
	s1 = r.snap()
	r.report(name, total, total)
	return s0, s1, nil
}

func (r *runner) report(name string, done, total time.Duration) {
	if r.progress != nil {
		r.progress(name, min(done, total), total)
	}
}

// phase returns a Phase with the links' figures between s0 and s1.
func (r *runner) phase(name string, s0, s1 snapshot) Phase {
	p := Phase{Name: name, Window: s1.t.Sub(s0.t).Seconds(), Host: figures(s0.host, s1.host)}
	if r.dev != nil {
		d := figures(s0.dev, s1.dev)
		p.Device = &d
	}
	return p
}

// firstError keeps the first error of a phase's workers and closes failed
// when it arrives.
type firstError struct {
	once   sync.Once
	err    error
	failed chan struct{}
}

func newFirstError() *firstError { return &firstError{failed: make(chan struct{})} }

func (f *firstError) set(err error) {
	if err == nil {
		return
	}
	f.once.Do(func() {
		f.err = err
		close(f.failed)
	})
}

// echo measures the round trip of ECHO requests, one at a time, on an
// otherwise idle link.
func (r *runner) echo() (Phase, error) {
	type rtt struct {
		start time.Time
		d     time.Duration
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	errs := newFirstError()
	var (
		mu   sync.Mutex
		rtts []rtt
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		rng := rand.NewChaCha8([32]byte{'e', 'c', 'h', 'o'})
		req := make([]byte, r.o.EchoSize)
		for ctx.Err() == nil {
			rng.Read(req)
			rctx, rcancel := context.WithTimeout(ctx, echoTimeout)
			t0 := time.Now()
			got, err := r.t.Echo(rctx, req)
			d := time.Since(t0)
			rcancel()
			switch {
			case ctx.Err() != nil:
				return // the window is over
			case err != nil:
				errs.set(fmt.Errorf("ECHO request: %w", err))
				return
			case !bytes.Equal(got, req):
				errs.set(fmt.Errorf("ECHO request: %d bytes came back for %d sent, and they differ", len(got), len(req)))
				return
			}
			mu.Lock()
			rtts = append(rtts, rtt{t0, d})
			mu.Unlock()
		}
	})
	s0, s1, err := r.window(PhaseEcho, errs.failed)
	cancel()
	wg.Wait()
	if errs.err != nil {
		return Phase{}, errs.err
	}
	if err != nil {
		return Phase{}, err
	}
	var in []time.Duration
	for _, x := range rtts {
		if !x.start.Before(s0.t) && !x.start.Add(x.d).After(s1.t) {
			in = append(in, x.d)
		}
	}
	p := r.phase(PhaseEcho, s0, s1)
	p.RTT = rttStats(in, r.o.EchoSize)
	return p, nil
}

// rttStats summarizes round trips; percentiles are nearest rank.
func rttStats(d []time.Duration, size int) *RTT {
	s := &RTT{Count: len(d), Size: size}
	if len(d) == 0 {
		return s
	}
	slices.Sort(d)
	pct := func(p float64) time.Duration {
		i := min(len(d)-1, max(0, int(float64(len(d))*p+0.999999)-1))
		return d[i]
	}
	s.MinMS, s.MedianMS, s.P99MS, s.MaxMS = ms(d[0]), ms(pct(0.5)), ms(pct(0.99)), ms(d[len(d)-1])
	return s
}

// transfer measures a bulk upload into "discard", a download from
// "source", or both at once.
func (r *runner) transfer(name string, up, down bool) (Phase, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	errs := newFirstError()
	var (
		wg            sync.WaitGroup
		conns         []net.Conn
		upM, downM    meter.Meter
		upCounted     = CountedHostSent
		closeAllConns = func() {
			for _, c := range conns {
				c.Close()
			}
		}
	)
	defer func() {
		closeAllConns()
		cancel()
		wg.Wait()
	}()
	if up {
		st, err := r.open(message.ServiceDiscard)
		if err != nil {
			return Phase{}, err
		}
		conns = append(conns, st)
		count := func() int64 { return int64(r.t.BytesSent()) }
		if r.dev != nil {
			upCounted = CountedDevice
			count = func() int64 { return int64(r.dev.DeviceBytesReceived()) }
		}
		wg.Go(func() { meter.Poll(ctx, &upM, pollEvery, count) })
		wg.Go(func() { errs.set(feed(st)) })
	}
	if down {
		st, err := r.open(message.ServiceSource)
		if err != nil {
			return Phase{}, err
		}
		conns = append(conns, st)
		wg.Go(func() { errs.set(drain(st, &downM)) })
	}
	s0, s1, err := r.window(name, errs.failed)
	closeAllConns()
	cancel()
	wg.Wait()
	if errs.err != nil {
		return Phase{}, errs.err
	}
	if err != nil {
		return Phase{}, err
	}
	p := r.phase(name, s0, s1)
	if up {
		p.Up = r.goodput(&upM, s0, s1, upCounted)
	}
	if down {
		p.Down = r.goodput(&downM, s0, s1, CountedHostRead)
		p.Down.Verified = downM.Total()
	}
	return p, nil
}

func (r *runner) open(name string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(r.ctx, openTimeout)
	defer cancel()
	st, err := r.t.OpenService(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open the device's %q service: %w", name, err)
	}
	return st, nil
}

func (r *runner) goodput(m *meter.Meter, s0, s1 snapshot, counted string) *Goodput {
	n, bps := m.Rate(s0.t, s1.t, r.maxEdge)
	return &Goodput{Bytes: n, BytesPerSecond: bps, LineShare: bps / r.lineRate, CountedAt: counted}
}

// isLocalClose reports the error Read and Write return after this side's
// Close: the end of a measurement, not a failure.
func isLocalClose(err error) bool { return errors.Is(err, net.ErrClosed) }

// feed writes seeded random data to c until it fails, so SLIP escaping
// costs what it costs on real traffic (0.78 %). It returns nil when c was
// closed locally.
func feed(c net.Conn) error {
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'u', 'p'}).Read(data)
	for off := 0; ; off = (off + writeChunk) % len(data) {
		if _, err := c.Write(data[off : off+writeChunk]); err != nil {
			if isLocalClose(err) {
				return nil
			}
			return fmt.Errorf("upload: %w", err)
		}
	}
}

// sourcePattern holds the "source" service's bytes from offset 0, long
// enough to compare a read of up to readBuf bytes at any phase.
var sourcePattern = sync.OnceValue(func() []byte {
	p := make([]byte, readBuf+251)
	for i := range p {
		p[i] = message.SourceByte(uint64(i))
	}
	return p
})

// ErrPattern reports a download from "source" that differs from the
// pattern of docs/protocol.md §7.14: a byte lost, repeated, reordered or
// corrupted past the CRC.
var ErrPattern = errors.New("download differs from the source pattern")

// drain reads c until it fails, checks every byte against the source
// pattern and counts it into m. It returns nil when c was closed locally.
func drain(c net.Conn, m *meter.Meter) error {
	pat := sourcePattern()
	buf := make([]byte, readBuf)
	var off uint64
	for {
		n, err := c.Read(buf)
		if n > 0 {
			o := off % 251
			if i := mismatch(buf[:n], pat[o:o+uint64(n)]); i >= 0 {
				return fmt.Errorf("%w at offset %d: got %#02x, want %#02x", ErrPattern, off+uint64(i), buf[i], pat[o+uint64(i)])
			}
			off += uint64(n)
			m.Add(n)
		}
		if err != nil {
			if isLocalClose(err) {
				return nil
			}
			return fmt.Errorf("download after %d bytes: %w", off, err)
		}
	}
}

// mismatch returns the index of the first byte where a and b differ, or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
