package uartemu

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkPacing reports the goodput of a clean, default-buffered line as a
// share of Baud/10 ("line-ratio"; 1 is exact), written 16 KiB at a time. One
// op is 1 KiB across.
func BenchmarkPacing(b *testing.B) {
	for _, baud := range []int{115200, 921600, 3_000_000} {
		b.Run(fmt.Sprintf("baud=%d", baud), func(b *testing.B) {
			benchLine(b, baud, 16<<10)
		})
	}
}

// BenchmarkPacingSmallWrites is BenchmarkPacing with frame-sized Writes at
// the fastest rate, where the 128-byte FIFO holds less than a timer tick.
func BenchmarkPacingSmallWrites(b *testing.B) {
	for _, write := range []int{64, 256} {
		b.Run(fmt.Sprintf("baud=3000000/write=%d", write), func(b *testing.B) {
			benchLine(b, 3_000_000, write)
		})
	}
}

func benchLine(b *testing.B, baud, write int) {
	const op = 1024
	host, device := newPair(b, Symmetric(Line{Baud: baud}))
	data := make([]byte, write)
	total := b.N * op
	b.SetBytes(op)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for left := total; left > 0; left -= min(left, write) {
			if _, err := host.Write(data[:min(left, write)]); err != nil {
				return
			}
		}
	}()
	if _, err := io.CopyN(io.Discard, device, int64(total)); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds()/(float64(baud)/bitsPerByte), "line-ratio")
}
