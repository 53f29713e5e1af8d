// Package capture reads and writes recordings of the serial line, for
// `uartproxy sniff` and the mirror of `uartproxy serve`. The formats are
// described in docs/sniff.md.
//
// Two pcapng link types are used, both from the range reserved for private
// use, so Wireshark shows them with the Lua dissector in scripts/:
//
//   - LinkTypeFrames (LINKTYPE_USER0, 147), written by sniff: one packet per
//     decoded SLIP frame, a 2-byte pseudo-header [direction][status] followed
//     by the unescaped frame bytes.
//   - LinkTypeRaw (LINKTYPE_USER1, 148), written by a Tap: one packet per
//     chunk of line bytes as they were read or written, a 1-byte pseudo-header
//     [direction] followed by the bytes, SLIP escapes and all.
//
// A Reader reads either pcapng format, or a file of raw line bytes (which has
// no timestamps and no direction).
//
// Concurrency: a Writer is safe for concurrent use, so a Tap can record the
// reads and writes of two goroutines into one file. A Reader is not.
package capture

import "strconv"

// Direction says which way bytes travelled on the line.
type Direction uint8

// Direction values, as stored in byte 0 of every pseudo-header.
//
// protocol: must match scripts/uartproxy.lua and docs/sniff.md
const (
	HostToDevice Direction = 0 // written by the host, read by the device
	DeviceToHost Direction = 1 // written by the device, read by the host
	Unknown      Direction = 2 // a capture without direction (raw bytes)
	dirMax                 = 3
)

var dirNames = [dirMax]string{"h2d", "d2h", "unknown"}

// String returns "h2d", "d2h" or "unknown".
func (d Direction) String() string {
	if d < dirMax {
		return dirNames[d]
	}
	return "dir" + strconv.Itoa(int(d))
}

// Valid reports whether d is one of the three directions.
func (d Direction) Valid() bool { return d < dirMax }

// Status says what a LinkTypeFrames packet holds: byte 1 of its
// pseudo-header.
type Status uint8

// Status values.
//
// protocol: must match scripts/uartproxy.lua and docs/sniff.md
const (
	StatusFrame   Status = 0 // a SLIP frame: a native or seed frame, valid or not
	StatusTooLong Status = 1 // a SLIP frame over the decoder limit; its bytes are not kept
	StatusNoise   Status = 2 // bytes between frames that are no frame
	statusMax            = 3
)

var statusNames = [statusMax]string{"frame", "slip_too_long", "noise"}

// String returns "frame", "slip_too_long" or "noise".
func (s Status) String() string {
	if s < statusMax {
		return statusNames[s]
	}
	return "status" + strconv.Itoa(int(s))
}

// Link types and pseudo-header sizes.
//
// protocol: must match scripts/uartproxy.lua and docs/sniff.md
const (
	LinkTypeFrames = 147 // LINKTYPE_USER0: decoded SLIP frames
	LinkTypeRaw    = 148 // LINKTYPE_USER1: raw line bytes

	FramesHeaderLen = 2 // [direction][status]
	RawHeaderLen    = 1 // [direction]
)

// Format is the kind of file a Reader found.
type Format uint8

// Formats a Reader recognises.
const (
	FormatRawBytes Format = iota // a file of line bytes, no timestamps
	FormatFrames                 // pcapng, LinkTypeFrames
	FormatRaw                    // pcapng, LinkTypeRaw
)

// String names the format for messages.
func (f Format) String() string {
	switch f {
	case FormatFrames:
		return "pcapng (frames, LINKTYPE_USER0)"
	case FormatRaw:
		return "pcapng (raw line bytes, LINKTYPE_USER1)"
	}
	return "raw bytes"
}
