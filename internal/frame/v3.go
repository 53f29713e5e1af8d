package frame

import (
	"encoding/binary"
	"strconv"
)

// Seed v3 frame layout (docs/protocol.md §3.5): version, type, seq, plen, crc,
// payload. The CRC-16 covers bytes 0..5 and then the payload.
//
// protocol: must match firmware and docs/protocol.md
const (
	V3Version       = 0x03   // V3Version is byte 0 of every seed frame.
	V3HeaderLen     = 8      // V3HeaderLen includes the CRC field.
	V3MaxPayloadLen = 0xFFFF // V3MaxPayloadLen is the largest payload the uint16 plen can describe.
	V3MaxFrameLen   = 8192   // V3MaxFrameLen is the SLIP decoder limit for v3 frames.
)

// V3Type is the type byte of a seed v3 frame.
type V3Type uint8

// Seed v3 frame types.
//
// protocol: must match firmware and docs/protocol.md
const (
	V3Req  V3Type = 1 // V3Req carries a request map {"op", "args"}.
	V3Resp V3Type = 2 // V3Resp carries the response to the request with the same seq.
	V3Ack  V3Type = 3 // V3Ack acknowledges a REQ or RESP; empty payload.
)

var v3TypeNames = [...]string{
	V3Req:  "REQ",
	V3Resp: "RESP",
	V3Ack:  "ACK",
}

// Valid reports whether t is a known seed frame type.
func (t V3Type) Valid() bool {
	return int(t) < len(v3TypeNames) && v3TypeNames[t] != ""
}

// String returns the name of t, such as "REQ".
func (t V3Type) String() string {
	if t.Valid() {
		return v3TypeNames[t]
	}
	return "V3Type(" + strconv.Itoa(int(t)) + ")"
}

// V3Header is the header of a seed v3 frame, less the fields that Append
// computes (version, length, CRC).
type V3Header struct {
	Type V3Type // Type is the frame type.
	Seq  uint16 // Seq pairs a REQ with its RESP and ACKs.
}

// AppendV3 appends the seed v3 frame for h and payload to dst and returns the
// extended buffer. It does not allocate when dst has room for the frame.
// AppendV3 panics if payload is longer than V3MaxPayloadLen, which the
// 16-bit length field cannot describe.
func AppendV3(dst []byte, h V3Header, payload []byte) []byte {
	if len(payload) > V3MaxPayloadLen {
		panic("frame: AppendV3: payload longer than 65535 bytes")
	}
	start := len(dst)
	dst = append(dst, V3Version, byte(h.Type))
	dst = binary.LittleEndian.AppendUint16(dst, h.Seq)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(payload)))
	crc := UpdateCRC16(CRC16(dst[start:]), payload)
	dst = binary.LittleEndian.AppendUint16(dst, crc)
	return append(dst, payload...)
}

// ParseV3 checks one seed v3 frame, as delivered by the SLIP decoder, and
// returns its header and payload. The payload is a sub-slice of b.
//
// Checks run in this order, and the first failure decides the error: empty
// ("short"), version ("bad_version"), length below V3HeaderLen ("short"),
// length not V3HeaderLen+plen ("bad_length"), CRC ("crc"), type
// ("bad_type"). ParseV3 does not require an ACK to be empty; the seed
// firmware does not either.
func ParseV3(b []byte) (V3Header, []byte, error) {
	if len(b) == 0 {
		return V3Header{}, nil, ErrShort
	}
	if b[0] != V3Version {
		return V3Header{}, nil, ErrBadVersion
	}
	if len(b) < V3HeaderLen {
		return V3Header{}, nil, ErrShort
	}
	if len(b) != V3HeaderLen+int(binary.LittleEndian.Uint16(b[4:])) {
		return V3Header{}, nil, ErrBadLength
	}
	payload := b[V3HeaderLen:len(b):len(b)]
	if UpdateCRC16(CRC16(b[:6]), payload) != binary.LittleEndian.Uint16(b[6:]) {
		return V3Header{}, nil, ErrCRC
	}
	h := V3Header{Type: V3Type(b[1]), Seq: binary.LittleEndian.Uint16(b[2:])}
	if !h.Type.Valid() {
		return V3Header{}, nil, ErrBadType
	}
	return h, payload, nil
}
