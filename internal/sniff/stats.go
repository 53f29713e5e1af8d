package sniff

import (
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
)

// DirStats counts what one direction of the line carried.
type DirStats struct {
	Bytes       uint64 // line bytes, escapes and ENDs included
	Frames      uint64 // frames that passed their checks
	Rejected    uint64 // native and seed frames that failed one
	CRCErrors   uint64 // of which for a CRC mismatch
	Sequenced   uint64 // valid native DATA frames and seed REQ and RESP frames
	Retransmits uint64 // of which retransmissions (Event.Retransmit)
	Noise       uint64 // runs of bytes between frames that are no frame
	NoiseBytes  uint64
	TooLong     uint64 // SLIP frames over the limit
	BadEscapes  uint64
	// Resyncs counts how often the decoder had to skip bytes that were no
	// frame to find the next frame boundary: noise between two ENDs and
	// SLIP frames over the limit. (Bytes cut off at the start or end of
	// a capture are noise, but no resync.)
	Resyncs uint64

	First, Last time.Time // times of the first and last bytes seen; zero if none
}

// Stats accumulates the figures of a capture, per direction. It is a value:
// copy it to take a snapshot, and Sub two snapshots for an interval.
type Stats struct {
	Dir [3]DirStats // indexed by capture.Direction
}

func (s *Stats) dir(d capture.Direction) *DirStats {
	if !d.Valid() {
		d = capture.Unknown
	}
	return &s.Dir[d]
}

func (ds *DirStats) seen(t time.Time) {
	if t.IsZero() {
		return
	}
	if ds.First.IsZero() || t.Before(ds.First) {
		ds.First = t
	}
	if t.After(ds.Last) {
		ds.Last = t
	}
}

// AddBytes counts n line bytes of direction d, read at t.
func (s *Stats) AddBytes(d capture.Direction, t time.Time, n int) {
	ds := s.dir(d)
	ds.Bytes += uint64(n)
	ds.seen(t)
}

// Add counts an event.
func (s *Stats) Add(ev *Event) {
	ds := s.dir(ev.Dir)
	ds.seen(ev.Time)
	ds.BadEscapes += uint64(ev.BadEscapes)
	switch ev.Kind {
	case KindFrame:
		ds.Frames++
		if ev.Version == frame.Version && ev.Header.Type == frame.Data || ev.Version == frame.V3Version && ev.Type != "ACK" {
			ds.Sequenced++
			if ev.Retransmit {
				ds.Retransmits++
			}
		}
	case KindRejected:
		ds.Rejected++
		if ev.Reason == "crc" {
			ds.CRCErrors++
		}
	case KindNoise:
		ds.Noise++
		ds.NoiseBytes += uint64(ev.FrameLen)
		if ev.Reason == ReasonNoise {
			ds.Resyncs++
		}
	case KindTooLong:
		ds.TooLong++
		ds.Resyncs++
	}
}

// Sub returns the counts of s since the snapshot old; the times are those
// of s.
func (s Stats) Sub(old Stats) Stats {
	for i := range s.Dir {
		a, b := &s.Dir[i], old.Dir[i]
		a.Bytes -= b.Bytes
		a.Frames -= b.Frames
		a.Rejected -= b.Rejected
		a.CRCErrors -= b.CRCErrors
		a.Sequenced -= b.Sequenced
		a.Retransmits -= b.Retransmits
		a.Noise -= b.Noise
		a.NoiseBytes -= b.NoiseBytes
		a.TooLong -= b.TooLong
		a.BadEscapes -= b.BadEscapes
		a.Resyncs -= b.Resyncs
	}
	return s
}

// Empty reports whether s counts nothing (its times aside).
func (s Stats) Empty() bool {
	for _, ds := range s.Dir {
		if !ds.empty() {
			return false
		}
	}
	return true
}

func (ds DirStats) empty() bool {
	ds.First, ds.Last = time.Time{}, time.Time{}
	return ds == DirStats{}
}

// Span returns the times of the first and last bytes seen in any direction.
func (s *Stats) Span() (first, last time.Time) {
	for _, ds := range s.Dir {
		if !ds.First.IsZero() && (first.IsZero() || ds.First.Before(first)) {
			first = ds.First
		}
		if ds.Last.After(last) {
			last = ds.Last
		}
	}
	return first, last
}

// DirSummary is the figures of one direction over an interval.
type DirSummary struct {
	Dir            string  `json:"dir"`
	Frames         uint64  `json:"frames"`
	FramesPerSec   float64 `json:"frames_per_sec,omitempty"`
	Bytes          uint64  `json:"bytes"`
	BytesPerSec    float64 `json:"bytes_per_sec,omitempty"`
	Rejected       uint64  `json:"rejected"`
	CRCErrors      uint64  `json:"crc_errors"`
	CRCErrorRate   float64 `json:"crc_error_rate"` // CRC errors per frame received (valid or not)
	Sequenced      uint64  `json:"sequenced"`
	Retransmits    uint64  `json:"retransmits"`
	RetransmitRate float64 `json:"retransmit_rate"` // retransmissions per sequenced frame
	Resyncs        uint64  `json:"resyncs"`
	Noise          uint64  `json:"noise"`
	NoiseBytes     uint64  `json:"noise_bytes"`
	TooLong        uint64  `json:"slip_too_long"`
	BadEscapes     uint64  `json:"bad_escapes"`
}

// Summary is the figures of a capture or of an interval of one. Its JSON
// form is what `uartproxy sniff --json` prints for stats.
type Summary struct {
	Kind    string       `json:"kind"`              // "stats" (an interval) or "summary" (the whole capture)
	Seconds float64      `json:"seconds,omitempty"` // the interval; 0 when the capture has no times
	Dirs    []DirSummary `json:"dirs"`              // the directions that carried anything
}

// Summary returns the figures of s over an interval of length d, or over
// the span of the capture when d is 0. Rates per second are left out when
// the length is unknown.
func (s *Stats) Summary(kind string, d time.Duration) Summary {
	if d <= 0 {
		first, last := s.Span()
		d = last.Sub(first)
	}
	sum := Summary{Kind: kind, Seconds: d.Seconds(), Dirs: []DirSummary{}}
	for i, ds := range s.Dir {
		if ds.empty() {
			continue
		}
		x := DirSummary{
			Dir: capture.Direction(i).String(), Frames: ds.Frames, Bytes: ds.Bytes,
			Rejected: ds.Rejected, CRCErrors: ds.CRCErrors, Sequenced: ds.Sequenced, Retransmits: ds.Retransmits,
			Resyncs: ds.Resyncs, Noise: ds.Noise, NoiseBytes: ds.NoiseBytes, TooLong: ds.TooLong, BadEscapes: ds.BadEscapes,
		}
		if n := ds.Frames + ds.Rejected; n > 0 {
			x.CRCErrorRate = float64(ds.CRCErrors) / float64(n)
		}
		if ds.Sequenced > 0 {
			x.RetransmitRate = float64(ds.Retransmits) / float64(ds.Sequenced)
		}
		if sec := d.Seconds(); sec > 0 {
			x.FramesPerSec = float64(ds.Frames) / sec
			x.BytesPerSec = float64(ds.Bytes) / sec
		}
		sum.Dirs = append(sum.Dirs, x)
	}
	return sum
}
