package slip

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzDecoder feeds arbitrary bytes, cut into arbitrary chunks, to a Decoder.
// Invariants: no panic; every frame is 1..max bytes; the frames do not depend
// on the chunking; each frame survives AppendEncode and a fresh decode.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("\xc0abc\xc0"), uint16(16), uint8(1))
	f.Add([]byte("\xc0\xdb\xdc\xdb\xdd\xc0"), uint16(2), uint8(3))
	f.Add([]byte("garbage\xc0frame\xc0"), uint16(5), uint8(0))
	f.Add([]byte("\xc0\xdb\xc0\xdbA\xc0"), uint16(8), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, max uint16, chunk uint8) {
		limit := int(max%1024) + 1
		whole := decodeFrames(data, limit, len(data)+1)
		pieces := decodeFrames(data, limit, int(chunk%17)+1)
		if !slices.EqualFunc(whole, pieces, bytes.Equal) {
			t.Fatalf("chunking changed the result: %x vs %x", whole, pieces)
		}
		for _, fr := range whole {
			if len(fr) == 0 || len(fr) > limit {
				t.Fatalf("frame of %d bytes, max %d", len(fr), limit)
			}
			again := decodeFrames(AppendEncode(nil, fr), limit, len(fr)+3)
			if len(again) != 1 || !bytes.Equal(again[0], fr) {
				t.Fatalf("round trip of %x gave %x", fr, again)
			}
		}
	})
}

// decodeFrames decodes data fed in chunks of n bytes and returns copies of
// the frames.
func decodeFrames(data []byte, max, n int) [][]byte {
	d := NewDecoder(max)
	var out [][]byte
	emit := func(f []byte) { out = append(out, bytes.Clone(f)) }
	for p := data; len(p) > 0; {
		k := min(n, len(p))
		d.Feed(p[:k], emit, nil)
		p = p[k:]
	}
	return out
}
