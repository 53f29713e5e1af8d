package slip

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// slipVector is one entry of testdata/vectors/slip.json (see its README.md).
type slipVector struct {
	Name       string   `json:"name"`
	Meaning    string   `json:"meaning"`
	Max        int      `json:"max"`
	InputHex   string   `json:"input_hex"`
	FramesHex  []string `json:"frames_hex"`
	Drops      []string `json:"drops"`
	BadEscapes uint64   `json:"bad_escapes"`
	Canonical  bool     `json:"canonical"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestVectors(t *testing.T) {
	data, err := os.ReadFile("../../testdata/vectors/slip.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []slipVector
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			in := unhex(t, v.InputHex)
			want := make([][]byte, len(v.FramesHex))
			for i, h := range v.FramesHex {
				want[i] = unhex(t, h)
			}

			d := NewDecoder(v.Max)
			var got [][]byte
			var drops []string
			d.Feed(in, func(f []byte) { got = append(got, bytes.Clone(f)) }, func(r string) { drops = append(drops, r) })
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Errorf("%s\ndecode(%x) = %x, want %x", v.Meaning, in, got, want)
			}
			if !slices.Equal(drops, v.Drops) {
				t.Errorf("drops = %q, want %q", drops, v.Drops)
			}
			if s := d.Stats(); s.BadEscape != v.BadEscapes {
				t.Errorf("BadEscape = %d, want %d", s.BadEscape, v.BadEscapes)
			}

			if v.Canonical {
				var enc []byte
				for _, f := range want {
					enc = AppendEncode(enc, f)
				}
				if !bytes.Equal(enc, in) {
					t.Errorf("%s\nencode = %x, want %x", v.Meaning, enc, in)
				}
			}
		})
	}
}
