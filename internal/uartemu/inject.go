package uartemu

import (
	"math"
	"math/rand/v2"
)

// fate is what happened to one byte on the wire.
type fate uint8

const (
	fateClean     fate = iota // crossed unchanged
	fateCorrupted             // one or more bits flipped (BER)
	fateBurst                 // replaced by burst garbage
	fateDropped               // vanished
)

var fateNames = [...]string{
	fateClean:     "clean",
	fateCorrupted: "corrupted",
	fateBurst:     "burst",
	fateDropped:   "dropped",
}

func (f fate) String() string {
	if int(f) < len(fateNames) {
		return fateNames[f]
	}
	return "fate(?)"
}

// never is the gap used for an event with probability 0.
const never = math.MaxInt64 / 2

// injector decides the fate of each byte crossing one direction. Rather than
// rolling dice per bit or byte, it draws the gap to the next event from the
// geometric distribution, so an error-free stretch costs one comparison per
// byte. The sequence depends only on the seed and the byte count, never on
// how the bytes were chunked, so a seeded run is reproducible.
type injector struct {
	rng                      *rand.Rand
	ber, burstRate, dropRate float64
	burstLen                 int
	enabled                  bool

	bitGap    int64 // clean bits before the next flipped bit
	burstGap  int64 // bytes before the next burst starts
	dropGap   int64 // bytes before the next dropped byte
	burstLeft int   // garbage bytes left in the current burst
	bursts    int64 // bursts started
}

func newInjector(l Line, stream uint64) *injector {
	in := &injector{
		rng:       rand.New(rand.NewPCG(uint64(l.Seed), stream)),
		ber:       l.BER,
		burstRate: l.BurstRate,
		dropRate:  l.DropRate,
		burstLen:  l.BurstLen,
		enabled:   l.BER > 0 || l.BurstRate > 0 || l.DropRate > 0,
	}
	in.bitGap = in.gap(in.ber)
	in.burstGap = in.gap(in.burstRate)
	in.dropGap = in.gap(in.dropRate)
	return in
}

// gap draws the number of failures before the next success of a Bernoulli
// trial with probability p.
func (in *injector) gap(p float64) int64 {
	switch {
	case p <= 0:
		return never
	case p >= 1:
		return 0
	}
	u := 1 - in.rng.Float64() // (0, 1]
	g := math.Log(u) / math.Log1p(-p)
	if g >= never {
		return never
	}
	return int64(g)
}

// pass decides the fate of byte b and returns the byte as received.
func (in *injector) pass(b byte) (byte, fate) {
	dropped := false
	if in.dropGap == 0 {
		dropped = true
		in.dropGap = in.gap(in.dropRate)
	} else {
		in.dropGap--
	}

	if in.burstLeft == 0 {
		if in.burstGap == 0 {
			in.bursts++
			in.burstLeft = in.burstLen
			in.burstGap = in.gap(in.burstRate)
		} else {
			in.burstGap--
		}
	}
	garbage := in.burstLeft > 0
	if garbage {
		in.burstLeft--
	}

	var mask byte
	if in.bitGap >= 8 {
		in.bitGap -= 8
	} else {
		for in.bitGap < 8 {
			mask |= 1 << in.bitGap
			in.bitGap += 1 + in.gap(in.ber)
		}
		in.bitGap -= 8
	}

	switch {
	case dropped:
		return 0, fateDropped
	case garbage:
		return byte(in.rng.Uint32()), fateBurst
	case mask != 0:
		return b ^ mask, fateCorrupted
	default:
		return b, fateClean
	}
}
