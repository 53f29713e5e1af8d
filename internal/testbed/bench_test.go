package testbed_test

// Goodput benchmarks over the emulated UART (docs/benchmarks.md).
//
// Every benchmark runs one fixed wall-clock measurement whatever b.N is
// (run them with -benchtime=1x): it lets the transfer settle for a warm-up,
// then measures over a window long enough for at least 50 max-size frames,
// and reports figures as ratios of the line rate (baud/10 bytes/s) with
// b.ReportMetric. None of them asserts a speed; they fail only when data
// arrives wrong or a stream breaks.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/uartproxy/uartproxy/internal/meter"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/link"
	"github.com/uartproxy/uartproxy/internal/message"
	"github.com/uartproxy/uartproxy/internal/mux"
	"github.com/uartproxy/uartproxy/internal/testbed"
	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// Measurement plan (tuning of the benchmarks, not of the protocol).
const (
	// maxFrameWire is the wire size of one max-size frame, in bytes: the
	// 2048-byte payload plus header, CRC and SLIP ENDs (escapes left out).
	maxFrameWire = 2048 + 16
	minWarmup    = 300 * time.Millisecond
	minWindow    = 1500 * time.Millisecond
	// windowFrames is how many max-size frames a window covers at least.
	windowFrames = 50
	// warmupFrames is how many max-size frames a warm-up covers at least.
	warmupFrames = 4
	// pollEvery is how often counters without events (the device's
	// received bytes) are sampled.
	pollEvery = time.Millisecond
)

// frameTime is how long one max-size frame takes on the wire at baud.
func frameTime(baud int) time.Duration {
	return time.Duration(float64(maxFrameWire*10) / float64(baud) * float64(time.Second))
}

// plan returns the warm-up and measuring window for baud.
func plan(baud int) (warmup, window time.Duration) {
	ft := frameTime(baud)
	return max(minWarmup, warmupFrames*ft), max(minWindow, windowFrames*ft)
}

func newBed(b *testing.B, o testbed.Options) *testbed.Bed {
	b.Helper()
	bed, err := testbed.New(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bed.Close)
	return bed
}

func openService(b *testing.B, bed *testbed.Bed, name string) *mux.Stream {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := bed.Host.OpenService(ctx, name)
	if err != nil {
		b.Fatalf("open %s: %v (host link %+v)", name, err, bed.HostLink.Stats())
	}
	return st
}

// steadyRate is m's rate between arrivals in [from, to], in bytes/s.
func steadyRate(m *meter.Meter, from, to time.Time) float64 {
	_, r := m.Rate(from, to, meter.Steady)
	return r
}

// pollMeter samples f into m every pollEvery until ctx ends, as one of
// wg's goroutines.
func pollMeter(ctx context.Context, wg *sync.WaitGroup, m *meter.Meter, f func() int64) {
	wg.Go(func() { meter.Poll(ctx, m, pollEvery, f) })
}

// sourcePattern holds the "source" service's bytes from offset 0, long
// enough to compare any read of up to readBuf bytes at any phase.
var sourcePattern = func() []byte {
	p := make([]byte, readBuf+251)
	for i := range p {
		p[i] = message.SourceByte(uint64(i))
	}
	return p
}()

const readBuf = 64 << 10

// errPattern reports a download that differs from the source pattern.
var errPattern = errors.New("download differs from the source pattern")

// drainSource reads st until it fails, checking every byte against the
// source pattern and counting into m. It returns nil when st was closed
// locally (the end of a measurement) and the first other error.
func drainSource(st *mux.Stream, m *meter.Meter) error {
	buf := make([]byte, readBuf)
	var off uint64
	for {
		n, err := st.Read(buf)
		if n > 0 {
			o := off % 251
			if !bytes.Equal(buf[:n], sourcePattern[o:o+uint64(n)]) {
				return fmt.Errorf("%w at offset %d", errPattern, off)
			}
			off += uint64(n)
			m.Add(n)
		}
		if err != nil {
			if isLocalClose(err) {
				return nil
			}
			return fmt.Errorf("after %d bytes: %w", off, err)
		}
	}
}

// isLocalClose reports the error Read and Write return after this side's
// Close.
func isLocalClose(err error) bool { return errors.Is(err, net.ErrClosed) }

// randomData returns n seeded random bytes: uploads carry random data so
// that SLIP escaping costs what it costs on real traffic (~0.78 %).
func randomData(n int, seed uint64) []byte {
	p := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(p)
	return p
}

// feedUpload writes random data to st until it fails; it returns nil when
// st was closed locally.
func feedUpload(st *mux.Stream) error {
	data := randomData(1<<20, 1)
	for off := 0; ; off = (off + 16<<10) % len(data) {
		if _, err := st.Write(data[off : off+16<<10]); err != nil {
			if isLocalClose(err) {
				return nil
			}
			return err
		}
	}
}

// probe is a snapshot of the stack's counters at one instant.
type probe struct {
	t        time.Time
	host     link.Stats
	dev      link.Stats
	h2d, d2h uartemu.LineStats
}

func takeProbe(bed *testbed.Bed) probe {
	return probe{
		t:    time.Now(),
		host: bed.HostLink.Stats(),
		dev:  bed.Device.Link().Stats(),
		h2d:  bed.HostPort.Stats(),
		d2h:  bed.DevicePort.Stats(),
	}
}

// window waits for the warm-up to pass, then for the measuring window, and
// returns the counters at its two ends.
func window(bed *testbed.Bed, warmup, dur time.Duration) (p0, p1 probe) {
	time.Sleep(warmup)
	p0 = takeProbe(bed)
	time.Sleep(dur)
	p1 = takeProbe(bed)
	return p0, p1
}

// wireBusy is the share of the window during which a direction's wire
// carried bytes: below 1 means the line sat idle.
func wireBusy(bed *testbed.Bed, a, z uartemu.LineStats, p0, p1 probe) float64 {
	return float64(z.Delivered+z.Dropped-a.Delivered-a.Dropped) / (bed.LineRate() * p1.t.Sub(p0.t).Seconds())
}

// reportLink reports the host's retransmits and timeouts over the whole
// run, the device's too, and logs the rest with -v.
func reportLink(b *testing.B, bed *testbed.Bed, p0, p1 probe) {
	end := takeProbe(bed)
	b.ReportMetric(float64(end.host.Retransmits), "retx")
	b.ReportMetric(float64(end.host.Timeouts), "timeouts")
	b.ReportMetric(float64(end.dev.Retransmits), "dev-retx")
	b.ReportMetric(float64(end.dev.Timeouts), "dev-timeouts")
	if testing.Verbose() {
		b.Logf("window %v: host %s", p1.t.Sub(p0.t).Round(time.Millisecond), linkDelta(p0.host, p1.host))
		b.Logf("window: device %s", linkDelta(p0.dev, p1.dev))
		b.Logf("window: wire h2d busy %.4f, d2h busy %.4f; h2d %+v; d2h %+v",
			wireBusy(bed, p0.h2d, p1.h2d, p0, p1), wireBusy(bed, p0.d2h, p1.d2h, p0, p1), p1.h2d, p1.d2h)
		b.Logf("run: host %+v", end.host)
		b.Logf("run: device %+v", end.dev)
	}
}

func linkDelta(a, z link.Stats) string {
	drops := map[string]uint64{}
	for r, v := range z.Dropped {
		if d := v - a.Dropped[r]; d > 0 {
			drops[r] = d
		}
	}
	return fmt.Sprintf("txFrames %d txData %d txPayload %d retx %d (fast %d) timeouts %d rxData %d drops %v srtt %v rto %v inflight %d window %d",
		z.TxFrames-a.TxFrames, z.TxData-a.TxData, z.TxPayload-a.TxPayload, z.Retransmits-a.Retransmits,
		z.FastRetransmits-a.FastRetransmits, z.Timeouts-a.Timeouts, z.RxData-a.RxData, drops, z.SRTT, z.RTO,
		z.InFlight, z.Window)
}

// bauds runs f once per baud as a sub-benchmark "baud=N".
func bauds(b *testing.B, list []int, f func(b *testing.B, baud int)) {
	for _, baud := range list {
		b.Run(fmt.Sprintf("baud=%d", baud), func(b *testing.B) { f(b, baud) })
	}
}

// transfer runs one bulk stream in one direction on bed for the plan of
// its baud and returns the goodput as a ratio of the line rate.
func transfer(b *testing.B, bed *testbed.Bed, up bool) (ratio float64, p0, p1 probe) {
	warmup, dur := plan(bed.Baud)
	var m meter.Meter
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var st *mux.Stream
	if up {
		st = openService(b, bed, message.ServiceDiscard)
		pollMeter(ctx, &wg, &m, func() int64 { return int64(bed.Device.Session().Stats().BytesIn) })
		wg.Go(func() { errc <- feedUpload(st) })
	} else {
		st = openService(b, bed, message.ServiceSource)
		wg.Go(func() { errc <- drainSource(st, &m) })
	}
	p0, p1 = window(bed, warmup, dur)
	cancel()
	st.Close()
	wg.Wait()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return steadyRate(&m, p0.t, p1.t) / bed.LineRate(), p0, p1
}

// BenchmarkBulk measures one bulk stream in one direction on a clean line
// with RTS/CTS. Goal: line-ratio ≥ 0.97.
func BenchmarkBulk(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		b.Run(dir, func(b *testing.B) {
			bauds(b, []int{115200, 921600, 3000000}, func(b *testing.B, baud int) {
				bed := newBed(b, testbed.Clean(baud))
				ratio, p0, p1 := transfer(b, bed, dir == "up")
				b.ReportMetric(ratio, "line-ratio")
				a, z := p0.d2h, p1.d2h
				if dir == "up" {
					a, z = p0.h2d, p1.h2d
				}
				b.ReportMetric(wireBusy(bed, a, z, p0, p1), "wire-busy")
				reportLink(b, bed, p0, p1)
			})
		})
	}
}

// BenchmarkBidirectional runs an upload (discard) and a download (source)
// at once. Goal: ≥ 0.95 each way.
func BenchmarkBidirectional(b *testing.B) {
	bauds(b, []int{921600, 3000000}, func(b *testing.B, baud int) {
		bed := newBed(b, testbed.Clean(baud))
		warmup, dur := plan(baud)
		var up, down meter.Meter
		var wg sync.WaitGroup
		errc := make(chan error, 2)
		ctx, cancel := context.WithCancel(context.Background())
		sink := openService(b, bed, message.ServiceDiscard)
		src := openService(b, bed, message.ServiceSource)
		pollMeter(ctx, &wg, &up, func() int64 { return int64(bed.Device.Session().Stats().BytesIn) })
		wg.Go(func() { errc <- feedUpload(sink) })
		wg.Go(func() { errc <- drainSource(src, &down) })
		p0, p1 := window(bed, warmup, dur)
		cancel()
		sink.Close()
		src.Close()
		wg.Wait()
		for range 2 {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(steadyRate(&up, p0.t, p1.t)/bed.LineRate(), "up-ratio")
		b.ReportMetric(steadyRate(&down, p0.t, p1.t)/bed.LineRate(), "down-ratio")
		reportLink(b, bed, p0, p1)
	})
}

// BenchmarkStreams16 runs 16 bulk downloads at once. Goals: aggregate ≥
// 0.95, each stream within 10 % of its fair share (total/16).
func BenchmarkStreams16(b *testing.B) {
	const n = 16
	bauds(b, []int{921600}, func(b *testing.B, baud int) {
		bed := newBed(b, testbed.Clean(baud))
		warmup, dur := plan(baud)
		// Each stream gets about one frame in 16: cover 25 rounds so a
		// frame more or less moves a share by no more than 4 %.
		dur = max(dur, 25*n*frameTime(baud))
		var total meter.Meter
		ms := make([]meter.Meter, n)
		sts := make([]*mux.Stream, n)
		for i := range sts {
			sts[i] = openService(b, bed, message.ServiceSource)
		}
		var wg sync.WaitGroup
		errc := make(chan error, n)
		for i, st := range sts {
			wg.Go(func() {
				buf := make([]byte, readBuf)
				var off uint64
				for {
					k, err := st.Read(buf)
					if k > 0 {
						o := off % 251
						if !bytes.Equal(buf[:k], sourcePattern[o:o+uint64(k)]) {
							errc <- fmt.Errorf("stream %d: %w at offset %d", i, errPattern, off)
							return
						}
						off += uint64(k)
						ms[i].Add(k)
						total.Add(k)
					}
					if err != nil {
						if isLocalClose(err) {
							err = nil
						}
						errc <- err
						return
					}
				}
			})
		}
		p0, p1 := window(bed, warmup, dur)
		for _, st := range sts {
			st.Close()
		}
		wg.Wait()
		for range n {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		var sum int64
		per := make([]int64, n)
		for i := range ms {
			per[i] = ms[i].Growth(p0.t, p1.t)
			sum += per[i]
		}
		fair := float64(sum) / n
		lo, hi := slices.Min(per), slices.Max(per)
		b.ReportMetric(steadyRate(&total, p0.t, p1.t)/bed.LineRate(), "line-ratio")
		if fair > 0 {
			b.ReportMetric(float64(lo)/fair, "min-share")
			b.ReportMetric(float64(hi)/fair, "max-share")
		}
		reportLink(b, bed, p0, p1)
	})
}

// BenchmarkInteractive times a 64-byte request/response over an "echo"
// stream while a bulk download saturates the link. Round trips are
// reported in units of one max-size frame's wire time. Goal: ≤ 3.
func BenchmarkInteractive(b *testing.B) {
	bauds(b, []int{921600, 3000000}, func(b *testing.B, baud int) {
		bed := newBed(b, testbed.Clean(baud))
		warmup, dur := plan(baud)
		ft := frameTime(baud)
		// Enough round trips for a p99 worth the name.
		dur = max(dur, 3*time.Second)
		var down meter.Meter
		var wg sync.WaitGroup
		errc := make(chan error, 1)
		src := openService(b, bed, message.ServiceSource)
		echo := openService(b, bed, message.ServiceEcho)
		wg.Go(func() { errc <- drainSource(src, &down) })

		time.Sleep(warmup)
		p0 := takeProbe(bed)
		end := p0.t.Add(dur)
		rng := rand.New(rand.NewPCG(uint64(baud), 2))
		sent, got := sha256.New(), sha256.New()
		req, resp := make([]byte, 64), make([]byte, 64)
		var rtts []time.Duration
		for time.Now().Before(end) {
			// A random pause, so requests meet the bulk frames at every
			// phase instead of locking onto one.
			time.Sleep(time.Duration(rng.Int64N(int64(ft))))
			for i := range req {
				req[i] = byte(rng.Uint32())
			}
			sent.Write(req)
			echo.SetDeadline(time.Now().Add(10 * time.Second))
			t0 := time.Now()
			if _, err := echo.Write(req); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(echo, resp); err != nil {
				b.Fatalf("echo after %d round trips: %v", len(rtts), err)
			}
			rtts = append(rtts, time.Since(t0))
			got.Write(resp)
		}
		p1 := takeProbe(bed)
		echo.Close()
		src.Close()
		wg.Wait()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
			b.Fatal("echo: SHA-256 of the responses differs from the requests")
		}
		slices.Sort(rtts)
		pct := func(p float64) float64 { // nearest rank
			i := min(len(rtts)-1, max(0, int(float64(len(rtts))*p+0.999999)-1))
			return float64(rtts[i]) / float64(ft)
		}
		b.ReportMetric(pct(0.5), "rtt-median/frame")
		b.ReportMetric(pct(0.99), "rtt-p99/frame")
		b.ReportMetric(float64(len(rtts)), "round-trips")
		b.ReportMetric(steadyRate(&down, p0.t, p1.t)/bed.LineRate(), "down-ratio")
		reportLink(b, bed, p0, p1)
		if testing.Verbose() {
			b.Logf("frame time %v; rtt min %v median %v p99 %v max %v", ft, rtts[0], rtts[len(rtts)/2],
				time.Duration(pct(0.99)*float64(ft)), rtts[len(rtts)-1])
		}
	})
}

// BenchmarkNoisy runs a bulk download over a line with bit errors in both
// directions. Goals: line-ratio ≥ 0.85 at BER 1e-5; at 1e-4 every byte
// arrives exactly (the source pattern is checked throughout).
func BenchmarkNoisy(b *testing.B) {
	for _, ber := range []float64{1e-5, 1e-4} {
		b.Run(fmt.Sprintf("ber=%.0e", ber), func(b *testing.B) {
			bauds(b, []int{921600}, func(b *testing.B, baud int) {
				l := uartemu.Line{Baud: baud, FlowControl: true, BER: ber, Seed: 11}
				bed := newBed(b, testbed.Options{Line: uartemu.Symmetric(l)})
				// Errors make the figure noisier: a longer window, and a
				// warm-up that lets the frame sizer settle.
				warmup, dur := plan(baud)
				warmup, dur = max(warmup, time.Second), max(dur, 3*time.Second)
				var m meter.Meter
				var wg sync.WaitGroup
				errc := make(chan error, 1)
				st := openService(b, bed, message.ServiceSource)
				wg.Go(func() { errc <- drainSource(st, &m) })
				p0, p1 := window(bed, warmup, dur)
				st.Close()
				wg.Wait()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(steadyRate(&m, p0.t, p1.t)/bed.LineRate(), "line-ratio")
				if sent := p1.dev.TxData - p0.dev.TxData; sent > 0 {
					b.ReportMetric(float64(p1.dev.Retransmits-p0.dev.Retransmits)/float64(sent), "retx/frame")
					b.ReportMetric(float64(p1.dev.TxPayload-p0.dev.TxPayload)/float64(sent), "payload/frame")
				}
				b.ReportMetric(float64(m.Total()), "bytes-exact")
				reportLink(b, bed, p0, p1)
			})
		})
	}
}

// BenchmarkCompare runs our bulk download and the seed's stop-and-wait
// exchange over the same line, one after the other.
func BenchmarkCompare(b *testing.B) {
	bauds(b, []int{921600}, func(b *testing.B, baud int) {
		bed := newBed(b, testbed.Clean(baud))
		ours, p0, p1 := transfer(b, bed, false)
		reportLink(b, bed, p0, p1)
		bed.Close()
		seed, resends := measureSeed(b, baud)
		b.ReportMetric(ours, "ours-ratio")
		b.ReportMetric(seed, "seed-ratio")
		b.ReportMetric(float64(resends), "seed-resends")
		if seed > 0 {
			b.ReportMetric(ours/seed, "ours/seed")
		}
	})
}
