package testbed

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/uartemu"
)

// BenchmarkNoisyStart measures the first two seconds of a download at BER
// 1e-4 over twelve error patterns: a fresh session must not begin with a
// window of long frames that the noise keeps destroying (a link once
// delivered 0.7 % of the line here on one pattern). It reports the worst
// and the mean share of the line.
func BenchmarkNoisyStart(b *testing.B) {
	for b.Loop() {
		worst, sum := 1.0, 0.0
		const seeds = 12
		for seed := int64(1); seed <= seeds; seed++ {
			l := uartemu.Line{Baud: 3000000, FlowControl: true, BER: 1e-4, Seed: seed}
			bed, err := New(Options{Line: uartemu.Symmetric(l)})
			if err != nil {
				b.Fatal(err)
			}
			st, err := bed.Host.OpenService(context.Background(), "source")
			if err != nil {
				b.Fatal(err)
			}
			st.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _ := io.Copy(io.Discard, st)
			r := float64(n) / 2 / bed.LineRate()
			b.Logf("seed %2d: %.3f of the line", seed, r)
			worst, sum = min(worst, r), sum+r
			st.Close()
			bed.Close()
		}
		b.ReportMetric(worst, "worst-line-ratio")
		b.ReportMetric(sum/seeds, "mean-line-ratio")
	}
}
