package benchrun

import (
	"context"
	"slices"
	"sync"
	"time"
)

// sample is a byte counter's value right after it changed.
type sample struct {
	t time.Time
	v int64
}

// meter records when a byte counter moves. Data arrives a frame at a time,
// so a rate taken between two arrivals, rather than between two arbitrary
// instants, carries no frame of quantization: at 921600 baud one frame is
// 1.5 % of a 1.5 s window.
type meter struct {
	mu      sync.Mutex
	total   int64
	samples []sample
}

// add counts n more bytes now.
func (m *meter) add(n int) {
	now := time.Now()
	m.mu.Lock()
	m.total += int64(n)
	m.samples = append(m.samples, sample{now, m.total})
	m.mu.Unlock()
}

// set records the counter's value v now, if it moved.
func (m *meter) set(v int64) {
	now := time.Now()
	m.mu.Lock()
	if v != m.total || len(m.samples) == 0 {
		m.total = v
		m.samples = append(m.samples, sample{now, v})
	}
	m.mu.Unlock()
}

// Total returns the counter's last value.
func (m *meter) Total() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// rate returns the bytes counted between from and to and their rate.
//
// In steady state it takes them between the first change at or after from
// and the last change at or before to. That span is only trusted when
// neither end of the window waited longer than maxEdge for a change: after
// a stall, a few arrivals close together would otherwise pass for the
// rate of the whole window. Then, and when fewer than two changes fall in
// the window, it is the growth of the counter over the whole window.
func (m *meter) rate(from, to time.Time, maxEdge time.Duration) (int64, float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cmp := func(s sample, t time.Time) int { return s.t.Compare(t) }
	i, _ := slices.BinarySearchFunc(m.samples, from, cmp)
	j, found := slices.BinarySearchFunc(m.samples, to, cmp)
	if !found {
		j--
	}
	if i < len(m.samples) && j > i {
		a, z := m.samples[i], m.samples[j]
		if a.t.Sub(from) <= maxEdge && to.Sub(z.t) <= maxEdge {
			return z.v - a.v, float64(z.v-a.v) / z.t.Sub(a.t).Seconds()
		}
	}
	// The last value known at from and at to.
	at := func(k int) int64 {
		if k < 0 {
			return 0
		}
		return m.samples[k].v
	}
	before := i - 1 // the last change before from
	if i < len(m.samples) && m.samples[i].t.Equal(from) {
		before = i
	}
	n := at(j) - at(before)
	return n, float64(n) / to.Sub(from).Seconds()
}

// poll samples f into m every pollEvery until ctx ends.
func poll(ctx context.Context, m *meter, f func() int64) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		m.set(f())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
