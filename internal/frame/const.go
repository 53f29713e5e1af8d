// Package frame encodes and parses the frames carried inside SLIP: the
// native uartproxy frame (docs/protocol.md §3) and, for compatibility with
// devices running the seed firmware, the seed "v3" frame (§3.5, §14).
//
// Both formats start with a version byte (Version for native frames,
// V3Version for seed frames), so Peek tells them apart on the same wire.
//
// Functions in this package keep no state and are safe for concurrent use.
// Parse and ParseV3 never panic on input; every rejected frame yields an
// *Error whose Reason is a short token for logs and metrics.
package frame

import (
	"errors"
	"strconv"
)

// Type is the frame type, the low nibble of byte 1.
type Type uint8

// Native frame layout, limits and types (docs/protocol.md §3, §11).
//
// protocol: must match firmware and docs/protocol.md
const (
	Version         = 0x04                     // Version is byte 0 of every native frame.
	HeaderLen       = 10                       // HeaderLen is version, type/flags, seq, ack, sack.
	CRCLen          = 4                        // CRCLen is the CRC-32/IEEE trailer, little-endian.
	MinLen          = HeaderLen + CRCLen       // MinLen is the length of a frame with no payload.
	MaxPayloadLimit = 8192                     // MaxPayloadLimit is the largest payload any side may accept.
	MinPayloadLimit = 256                      // MinPayloadLimit is the smallest max_payload a side may announce.
	MaxFrameLen     = MinLen + MaxPayloadLimit // MaxFrameLen is the SLIP decoder limit for native frames (8206).

	Data  Type = 1 // Data is a reliable, sequenced frame carrying messages.
	Ack   Type = 2 // Ack carries only ack and sack.
	Hello Type = 3 // Hello is the unsequenced handshake frame.

	FlagAckReq = 0x10 // FlagAckReq asks the receiver to send an ACK at once.
)

// Byte 1 holds the type in its low nibble and the flags in its high nibble.
const (
	typeMask = 0x0F
	flagMask = 0xF0
)

var typeNames = [...]string{
	Data:  "DATA",
	Ack:   "ACK",
	Hello: "HELLO",
}

// Valid reports whether t is a known frame type.
func (t Type) Valid() bool {
	return int(t) < len(typeNames) && typeNames[t] != ""
}

// String returns the name of t as used in docs/protocol.md, such as "DATA".
func (t Type) String() string {
	if t.Valid() {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Error is the error returned for a rejected frame.
type Error struct {
	// Reason is a short token for logs and the dropped-frames metric.
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	return "frame: " + e.Reason
}

// Errors returned by Parse and ParseV3. Compare with errors.Is, or use Reason
// for the token.
var (
	// ErrShort means the frame is shorter than a header and CRC.
	ErrShort = &Error{"short"}
	// ErrBadVersion means byte 0 is not the expected version.
	ErrBadVersion = &Error{"bad_version"}
	// ErrBadType means the frame type is unknown.
	ErrBadType = &Error{"bad_type"}
	// ErrCRC means the checksum does not match.
	ErrCRC = &Error{"crc"}
	// ErrTooLong means the payload is larger than the negotiated maximum.
	ErrTooLong = &Error{"too_long"}
	// ErrBadLength means the payload length is not allowed for the frame
	// type (native) or does not match the length field (v3).
	ErrBadLength = &Error{"bad_length"}
)

// Reason returns the reason token of err: "" for nil, the Reason of an
// *Error anywhere in err's chain, and "other" for any other error.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return "other"
}
