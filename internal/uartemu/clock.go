package uartemu

import (
	"math/bits"
	"time"
)

// Tuning constants of the pacing goroutine.
const (
	// minTick is the shortest sleep of a pacing goroutine that wakes a
	// waiting reader, so fast lines move bytes in chunks instead of waking
	// once per byte. Go timers here fire about 1 ms late anyway.
	minTick = 200 * time.Microsecond
	// maxLag caps the credit given to a writer that the pacing goroutine
	// released late (see line.lag).
	maxLag = 5 * time.Millisecond
)

// bitsPerByte is the UART frame size of 8N1: start bit, 8 data bits, stop bit.
const bitsPerByte = 10

// wireClock converts between elapsed time and bytes on a line of a fixed
// baud rate, exactly (no per-byte rounding accumulates).
type wireClock struct {
	baud uint64
}

const nsPerByteBit = uint64(time.Second) * bitsPerByte // ns × bits per byte

// bytesIn returns how many whole bytes cross in d.
func (c wireClock) bytesIn(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), c.baud)
	if hi >= nsPerByteBit {
		return never
	}
	q, _ := bits.Div64(hi, lo, nsPerByteBit)
	return int64(min(q, never))
}

// durOf returns how long n bytes take to cross, rounded up to the nanosecond.
func (c wireClock) durOf(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(n), nsPerByteBit)
	if hi >= c.baud {
		return time.Duration(never)
	}
	q, r := bits.Div64(hi, lo, c.baud)
	if r != 0 {
		q++
	}
	return time.Duration(min(q, never))
}
