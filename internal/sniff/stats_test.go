package sniff

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/uartproxy/uartproxy/internal/capture"
	"github.com/uartproxy/uartproxy/internal/frame"
)

func TestStats(t *testing.T) {
	t0 := time.Unix(100, 0)
	var s Stats
	add := func(ev Event) { s.Add(&ev) }
	s.AddBytes(capture.HostToDevice, t0, 1000)
	s.AddBytes(capture.DeviceToHost, t0.Add(2*time.Second), 500)
	data := func(retx bool) Event {
		return Event{Time: t0.Add(time.Second), Dir: capture.HostToDevice, Kind: KindFrame, Version: 4,
			Header: frame.Header{Type: frame.Data}, Retransmit: retx}
	}
	add(data(false))
	add(data(false))
	add(data(true))
	add(Event{Dir: capture.HostToDevice, Kind: KindFrame, Version: 4, Header: frame.Header{Type: frame.Ack}, BadEscapes: 2})
	add(Event{Dir: capture.HostToDevice, Kind: KindRejected, Reason: "crc"})
	add(Event{Dir: capture.HostToDevice, Kind: KindRejected, Reason: "short"})
	add(Event{Dir: capture.DeviceToHost, Kind: KindNoise, Reason: ReasonNoise, FrameLen: 7})
	add(Event{Dir: capture.DeviceToHost, Kind: KindNoise, Reason: ReasonPartial, FrameLen: 3})
	add(Event{Dir: capture.DeviceToHost, Kind: KindTooLong})
	add(Event{Dir: capture.DeviceToHost, Kind: KindFrame, Version: 3, Type: "ACK"})

	first, last := s.Span()
	if !first.Equal(t0) || !last.Equal(t0.Add(2*time.Second)) {
		t.Errorf("span %v..%v", first, last)
	}
	sum := s.Summary("summary", 0)
	if sum.Seconds != 2 || len(sum.Dirs) != 2 {
		t.Fatalf("summary %+v", sum)
	}
	h := sum.Dirs[0]
	want := DirSummary{Dir: "h2d", Frames: 4, FramesPerSec: 2, Bytes: 1000, BytesPerSec: 500, Rejected: 2, CRCErrors: 1,
		CRCErrorRate: 1.0 / 6, Sequenced: 3, Retransmits: 1, RetransmitRate: 1.0 / 3, BadEscapes: 2}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("h2d\n%+v\nwant\n%+v", h, want)
	}
	d := sum.Dirs[1]
	if d.Dir != "d2h" || d.Noise != 2 || d.NoiseBytes != 10 || d.Resyncs != 2 || d.TooLong != 1 || d.Sequenced != 0 || d.Frames != 1 {
		t.Errorf("d2h %+v", d)
	}

	// An interval: the difference of two snapshots.
	snap := s
	add(data(true))
	s.AddBytes(capture.HostToDevice, t0.Add(3*time.Second), 250)
	iv := s.Sub(snap)
	isum := iv.Summary("stats", 500*time.Millisecond)
	if len(isum.Dirs) != 1 || isum.Dirs[0].Frames != 1 || isum.Dirs[0].Retransmits != 1 || isum.Dirs[0].BytesPerSec != 500 || isum.Dirs[0].RetransmitRate != 1 {
		t.Errorf("interval %+v", isum)
	}
	if _, err := json.Marshal(isum); err != nil {
		t.Error(err)
	}

	// No times: no rates, and nothing NaN.
	var raw Stats
	raw.AddBytes(capture.Unknown, time.Time{}, 10)
	rs := raw.Summary("summary", 0)
	if rs.Seconds != 0 || rs.Dirs[0].BytesPerSec != 0 || math.IsNaN(rs.Dirs[0].CRCErrorRate) {
		t.Errorf("summary without times %+v", rs)
	}
	if (&Stats{}).Summary("summary", 0).Dirs == nil {
		t.Error("empty summary has nil dirs (JSON null)")
	}
}

func TestFilter(t *testing.T) {
	ev := &Event{Kind: KindFrame, Version: 4, Type: "DATA", Messages: []Msg{
		{Type: "OPEN", SID: 1, HasSID: true},
		{Type: "DATA", SID: 3, HasSID: true},
		{Type: "REQUEST"},
	}}
	ack := &Event{Kind: KindFrame, Version: 4, Type: "ACK"}
	noise := &Event{Kind: KindNoise, Reason: ReasonNoise}
	types := func(ev *Event) []string {
		if ev == nil {
			return nil
		}
		var ts []string
		for _, m := range ev.Messages {
			ts = append(ts, m.Type)
		}
		return ts
	}
	tests := []struct {
		f     Filter
		ev    *Event
		match bool
		msgs  []string
	}{
		{Filter{}, ev, true, []string{"OPEN", "DATA", "REQUEST"}},
		{Filter{Types: []string{"open"}}, ev, true, []string{"OPEN"}},
		{Filter{Types: []string{"data"}}, ev, true, []string{"OPEN", "DATA", "REQUEST"}}, // the frame type
		{Filter{Types: []string{"FIN"}}, ev, false, nil},
		{Filter{Types: []string{"ACK"}}, ack, true, nil},
		{Filter{Types: []string{"noise"}}, noise, true, nil},
		{Filter{Stream: 3, HasStream: true}, ev, true, []string{"DATA"}},
		{Filter{Stream: 5, HasStream: true}, ev, false, nil},
		{Filter{Stream: 1, HasStream: true}, ack, false, nil},
		{Filter{Stream: 1, HasStream: true, Types: []string{"request", "open"}}, ev, true, []string{"OPEN"}},
		{Filter{Errors: true}, ev, false, nil},
		{Filter{Errors: true}, noise, true, nil},
	}
	for i, tt := range tests {
		got := tt.f.Match(tt.ev)
		if (got != nil) != tt.match || (got != nil && !slices.Equal(types(got), tt.msgs)) {
			t.Errorf("%d: %+v on %s: %v %v", i, tt.f, tt.ev.Type, got != nil, types(got))
		}
	}
	if len(ev.Messages) != 3 {
		t.Error("Match changed its argument")
	}
	names := TypeNames()
	for _, n := range []string{"HELLO", "DATA", "REQ", "OPEN_OK", "EVENT", "noise"} {
		if !slices.Contains(names, n) {
			t.Errorf("TypeNames lacks %s", n)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		t.Errorf("a name listed twice: %v", names)
	}
}

func TestKindStrings(t *testing.T) {
	for k, want := range map[Kind]string{KindFrame: "frame", KindRejected: "rejected", KindNoise: "noise", KindTooLong: "slip_too_long", 9: "kind9"} {
		if k.String() != want {
			t.Errorf("%d: %s", k, k)
		}
	}
	if Features(0).String() != "none" || Features(0x203).String() != "tcp+udp+0x200" {
		t.Error("Features.String")
	}
	if Hex32(7).String() != "0x00000007" {
		t.Error("Hex32.String")
	}
}
