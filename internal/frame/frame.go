package frame

import (
	"encoding/binary"
	"hash/crc32"
)

// Header is the fixed part of a native frame (docs/protocol.md §3).
type Header struct {
	Type  Type   // Type is the frame type.
	Flags uint8  // Flags holds the high nibble of byte 1, such as FlagAckReq.
	Seq   uint16 // Seq is the DATA sequence number; 0 for other types.
	Ack   uint16 // Ack is the next DATA seq the sender expects from its peer.
	Sack  uint32 // Sack bit i set means DATA Ack+1+i has been received.
}

// Append appends the native frame for h and payload to dst and returns the
// extended buffer: header, payload and CRC-32/IEEE, all little-endian. Only
// the low nibble of h.Type and the high nibble of h.Flags are written.
//
// Append does not check the payload against the type or a limit; that is the
// sender's job. It does not allocate when dst has room for the frame.
func Append(dst []byte, h Header, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, Version, byte(h.Type)&typeMask|h.Flags&flagMask)
	dst = binary.LittleEndian.AppendUint16(dst, h.Seq)
	dst = binary.LittleEndian.AppendUint16(dst, h.Ack)
	dst = binary.LittleEndian.AppendUint32(dst, h.Sack)
	dst = append(dst, payload...)
	return binary.LittleEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

// Parse checks one native frame, as delivered by the SLIP decoder, and
// returns its header and payload. The payload is a sub-slice of b.
//
// maxPayload is the negotiated maximum payload; a value outside
// 1..MaxPayloadLimit means MaxPayloadLimit. Checks run in this order, and the
// first failure decides the error: empty ("short"), version ("bad_version"),
// length below MinLen ("short"), CRC ("crc"), type ("bad_type"), payload
// above maxPayload ("too_long"), payload presence: ACK with payload or DATA
// without ("bad_length"). Flag bits other than FlagAckReq are kept in
// Header.Flags and otherwise ignored.
func Parse(b []byte, maxPayload int) (Header, []byte, error) {
	if len(b) == 0 {
		return Header{}, nil, ErrShort
	}
	if b[0] != Version {
		return Header{}, nil, ErrBadVersion
	}
	if len(b) < MinLen {
		return Header{}, nil, ErrShort
	}
	body := len(b) - CRCLen
	if crc32.ChecksumIEEE(b[:body]) != binary.LittleEndian.Uint32(b[body:]) {
		return Header{}, nil, ErrCRC
	}
	h := Header{
		Type:  Type(b[1] & typeMask),
		Flags: b[1] & flagMask,
		Seq:   binary.LittleEndian.Uint16(b[2:]),
		Ack:   binary.LittleEndian.Uint16(b[4:]),
		Sack:  binary.LittleEndian.Uint32(b[6:]),
	}
	if !h.Type.Valid() {
		return Header{}, nil, ErrBadType
	}
	if maxPayload < 1 || maxPayload > MaxPayloadLimit {
		maxPayload = MaxPayloadLimit
	}
	payload := b[HeaderLen:body:body]
	if len(payload) > maxPayload {
		return Header{}, nil, ErrTooLong
	}
	if h.Type == Ack && len(payload) != 0 || h.Type == Data && len(payload) == 0 {
		return Header{}, nil, ErrBadLength
	}
	return h, payload, nil
}

// Peek returns the version byte of the frame b, or -1 if b is empty. It lets
// a decoder tell native frames (Version) from seed frames (V3Version).
func Peek(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
