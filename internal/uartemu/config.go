package uartemu

// Defaults applied by New for zero fields of a Line.
const (
	DefaultRxBuffer = 16384 // bytes, receive buffer at the reading end
	DefaultTxBuffer = 128   // bytes, transmit FIFO at the writing end (ESP32 UART FIFO)
	DefaultBurstLen = 8     // bytes replaced by garbage in one error burst
	DefaultSeed     = 1     // rng seed when Line.Seed is 0
)

// Line configures one direction of the cable: bytes written at one end and
// read at the other.
type Line struct {
	// Baud is the line rate in bits/s; bytes cross at Baud/10 per second
	// (8N1). 0 means unpaced: bytes cross as fast as the buffers allow.
	Baud int
	// RxBuffer is the receive buffer at the reading end, in bytes (0 → 16384).
	RxBuffer int
	// TxBuffer is the transmit FIFO at the writing end, in bytes (0 → 128).
	// Write blocks while it is full, so a writer is never more than TxBuffer
	// bytes ahead of the wire.
	TxBuffer int
	// FlowControl emulates RTS/CTS: when true, bytes wait while the receive
	// buffer is full and the wire idles; when false, bytes reaching a full
	// receive buffer are lost and counted as Overflow.
	FlowControl bool
	// BER is the bit error rate: each bit is flipped independently with this
	// probability.
	BER float64
	// BurstRate is the probability per byte that an error burst starts.
	BurstRate float64
	// BurstLen is the number of bytes a burst replaces by random garbage
	// (0 → 8).
	BurstLen int
	// DropRate is the probability per byte that it vanishes on the wire.
	DropRate float64
	// Seed seeds the error rng (0 → DefaultSeed), so tests are reproducible.
	Seed int64
}

// Config configures both directions of the cable.
type Config struct {
	HostToDevice Line
	DeviceToHost Line
}

// Symmetric returns a Config with the same Line in both directions. The two
// directions still draw independent errors from the same seed.
func Symmetric(l Line) Config {
	return Config{HostToDevice: l, DeviceToHost: l}
}

// withDefaults returns l with zero or out-of-range fields replaced by their
// defaults, so the rest of the package never checks them again.
func (l Line) withDefaults() Line {
	l.Baud = max(l.Baud, 0)
	if l.RxBuffer <= 0 {
		l.RxBuffer = DefaultRxBuffer
	}
	if l.TxBuffer <= 0 {
		l.TxBuffer = DefaultTxBuffer
	}
	if l.BurstLen <= 0 {
		l.BurstLen = DefaultBurstLen
	}
	if l.Seed == 0 {
		l.Seed = DefaultSeed
	}
	l.BER = clamp01(l.BER)
	l.BurstRate = clamp01(l.BurstRate)
	l.DropRate = clamp01(l.DropRate)
	return l
}

func clamp01(p float64) float64 {
	switch {
	case p > 1:
		return 1
	case p > 0:
		return p
	default: // also NaN
		return 0
	}
}
