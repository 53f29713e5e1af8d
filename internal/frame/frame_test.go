package frame

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
)

func TestAppendLiteral(t *testing.T) {
	// ACK, ack 5: header 04 02 0000 0500 00000000, CRC-32 0x945A7139 little-endian.
	got := Append(nil, Header{Type: Ack, Ack: 5}, nil)
	want := "\x04\x02\x00\x00\x05\x00\x00\x00\x00\x00\x39\x71\x5a\x94"
	if string(got) != want {
		t.Errorf("Append(ACK) = %q, want %q", got, want)
	}

	// Fields are little-endian; flags share byte 1 with the type.
	got = Append(nil, Header{Type: Data, Flags: FlagAckReq, Seq: 0x0102, Ack: 0x0304, Sack: 0x05060708}, []byte("hi"))
	head := "\x04\x11\x02\x01\x04\x03\x08\x07\x06\x05hi"
	if string(got[:len(head)]) != head {
		t.Errorf("Append(DATA) header = %q, want %q", got[:len(head)], head)
	}
	if crc := crc32.ChecksumIEEE([]byte(head)); string(got[len(head):]) != string([]byte{byte(crc), byte(crc >> 8), byte(crc >> 16), byte(crc >> 24)}) {
		t.Errorf("Append(DATA) CRC = %x, want %08x little-endian", got[len(head):], crc)
	}

	// Out-of-range bits of Type and Flags do not leak into each other.
	got = Append(nil, Header{Type: 0xF1, Flags: 0x1F, Seq: 1}, []byte{0})
	if got[1] != 0x11 {
		t.Errorf("byte 1 = %#x, want 0x11", got[1])
	}
}

func TestLimits(t *testing.T) {
	// Docs/protocol.md §2 and §8: a native frame is at most 8206 bytes before SLIP.
	if MaxFrameLen != 8206 || MinLen != 14 {
		t.Errorf("MaxFrameLen = %d, MinLen = %d; want 8206, 14", MaxFrameLen, MinLen)
	}
	b := Append(nil, Header{Type: Data}, make([]byte, MaxPayloadLimit))
	if len(b) != MaxFrameLen {
		t.Errorf("largest frame is %d bytes, want %d", len(b), MaxFrameLen)
	}
}

func TestCRC32Check(t *testing.T) {
	// Docs/protocol.md §3 names zlib's CRC-32; check value from the CRC catalogue.
	if got := crc32.ChecksumIEEE([]byte("123456789")); got != 0xCBF43926 {
		t.Errorf("CRC-32(123456789) = %#x, want 0xcbf43926", got)
	}
}

func TestParseRoundTrip(t *testing.T) {
	headers := []Header{
		{Type: Data, Seq: 0, Ack: 0},
		{Type: Data, Flags: FlagAckReq, Seq: 0xFFFF, Ack: 0x8000, Sack: 0xFFFFFFFF},
		{Type: Ack, Ack: 42, Sack: 0b1011},
		{Type: Ack, Flags: FlagAckReq},
		{Type: Hello},
	}
	for _, h := range headers {
		for _, n := range []int{0, 1, 256, MaxPayloadLimit} {
			if h.Type == Ack && n != 0 || h.Type == Data && n == 0 {
				continue
			}
			payload := bytes.Repeat([]byte{0xC0}, n)
			b := Append(nil, h, payload)
			if len(b) != MinLen+n {
				t.Errorf("len = %d, want %d", len(b), MinLen+n)
			}
			gh, gp, err := Parse(b, 0)
			if err != nil {
				t.Fatalf("Parse(Append(%+v, %d bytes)): %v", h, n, err)
			}
			if gh != h || !bytes.Equal(gp, payload) {
				t.Errorf("Parse = %+v %d bytes, want %+v %d bytes", gh, len(gp), h, n)
			}
			if n > 0 && &gp[0] != &b[HeaderLen] {
				t.Error("payload is not a sub-slice of the input")
			}
			if cap(gp) != len(gp) {
				t.Error("payload capacity reaches into the CRC")
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := Append(nil, Header{Type: Data, Seq: 1}, []byte{1, 2, 3})
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"nil", nil, 0, ErrShort},
		{"version_only", []byte{Version}, 0, ErrShort},
		{"13_bytes", good[:13], 0, ErrShort},
		{"version_first", []byte{V3Version, 1}, 0, ErrBadVersion},
		{"version_5", append([]byte{5}, good[1:]...), 0, ErrBadVersion},
		{"crc_trailer", flip(good, len(good)-1), 0, ErrCRC},
		{"crc_header", flip(good, 2), 0, ErrCRC},
		{"crc_truncated", good[:len(good)-1], 0, ErrCRC},
		{"crc_before_type", flip(Append(nil, Header{Type: 0}, nil), 13), 0, ErrCRC},
		{"type_0", Append(nil, Header{Type: 0}, nil), 0, ErrBadType},
		{"type_4", Append(nil, Header{Type: 4}, []byte{1}), 0, ErrBadType},
		{"type_15_ackreq", Append(nil, Header{Type: 15, Flags: FlagAckReq}, nil), 0, ErrBadType},
		{"too_long", good, 2, ErrTooLong},
		{"too_long_absolute", Append(nil, Header{Type: Data}, make([]byte, MaxPayloadLimit+1)), 0, ErrTooLong},
		{"too_long_above_limit", Append(nil, Header{Type: Data}, make([]byte, MaxPayloadLimit+1)), 1 << 20, ErrTooLong},
		{"ack_with_payload", Append(nil, Header{Type: Ack}, []byte{0}), 0, ErrBadLength},
		{"data_empty", Append(nil, Header{Type: Data}, nil), 0, ErrBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p, err := Parse(tt.in, tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%x) error = %v, want %v", tt.in, err, tt.want)
			}
			if h != (Header{}) || p != nil {
				t.Errorf("Parse returned %+v %x with an error", h, p)
			}
		})
	}
	// Exactly max is fine.
	if _, _, err := Parse(good, 3); err != nil {
		t.Errorf("Parse with payload == max: %v", err)
	}
	// HELLO may be empty at this layer; the link layer judges its CBOR.
	if _, _, err := Parse(Append(nil, Header{Type: Hello}, nil), 0); err != nil {
		t.Errorf("Parse(empty HELLO): %v", err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrShort, "short"},
		{ErrBadVersion, "bad_version"},
		{ErrBadType, "bad_type"},
		{ErrCRC, "crc"},
		{ErrTooLong, "too_long"},
		{ErrBadLength, "bad_length"},
		{fmt.Errorf("sniff: %w", ErrCRC), "crc"},
		{&Error{Reason: "custom"}, "custom"},
		{errors.New("boom"), "other"},
	}
	for _, tt := range tests {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	if got := ErrCRC.Error(); got != "frame: crc" {
		t.Errorf("ErrCRC.Error() = %q", got)
	}
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{Data, "DATA"}, {Ack, "ACK"}, {Hello, "HELLO"}, {0, "Type(0)"}, {4, "Type(4)"}, {255, "Type(255)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}

func TestPeek(t *testing.T) {
	tests := []struct {
		in   []byte
		want int
	}{
		{nil, -1},
		{[]byte{}, -1},
		{Append(nil, Header{Type: Ack}, nil), Version},
		{AppendV3(nil, V3Header{Type: V3Ack, Seq: 1}, nil), V3Version},
		{[]byte{0xFF}, 0xFF},
	}
	for _, tt := range tests {
		if got := Peek(tt.in); got != tt.want {
			t.Errorf("Peek(%x) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestAppendNoAlloc(t *testing.T) {
	payload := make([]byte, 2048)
	dst := make([]byte, 0, MinLen+len(payload))
	h := Header{Type: Data, Seq: 9}
	if n := testing.AllocsPerRun(100, func() { dst = Append(dst[:0], h, payload) }); n != 0 {
		t.Errorf("Append: %v allocs, want 0", n)
	}
	v3 := make([]byte, 0, V3HeaderLen+len(payload))
	if n := testing.AllocsPerRun(100, func() { v3 = AppendV3(v3[:0], V3Header{Type: V3Req, Seq: 9}, payload) }); n != 0 {
		t.Errorf("AppendV3: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Parse(dst, 0) }); n != 0 {
		t.Errorf("Parse: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Parse(dst[:5], 0) }); n != 0 {
		t.Errorf("Parse error path: %v allocs, want 0", n)
	}
}

func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 2048)
	dst := make([]byte, 0, MinLen+len(payload))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		dst = Append(dst[:0], Header{Type: Data, Seq: 1}, payload)
	}
}

func BenchmarkParse(b *testing.B) {
	frame := Append(nil, Header{Type: Data, Seq: 1}, make([]byte, 2048))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(frame, 0); err != nil {
			b.Fatal(err)
		}
	}
}
