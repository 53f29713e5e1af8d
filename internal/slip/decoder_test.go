package slip

import (
	"bytes"
	"slices"
	"testing"
)

// decodeAll feeds chunks to a new Decoder and returns the frames, the drop
// reasons and the final stats.
func decodeAll(t *testing.T, max int, chunks ...string) (frames []string, drops []string, s Stats) {
	t.Helper()
	d := NewDecoder(max)
	for _, c := range chunks {
		d.Feed([]byte(c),
			func(f []byte) {
				if len(f) == 0 || len(f) > max {
					t.Errorf("emitted frame of %d bytes, max %d", len(f), max)
				}
				frames = append(frames, string(f))
			},
			func(reason string) { drops = append(drops, reason) })
	}
	return frames, drops, d.Stats()
}

func TestDecoder(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		chunks    []string
		want      []string
		drops     []string
		badEscape uint64
	}{
		{name: "single", max: 16, chunks: []string{"\xc0abc\xc0"}, want: []string{"abc"}},
		{name: "escapes", max: 16, chunks: []string{"\xc0\xdb\xdc\xdb\xdd\xc0"}, want: []string{"\xc0\xdb"}},
		{name: "empty_frames", max: 16, chunks: []string{"\xc0\xc0\xc0a\xc0\xc0\xc0"}, want: []string{"a"}},
		{name: "no_leading_end", max: 16, chunks: []string{"ab\xc0"}, want: []string{"ab"}},
		{name: "unterminated", max: 16, chunks: []string{"\xc0ab"}},
		{name: "garbage_then_frame", max: 16, chunks: []string{"\x55\xaa\xc0frame\xc0"}, want: []string{"\x55\xaa", "frame"}},
		{name: "two_frames", max: 16, chunks: []string{"\xc0a\xc0\xc0b\xc0"}, want: []string{"a", "b"}},
		{name: "split_everywhere", max: 16, chunks: []string{"\xc0", "a", "\xdb", "\xdc", "b", "\xdb", "\xdd", "\xc0"}, want: []string{"a\xc0b\xdb"}},
		{name: "split_after_esc", max: 16, chunks: []string{"\xc0x\xdb", "\xdcy\xc0"}, want: []string{"x\xc0y"}},
		{name: "exactly_max", max: 3, chunks: []string{"\xc0abc\xc0"}, want: []string{"abc"}},
		{name: "too_long", max: 3, chunks: []string{"\xc0abcd\xc0\xc0ok\xc0"}, want: []string{"ok"}, drops: []string{"too_long"}},
		{name: "too_long_reported_once", max: 3, chunks: []string{"\xc0abcd", "efgh", "ijk\xdb\xdc", "\xc0ok\xc0"}, want: []string{"ok"}, drops: []string{"too_long"}},
		{name: "too_long_twice", max: 2, chunks: []string{"abc\xc0def\xc0gh\xc0"}, want: []string{"gh"}, drops: []string{"too_long", "too_long"}},
		{name: "too_long_by_escape", max: 2, chunks: []string{"\xc0ab\xdb\xdc\xc0"}, drops: []string{"too_long"}},
		{name: "escapes_count_once", max: 2, chunks: []string{"\xc0\xdb\xdc\xdb\xdd\xc0"}, want: []string{"\xc0\xdb"}},
		{name: "bad_escape", max: 16, chunks: []string{"\xc0a\xdbAb\xc0"}, want: []string{"aAb"}, badEscape: 1},
		// ESC ESC: the second ESC is yielded as data, so the DD after it is plain.
		{name: "esc_esc", max: 16, chunks: []string{"\xc0\xdb\xdb\xdd\xc0"}, want: []string{"\xdb\xdd"}, badEscape: 1},
		{name: "esc_then_end", max: 16, chunks: []string{"\xc0ab\xdb\xc0c\xc0"}, want: []string{"ab", "c"}, badEscape: 1},
		{name: "esc_then_end_split", max: 16, chunks: []string{"\xc0ab\xdb", "\xc0c\xc0"}, want: []string{"ab", "c"}, badEscape: 1},
		{name: "lone_esc", max: 16, chunks: []string{"\xdb\xc0"}, badEscape: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, drops, s := decodeAll(t, tt.max, tt.chunks...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("frames = %q, want %q", got, tt.want)
			}
			if !slices.Equal(drops, tt.drops) {
				t.Errorf("drops = %q, want %q", drops, tt.drops)
			}
			if s.BadEscape != tt.badEscape {
				t.Errorf("BadEscape = %d, want %d", s.BadEscape, tt.badEscape)
			}
			if s.Frames != uint64(len(tt.want)) || s.TooLong != uint64(len(tt.drops)) {
				t.Errorf("Stats() = %+v", s)
			}
			var n uint64
			for _, f := range tt.want {
				n += uint64(len(f))
			}
			if s.Bytes != n {
				t.Errorf("Bytes = %d, want %d", s.Bytes, n)
			}
			// The result must not depend on how the stream is cut.
			stream := join(tt.chunks)
			var bytewise []string
			for i := range len(stream) {
				bytewise = append(bytewise, stream[i:i+1])
			}
			if got2, drops2, _ := decodeAll(t, tt.max, bytewise...); !slices.Equal(got2, got) || !slices.Equal(drops2, drops) {
				t.Errorf("byte by byte: frames %q drops %q, want %q %q", got2, drops2, got, drops)
			}
		})
	}
}

func join(chunks []string) string {
	var b bytes.Buffer
	for _, c := range chunks {
		b.WriteString(c)
	}
	return b.String()
}

func TestDecoderNilDrop(t *testing.T) {
	d := NewDecoder(2)
	var got []string
	d.Feed([]byte("\xc0abc\xc0xy\xc0"), func(f []byte) { got = append(got, string(f)) }, nil)
	if !slices.Equal(got, []string{"xy"}) {
		t.Errorf("frames = %q", got)
	}
	if d.Stats().TooLong != 1 {
		t.Errorf("TooLong = %d, want 1", d.Stats().TooLong)
	}
}

func TestDecoderReset(t *testing.T) {
	d := NewDecoder(4)
	var got []string
	emit := func(f []byte) { got = append(got, string(f)) }
	d.Feed([]byte("\xc0ab\xc0\xc0partial\xdb"), emit, nil) // too long, discarding, and an Esc pending
	d.Reset()
	d.Feed([]byte("\xdcd\xc0"), emit, nil)
	if !slices.Equal(got, []string{"ab", "\xdcd"}) {
		t.Errorf("frames = %q", got)
	}
	if s := d.Stats(); s.Frames != 2 || s.TooLong != 1 {
		t.Errorf("Reset must keep stats: %+v", s)
	}
}

func TestDecoderEmitSliceReused(t *testing.T) {
	// The emitted slice belongs to the Decoder; a caller that keeps it sees
	// it change. This documents the contract rather than promising it.
	d := NewDecoder(8)
	var kept [][]byte
	d.Feed([]byte("\xc0aa\xc0\xc0bb\xc0"), func(f []byte) { kept = append(kept, f) }, nil)
	if len(kept) != 2 || string(kept[1]) != "bb" {
		t.Fatalf("kept = %q", kept)
	}
}

func TestNewDecoderPanicsOnBadMax(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewDecoder(0) did not panic")
		}
	}()
	NewDecoder(0)
}

func TestDecoderNoAlloc(t *testing.T) {
	stream := AppendEncode(nil, bytes.Repeat([]byte("payload\xc0\xdb"), 100))
	d := NewDecoder(len(stream))
	emit := func([]byte) {}
	d.Feed(stream, emit, nil) // grow the buffer once
	allocs := testing.AllocsPerRun(100, func() {
		d.Feed(stream, emit, nil)
	})
	if allocs != 0 {
		t.Errorf("Feed: %v allocs, want 0", allocs)
	}
}
