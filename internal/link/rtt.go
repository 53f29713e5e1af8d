package link

import "time"

// rttEstimator computes the retransmission timeout as RFC 6298 does
// (docs/protocol.md §6.5): gains 1/8 and 1/4, RTO = SRTT + 4·RTTVAR,
// clamped, doubled on each timeout until a fresh sample arrives.
type rttEstimator struct {
	srtt, rttvar time.Duration
	rto          time.Duration
	min, max     time.Duration
	backoff      uint
	maxBackoff   uint // doublings allowed before a fresh sample
	sampled      bool
}

func newRTT(initial, min, max time.Duration) rttEstimator {
	return rttEstimator{rto: initial, min: min, max: max, maxBackoff: 6}
}

func (r *rttEstimator) sample(d time.Duration) {
	if d <= 0 {
		d = time.Microsecond
	}
	if !r.sampled {
		r.srtt, r.rttvar, r.sampled = d, d/2, true
	} else {
		delta := r.srtt - d
		if delta < 0 {
			delta = -delta
		}
		r.rttvar = (3*r.rttvar + delta) / 4
		r.srtt = (7*r.srtt + d) / 8
	}
	r.backoff = 0
	r.rto = r.clamp(r.srtt + 4*r.rttvar)
}

// timeout doubles the RTO after a retransmission timer fired.
func (r *rttEstimator) timeout() {
	if r.backoff >= r.maxBackoff {
		return
	}
	r.backoff++
	r.rto = r.clamp(r.rto * 2)
}

func (r *rttEstimator) clamp(d time.Duration) time.Duration {
	return min(max(d, r.min), r.max)
}

// ackDelayBound is the longest an acknowledgement can legitimately take on
// a busy line: the peer may have just started a full frame, and the ack
// riding on its next frame is readable only once that frame's CRC has
// arrived — two full frames, plus slack for scheduling and for USB-serial
// adapters, which hold received bytes up to their latency timer (16 ms by
// default on FTDI chips). It is the floor of
// the RTO, so a reverse direction that turns busy does not look like loss.
func ackDelayBound(maxPayload, baud, peerBaud int) time.Duration {
	if baud <= 0 {
		baud = peerBaud
	}
	if baud <= 0 {
		return 0
	}
	wire := float64(maxPayload+32) * 1.05 * 10 / float64(baud) // seconds per frame, SLIP included
	return time.Duration(2*wire*float64(time.Second)) + 25*time.Millisecond
}
