package frame

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics and that every frame it accepts
// is reproduced byte for byte by Append.
func FuzzParse(f *testing.F) {
	f.Add(Append(nil, Header{Type: Ack, Ack: 5}, nil), uint16(0))
	f.Add(Append(nil, Header{Type: Data, Flags: FlagAckReq, Seq: 7}, []byte("\x83\x04\x01\x45hello")), uint16(256))
	f.Add(Append(nil, Header{Type: Hello}, []byte{0xa0}), uint16(2048))
	f.Add([]byte("\x04\x02"), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, max uint16) {
		h, p, err := Parse(b, int(max))
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		limit := int(max)
		if limit < 1 || limit > MaxPayloadLimit {
			limit = MaxPayloadLimit
		}
		if len(p) > limit {
			t.Fatalf("payload %d > max %d", len(p), limit)
		}
		if enc := Append(nil, h, p); !bytes.Equal(enc, b) {
			t.Fatalf("Append(Parse(%x)) = %x", b, enc)
		}
	})
}

// FuzzParseV3 checks that ParseV3 never panics and that every frame it
// accepts is reproduced byte for byte by AppendV3.
func FuzzParseV3(f *testing.F) {
	f.Add(AppendV3(nil, V3Header{Type: V3Req, Seq: 1}, []byte("\xa2\x62op\x64ping\x64args\xa0")))
	f.Add(AppendV3(nil, V3Header{Type: V3Ack, Seq: 0xFFFF}, nil))
	f.Add([]byte("\x03\x01\x00\x00\xff\xff\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseV3(b)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if enc := AppendV3(nil, h, p); !bytes.Equal(enc, b) {
			t.Fatalf("AppendV3(ParseV3(%x)) = %x", b, enc)
		}
	})
}
