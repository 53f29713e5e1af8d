package link

import "math"

// sizer picks the payload size of new DATA frames from the loss it sees.
// On a clean line the largest frame wastes least on headers; on a noisy
// one a long frame is likely to be hit and resent whole. With a bit error
// rate b and per-frame overhead h bytes, goodput L/(L+h)·(1-b)^(8(L+h)) is
// largest near L = sqrt(h/(8b)). The rate is estimated from recent
// outcomes: lost frames per bit sent, decayed so the estimate follows a
// line whose noise changes.
type sizer struct {
	lost, bits float64
	max        int
}

const (
	sizerDecay    = 0.97 // per frame outcome: remembers ~30 frames
	sizerOverhead = 32   // header, CRC, SLIP ENDs, message header, escapes
	sizerMin      = 128
	// sizerPriorBits is the bits "seen" per prior loss at session start.
	sizerPriorBits = 100000
)

// newSizer starts with a prior of one loss in sizerPriorBits (a BER near
// 1e-5): a session's first frames are mid-sized, so a noisy line does not
// begin with a window of long frames that mostly fail and then wait out
// timers to be resent whole. On a clean line the prior decays below the
// adaptation threshold within about 23 frames.
func newSizer(max int) sizer { return sizer{max: max, lost: 1, bits: sizerPriorBits} }

// record notes the fate of one transmission of an n-byte payload.
func (z *sizer) record(n int, lost bool) {
	z.lost *= sizerDecay
	z.bits *= sizerDecay
	z.bits += float64(8 * (n + sizerOverhead))
	if lost {
		z.lost++
	}
}

// limit returns the payload size to use now, at most ceiling.
func (z *sizer) limit(ceiling int) int {
	ceiling = min(ceiling, z.max)
	if z.lost < 0.5 || z.bits == 0 {
		return ceiling // no recent loss worth adapting to
	}
	ber := z.lost / z.bits
	best := int(math.Sqrt(sizerOverhead / (8 * ber)))
	return min(ceiling, max(best, sizerMin))
}
