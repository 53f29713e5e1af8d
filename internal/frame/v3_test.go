package frame

import (
	"bytes"
	"errors"
	"testing"
)

func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		{"123456789", 0x29B1}, // CRC catalogue check value
		{"", 0xFFFF},
		{"\x00", 0xE1F0},
		{"A", 0xB915},
	}
	for _, tt := range tests {
		if got := CRC16([]byte(tt.in)); got != tt.want {
			t.Errorf("CRC16(%q) = %#04x, want %#04x", tt.in, got, tt.want)
		}
		// Any split through UpdateCRC16 gives the same result.
		for i := range len(tt.in) + 1 {
			if got := UpdateCRC16(CRC16([]byte(tt.in[:i])), []byte(tt.in[i:])); got != tt.want {
				t.Errorf("UpdateCRC16 split at %d of %q = %#04x, want %#04x", i, tt.in, got, tt.want)
			}
		}
	}
}

// crc16Bitwise is the textbook bit-at-a-time CRC-16/CCITT-FALSE, as a reference.
func crc16Bitwise(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRC16MatchesBitwise(t *testing.T) {
	data := make([]byte, 512)
	for i := range data {
		data[i] = byte(i*131 + 7)
	}
	for n := range len(data) {
		if got, want := CRC16(data[:n]), crc16Bitwise(data[:n]); got != want {
			t.Fatalf("CRC16(%d bytes) = %#04x, want %#04x", n, got, want)
		}
	}
}

func TestAppendV3Literal(t *testing.T) {
	// ACK seq 1: 03 03 0100 0000, CRC-16 over those 6 bytes, little-endian.
	got := AppendV3(nil, V3Header{Type: V3Ack, Seq: 1}, nil)
	crc := CRC16([]byte("\x03\x03\x01\x00\x00\x00"))
	want := "\x03\x03\x01\x00\x00\x00" + string([]byte{byte(crc), byte(crc >> 8)})
	if string(got) != want {
		t.Errorf("AppendV3(ACK 1) = %q, want %q", got, want)
	}
	// The CRC field sits between the header and the payload it covers.
	got = AppendV3(nil, V3Header{Type: V3Req, Seq: 0x0201}, []byte("\xa0"))
	crc = CRC16([]byte("\x03\x01\x01\x02\x01\x00\xa0"))
	want = "\x03\x01\x01\x02\x01\x00" + string([]byte{byte(crc), byte(crc >> 8)}) + "\xa0"
	if string(got) != want {
		t.Errorf("AppendV3(REQ) = %q, want %q", got, want)
	}
}

func TestParseV3RoundTrip(t *testing.T) {
	for _, h := range []V3Header{{V3Req, 1}, {V3Resp, 0xFFFF}, {V3Ack, 0}} {
		for _, n := range []int{0, 1, 300, 8192 - V3HeaderLen} {
			payload := bytes.Repeat([]byte{0xDB}, n)
			b := AppendV3(nil, h, payload)
			gh, gp, err := ParseV3(b)
			if err != nil {
				t.Fatalf("ParseV3(AppendV3(%+v, %d bytes)): %v", h, n, err)
			}
			if gh != h || !bytes.Equal(gp, payload) {
				t.Errorf("ParseV3 = %+v %d bytes, want %+v %d bytes", gh, len(gp), h, n)
			}
		}
	}
}

func TestParseV3Errors(t *testing.T) {
	good := AppendV3(nil, V3Header{Type: V3Req, Seq: 7}, []byte("\xa1\x61a\x01"))
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x80
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrShort},
		{"version_only", []byte{V3Version}, ErrShort},
		{"7_bytes", good[:7], ErrShort},
		{"native", Append(nil, Header{Type: Ack}, nil), ErrBadVersion},
		{"version_first", []byte{Version, 2, 3}, ErrBadVersion},
		{"truncated", good[:len(good)-1], ErrBadLength},
		{"trailing", append(bytes.Clone(good), 0), ErrBadLength},
		{"plen_huge", []byte("\x03\x01\x00\x00\xff\xff\x00\x00"), ErrBadLength},
		{"crc_field", flip(6), ErrCRC},
		{"crc_header", flip(2), ErrCRC},
		{"crc_payload", flip(len(good) - 1), ErrCRC},
		{"crc_before_type", func() []byte { b := AppendV3(nil, V3Header{Type: 9}, nil); b[7] ^= 1; return b }(), ErrCRC},
		{"type_0", AppendV3(nil, V3Header{Type: 0}, nil), ErrBadType},
		{"type_4", AppendV3(nil, V3Header{Type: 4}, nil), ErrBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p, err := ParseV3(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseV3(%x) error = %v, want %v", tt.in, err, tt.want)
			}
			if h != (V3Header{}) || p != nil {
				t.Errorf("ParseV3 returned %+v %x with an error", h, p)
			}
		})
	}
}

func TestAppendV3PanicsOnHugePayload(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendV3 with a 65536-byte payload did not panic")
		}
	}()
	AppendV3(nil, V3Header{Type: V3Req}, make([]byte, V3MaxPayloadLen+1))
}

func TestV3TypeString(t *testing.T) {
	tests := []struct {
		t    V3Type
		want string
	}{
		{V3Req, "REQ"}, {V3Resp, "RESP"}, {V3Ack, "ACK"}, {0, "V3Type(0)"}, {200, "V3Type(200)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("V3Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}

func BenchmarkCRC16(b *testing.B) {
	data := make([]byte, 2048)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		CRC16(data)
	}
}
