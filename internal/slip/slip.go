// Package slip implements SLIP framing (RFC 1055) for the serial line, as
// described in docs/protocol.md §2.
//
// AppendEncode wraps one frame as END, escaped bytes, END; the leading END
// flushes any line noise the receiver has collected. A Decoder turns a byte
// stream back into frames, one Feed call at a time, with bounded memory.
//
// AppendEncode is safe for concurrent use. A Decoder is not: it holds the
// partial frame between Feed calls and is meant to be owned by the one
// goroutine that reads the serial port.
package slip

import "bytes"

// SLIP special bytes (RFC 1055).
//
// protocol: must match firmware and docs/protocol.md
const (
	End    = 0xC0 // End terminates a frame.
	Esc    = 0xDB // Esc starts a two-byte escape sequence.
	EscEnd = 0xDC // EscEnd after Esc stands for a data byte End.
	EscEsc = 0xDD // EscEsc after Esc stands for a data byte Esc.
)

// AppendEncode appends the SLIP encoding of p to dst and returns the extended
// buffer: End, p with End and Esc escaped, End. It does not allocate when dst
// has room for the result.
func AppendEncode(dst, p []byte) []byte {
	dst = append(dst, End)
	// Runs without special bytes are copied whole. The next End and the next
	// Esc are each searched once, so the cost stays linear however the two
	// are interleaved.
	nextEnd := indexFrom(p, 0, End)
	nextEsc := indexFrom(p, 0, Esc)
	start := 0
	for {
		i := min(nextEnd, nextEsc)
		dst = append(dst, p[start:i]...)
		if i == len(p) {
			break
		}
		if i == nextEnd {
			dst = append(dst, Esc, EscEnd)
			nextEnd = indexFrom(p, i+1, End)
		} else {
			dst = append(dst, Esc, EscEsc)
			nextEsc = indexFrom(p, i+1, Esc)
		}
		start = i + 1
	}
	return append(dst, End)
}

// EncodedLen returns the length of the SLIP encoding of p.
func EncodedLen(p []byte) int {
	return len(p) + 2 + bytes.Count(p, []byte{End}) + bytes.Count(p, []byte{Esc})
}

// indexFrom returns the index of the first c in p at or after from, or len(p).
func indexFrom(p []byte, from int, c byte) int {
	if j := bytes.IndexByte(p[from:], c); j >= 0 {
		return from + j
	}
	return len(p)
}
