package seedv3

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmark windows: the figures are rates over a steady window after a
// warm-up, whatever b.N is.
const (
	benchWarmup = 1 * time.Second
	benchWindow = 4 * time.Second
)

var benchBauds = []int{921600, 1400000}

func forBauds(b *testing.B, f func(b *testing.B, baud int)) {
	for _, baud := range benchBauds {
		b.Run(fmt.Sprintf("baud=%d", baud), func(b *testing.B) { f(b, baud) })
	}
}

// measure samples counter at the start and end of the window and returns
// bytes per second.
func measure(counter func() int64) float64 {
	time.Sleep(benchWarmup)
	n0, t0 := counter(), time.Now()
	time.Sleep(benchWindow)
	n1, t1 := counter(), time.Now()
	return float64(n1-n0) / t1.Sub(t0).Seconds()
}

func reportLine(b *testing.B, r *rig, rate float64, baud int) {
	b.ReportMetric(rate/(float64(baud)/10), "line-ratio")
	b.ReportMetric(rate/1000, "kB/s")
	cs := r.c.Stats()
	b.ReportMetric(float64(cs.Resends), "resends")
}

// readCounting reads c until it fails, adding to n.
func readCounting(c net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		k, err := c.Read(buf)
		n.Add(int64(k))
		if err != nil {
			return
		}
	}
}

// BenchmarkV3Download measures one TCP download through a v3 board
// (emulated) over a line with RTS/CTS, as a ratio of the line's byte rate
// (baud/10).
func BenchmarkV3Download(b *testing.B) {
	forBauds(b, func(b *testing.B, baud int) {
		r := newRig(b, baud, NetConfig{})
		addr := tcpServer(b, source)
		c, err := r.n.DialContext(ctxT(b, 10*time.Second), "tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		var n atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() { readCounting(c, &n) })
		rate := measure(n.Load)
		c.Close()
		wg.Wait()
		reportLine(b, r, rate, baud)
	})
}

// BenchmarkV3Upload measures one TCP upload.
func BenchmarkV3Upload(b *testing.B) {
	forBauds(b, func(b *testing.B, baud int) {
		r := newRig(b, baud, NetConfig{})
		var got countW
		addr := tcpServer(b, sink(&got))
		c, err := r.n.DialContext(ctxT(b, 10*time.Second), "tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for !stop.Load() {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
		rate := measure(got.get)
		stop.Store(true)
		c.Close()
		wg.Wait()
		reportLine(b, r, rate, baud)
	})
}

// BenchmarkV3Interactive measures the round trip of 64 bytes through an
// echo server while a bulk download runs on another connection, and the
// download's share of the line meanwhile. The idle subbenchmark is the
// same round trip with nothing else running.
func BenchmarkV3Interactive(b *testing.B) {
	for _, bulk := range []bool{true, false} {
		name := "idle"
		if bulk {
			name = "with-bulk"
		}
		b.Run(name, func(b *testing.B) {
			forBauds(b, func(b *testing.B, baud int) { interactive(b, baud, bulk) })
		})
	}
}

func interactive(b *testing.B, baud int, bulk bool) {
	r := newRig(b, baud, NetConfig{})
	ctx := ctxT(b, 30*time.Second)
	var n atomic.Int64
	var wg sync.WaitGroup
	if bulk {
		src, err := r.n.DialContext(ctx, "tcp", tcpServer(b, source).String())
		if err != nil {
			b.Fatal(err)
		}
		defer wg.Wait()
		defer src.Close()
		wg.Go(func() { readCounting(src, &n) })
	}
	c, err := r.n.DialContext(ctx, "tcp", tcpServer(b, echo).String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	back := make([]byte, 64)
	var rtts []time.Duration
	var n0 int64
	start := time.Now()
	measuring := false
	var t0 time.Time
	for {
		now := time.Now()
		if !measuring && now.Sub(start) >= benchWarmup {
			measuring, n0, t0 = true, n.Load(), now
		}
		if measuring && now.Sub(t0) >= benchWindow {
			break
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, back); err != nil {
			b.Fatal(err)
		}
		if measuring {
			rtts = append(rtts, time.Since(now))
		}
		time.Sleep(20 * time.Millisecond) // a typist, not a flood
	}
	rate := float64(n.Load()-n0) / time.Since(t0).Seconds()
	slices.Sort(rtts)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	var sum time.Duration
	for _, d := range rtts {
		sum += d
	}
	b.ReportMetric(ms(sum/time.Duration(len(rtts))), "rtt-mean-ms")
	b.ReportMetric(ms(rtts[len(rtts)/2]), "rtt-p50-ms")
	b.ReportMetric(ms(rtts[len(rtts)*9/10]), "rtt-p90-ms")
	b.ReportMetric(ms(rtts[len(rtts)-1]), "rtt-max-ms")
	if bulk {
		b.ReportMetric(rate/(float64(baud)/10), "bulk-line-ratio")
	}
}
