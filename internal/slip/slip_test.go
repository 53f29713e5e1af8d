package slip

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestAppendEncode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "\xc0\xc0"},
		{"plain", "abc", "\xc0abc\xc0"},
		{"end", "\xc0", "\xc0\xdb\xdc\xc0"},
		{"esc", "\xdb", "\xc0\xdb\xdd\xc0"},
		{"lookalikes", "\xdc\xdd", "\xc0\xdc\xdd\xc0"},
		{"mixed", "a\xc0b\xdbc", "\xc0a\xdb\xdcb\xdb\xddc\xc0"},
		{"runs", "\xc0\xc0\xdb\xdb", "\xc0\xdb\xdc\xdb\xdc\xdb\xdd\xdb\xdd\xc0"},
		{"esc_before_end", "\xdb\xc0", "\xc0\xdb\xdd\xdb\xdc\xc0"},
		{"at_edges", "\xc0xyz\xdb", "\xc0\xdb\xdcxyz\xdb\xdd\xc0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendEncode(nil, []byte(tt.in))
			if string(got) != tt.want {
				t.Errorf("AppendEncode(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if n := EncodedLen([]byte(tt.in)); n != len(tt.want) {
				t.Errorf("EncodedLen(%q) = %d, want %d", tt.in, n, len(tt.want))
			}
			// Appending keeps what dst already holds.
			got = AppendEncode([]byte("prefix"), []byte(tt.in))
			if string(got) != "prefix"+tt.want {
				t.Errorf("AppendEncode(prefix, %q) = %q", tt.in, got)
			}
		})
	}
}

// naiveEncode is the byte-at-a-time encoder of RFC 1055, as a reference.
func naiveEncode(p []byte) []byte {
	out := []byte{End}
	for _, c := range p {
		switch c {
		case End:
			out = append(out, Esc, EscEnd)
		case Esc:
			out = append(out, Esc, EscEsc)
		default:
			out = append(out, c)
		}
	}
	return append(out, End)
}

func TestAppendEncodeMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{End, Esc, EscEnd, EscEsc, 0x00, 'x'}
	for i := range 2000 {
		p := make([]byte, r.IntN(64))
		for j := range p {
			if i%2 == 0 {
				p[j] = alphabet[r.IntN(len(alphabet))]
			} else {
				p[j] = byte(r.Uint32())
			}
		}
		if got, want := AppendEncode(nil, p), naiveEncode(p); !bytes.Equal(got, want) {
			t.Fatalf("AppendEncode(%x) = %x, want %x", p, got, want)
		}
	}
}

func TestAppendEncodeNoAlloc(t *testing.T) {
	p := []byte("hello \xc0 world \xdb")
	dst := make([]byte, 0, EncodedLen(p))
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendEncode(dst[:0], p)
	})
	if allocs != 0 {
		t.Errorf("AppendEncode with capacity: %v allocs, want 0", allocs)
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var frames [][]byte
	var stream []byte
	for range 200 {
		p := make([]byte, 1+r.IntN(300))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		frames = append(frames, p)
		stream = AppendEncode(stream, p)
	}
	d := NewDecoder(300)
	var got [][]byte
	emit := func(f []byte) { got = append(got, bytes.Clone(f)) }
	// Feed in chunks of varying size so frames and escapes span calls.
	for len(stream) > 0 {
		n := min(len(stream), 1+r.IntN(40))
		d.Feed(stream[:n], emit, func(reason string) { t.Errorf("drop %q", reason) })
		stream = stream[n:]
	}
	if len(got) != len(frames) {
		t.Fatalf("got %d frames, want %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d = %x, want %x", i, got[i], frames[i])
		}
	}
	if s := d.Stats(); s.Frames != uint64(len(frames)) || s.TooLong != 0 || s.BadEscape != 0 {
		t.Errorf("Stats() = %+v", s)
	}
}

func benchPayload(n int, specials bool) []byte {
	r := rand.New(rand.NewPCG(5, 6))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
		if !specials && (p[i] == End || p[i] == Esc) {
			p[i] = 'x'
		}
	}
	return p
}

func BenchmarkAppendEncode(b *testing.B) {
	for _, bc := range []struct {
		name     string
		specials bool
	}{{"plain", false}, {"random", true}} {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPayload(2048, bc.specials)
			dst := make([]byte, 0, EncodedLen(p))
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendEncode(dst[:0], p)
			}
		})
	}
}

func BenchmarkDecoder(b *testing.B) {
	for _, bc := range []struct {
		name     string
		specials bool
	}{{"plain", false}, {"random", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var stream []byte
			for range 32 {
				stream = AppendEncode(stream, benchPayload(2048, bc.specials))
			}
			d := NewDecoder(8206)
			frames := 0
			emit := func([]byte) { frames++ }
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				// Serial reads arrive in pieces; 4 KiB is a typical read size.
				for p := stream; len(p) > 0; {
					n := min(len(p), 4096)
					d.Feed(p[:n], emit, nil)
					p = p[n:]
				}
			}
			if frames == 0 {
				b.Fatal("no frames decoded")
			}
		})
	}
}
