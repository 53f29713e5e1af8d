package slip

import "bytes"

// ReasonTooLong is the drop reason for a frame longer than the decoder limit.
const ReasonTooLong = "too_long"

// Stats counts what a Decoder has seen since it was made.
type Stats struct {
	Frames    uint64 // Frames is the number of frames emitted.
	Bytes     uint64 // Bytes is the total length of the frames emitted, after unescaping.
	TooLong   uint64 // TooLong is the number of frames discarded for exceeding the limit.
	BadEscape uint64 // BadEscape is the number of Esc bytes not followed by EscEnd or EscEsc.
}

// A Decoder splits a SLIP byte stream into frames. Frames may span any number
// of Feed calls. The zero value is not usable; call NewDecoder.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	max     int
	buf     []byte // buf is the unescaped part of the current frame; len(buf) <= max.
	esc     bool   // esc is set when the last byte seen was an Esc.
	discard bool   // discard is set while skipping a too-long frame up to the next End.
	stats   Stats
}

// NewDecoder returns a Decoder that accepts frames of up to max bytes after
// unescaping (docs/protocol.md §2: 8206 for native frames, 8192 for v3).
// Memory use is bounded by max. NewDecoder panics if max < 1.
func NewDecoder(max int) *Decoder {
	if max < 1 {
		panic("slip: NewDecoder: max must be positive")
	}
	return &Decoder{max: max, buf: make([]byte, 0, min(max, 2048))}
}

// Feed decodes p, which continues the stream given to earlier calls.
//
// For each complete frame, Feed calls emit with the unescaped bytes. The
// slice is only valid during the call; emit must copy what it keeps and must
// not call back into the Decoder. Empty frames (End End) are skipped
// silently. Bytes before the first End of a stream form a frame like any
// other; the frame layer rejects them by CRC.
//
// A frame longer than the limit is discarded up to the next End and reported
// once through drop with ReasonTooLong. drop may be nil.
//
// An Esc followed by a byte other than EscEnd or EscEsc yields that byte
// (RFC 1055) and is counted in Stats().BadEscape; the frame CRC catches the
// damage. One exception: an End always ends the frame, even right after an
// Esc (the Esc is counted and dropped), so a corrupted byte just before an End
// cannot merge two frames into one.
func (d *Decoder) Feed(p []byte, emit func(frame []byte), drop func(reason string)) {
	for len(p) > 0 {
		e := bytes.IndexByte(p, End)
		if e < 0 {
			d.unescape(p, drop)
			return
		}
		d.unescape(p[:e], drop)
		d.end(emit)
		p = p[e+1:]
	}
}

// unescape adds p, which holds no End, to the current frame.
func (d *Decoder) unescape(p []byte, drop func(string)) {
	for len(p) > 0 {
		if d.esc {
			d.esc = false
			c := p[0]
			switch c {
			case EscEnd:
				c = End
			case EscEsc:
				c = Esc
			default:
				d.stats.BadEscape++
			}
			if d.room(1, drop) {
				d.buf = append(d.buf, c)
			}
			p = p[1:]
			continue
		}
		i := bytes.IndexByte(p, Esc)
		if i < 0 {
			d.addRun(p, drop)
			return
		}
		d.addRun(p[:i], drop)
		d.esc = true
		p = p[i+1:]
	}
}

// addRun appends a run of bytes that need no unescaping.
func (d *Decoder) addRun(p []byte, drop func(string)) {
	if len(p) == 0 || !d.room(len(p), drop) {
		return
	}
	d.buf = append(d.buf, p...)
}

// room reports whether n more bytes fit in the current frame. When they do
// not, it starts discarding the frame and reports the drop once.
func (d *Decoder) room(n int, drop func(string)) bool {
	if d.discard {
		return false
	}
	if len(d.buf)+n <= d.max {
		return true
	}
	d.discard = true
	d.buf = d.buf[:0]
	d.stats.TooLong++
	if drop != nil {
		drop(ReasonTooLong)
	}
	return false
}

// end handles an End byte: it emits the current frame, if any, and starts
// the next one.
func (d *Decoder) end(emit func([]byte)) {
	if d.esc {
		d.esc = false
		d.stats.BadEscape++
	}
	if d.discard {
		d.discard = false
		return
	}
	if len(d.buf) == 0 {
		return
	}
	d.stats.Frames++
	d.stats.Bytes += uint64(len(d.buf))
	emit(d.buf)
	d.buf = d.buf[:0]
}

// Reset discards any partial frame, as after a port reopen. Stats are kept.
func (d *Decoder) Reset() {
	d.buf = d.buf[:0]
	d.esc = false
	d.discard = false
}

// Stats returns a snapshot of the decoder counters.
func (d *Decoder) Stats() Stats {
	return d.stats
}
