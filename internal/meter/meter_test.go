package meter

import (
	"context"
	"testing"
	"time"
)

// at builds a meter from explicit samples, so the arithmetic is exact.
func at(base time.Time, pts ...[2]int64) *Meter {
	m := &Meter{}
	for _, p := range pts {
		m.samples = append(m.samples, sample{base.Add(time.Duration(p[0]) * time.Millisecond), p[1]})
		m.total = p[1]
	}
	return m
}

func TestRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int64) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// 1000 bytes every 100 ms from 0 to 1000 ms.
	var pts [][2]int64
	for i := int64(0); i <= 10; i++ {
		pts = append(pts, [2]int64{i * 100, i * 1000})
	}
	m := at(t0, pts...)
	// Between arrivals: 150..950 ms holds arrivals at 200 and 900: 7000 in 0.7 s.
	if n, r := m.Rate(ms(150), ms(950), Steady); n != 7000 || r != 10000 {
		t.Fatalf("steady: %d bytes, %v B/s", n, r)
	}
	// A strict maxEdge falls back to growth over the window: 8000 in 0.8 s.
	if n, r := m.Rate(ms(150), ms(950), 10*time.Millisecond); n != 8000 || r != 10000 {
		t.Fatalf("edges: %d bytes, %v B/s", n, r)
	}
	// A stall: one arrival late in the window is not the window's rate.
	s := at(t0, [2]int64{0, 0}, [2]int64{900, 500}, [2]int64{950, 1000})
	// Window 100..1000 ms: nothing arrives for 800 ms after it opens.
	if n, r := s.Rate(ms(100), ms(1000), 100*time.Millisecond); n != 1000 || r < 1111 || r > 1112 {
		t.Fatalf("stall: %d bytes, %v B/s", n, r)
	}
	if g := m.Growth(ms(50), ms(450)); g != 4000 {
		t.Fatalf("growth %d", g)
	}
	if g := (&Meter{}).Growth(ms(0), ms(1)); g != 0 {
		t.Fatalf("empty growth %d", g)
	}
}

func TestAddSetPoll(t *testing.T) {
	var m Meter
	m.Add(10)
	m.Add(5)
	m.Set(15) // unchanged: no sample
	if m.Total() != 15 || len(m.samples) != 2 {
		t.Fatalf("total %d, %d samples", m.Total(), len(m.samples))
	}
	var p Meter
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	v := int64(0)
	Poll(ctx, &p, time.Millisecond, func() int64 { v += 3; return v })
	if p.Total() < 3 {
		t.Fatalf("poll total %d", p.Total())
	}
}

func TestRateCases(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steady := func() *Meter {
		m := &Meter{}
		for ms := 5; ms < 1000; ms += 10 { // 100 bytes every 10 ms
			m.samples = append(m.samples, sample{at(ms), int64(ms/10+1) * 100})
		}
		return m
	}
	tests := []struct {
		name     string
		m        *Meter
		from, to time.Time
		n        int64
		bps      float64
	}{
		// From the first arrival (105 ms) to the last (995 ms): 89 steps.
		{"steady", steady(), at(100), at(1000), 8900, 10000},
		{"nothing", &Meter{}, at(0), at(1000), 0, 0},
		// One arrival: the counter's growth over the window.
		{"one arrival", &Meter{samples: []sample{{at(-5), 100}, {at(500), 300}}}, at(0), at(1000), 200, 200},
		// Two arrivals close together after a long stall: not 100 bytes
		// in 10 ms, but 200 bytes in the second.
		{"after a stall", &Meter{samples: []sample{{at(-5), 100}, {at(980), 200}, {at(990), 300}}}, at(0), at(1000), 200, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, bps := tt.m.Rate(tt.from, tt.to, 20*time.Millisecond)
			if n != tt.n || bps < tt.bps*0.999 || bps > tt.bps*1.001 {
				t.Errorf("rate = %d bytes, %v B/s; want %d, %v", n, bps, tt.n, tt.bps)
			}
		})
	}
}
