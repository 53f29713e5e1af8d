// Package meter measures the rate of a byte counter over a time window, as
// the goodput figures of `uartproxy bench` and the Go benchmarks need.
//
// Data crosses a UART a frame at a time, so a rate taken between two
// arrivals, rather than between two arbitrary instants, carries no frame
// of quantization: at 921600 baud one frame is 1.5 % of a 1.5 s window.
//
// Concurrency: a Meter is safe for concurrent use.
package meter

import (
	"context"
	"slices"
	"sync"
	"time"
)

// sample is the counter's value right after it changed.
type sample struct {
	t time.Time
	v int64
}

// Meter records when a byte counter moves. The zero value is ready.
type Meter struct {
	mu      sync.Mutex
	total   int64
	samples []sample
}

// Add counts n more bytes now.
func (m *Meter) Add(n int) {
	now := time.Now()
	m.mu.Lock()
	m.total += int64(n)
	m.samples = append(m.samples, sample{now, m.total})
	m.mu.Unlock()
}

// Set records the counter's value v now, if it moved (or is the first).
func (m *Meter) Set(v int64) {
	now := time.Now()
	m.mu.Lock()
	if v != m.total || len(m.samples) == 0 {
		m.total = v
		m.samples = append(m.samples, sample{now, v})
	}
	m.mu.Unlock()
}

// Total returns the counter's last value.
func (m *Meter) Total() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// Steady is the maxEdge of Rate that trusts any span between arrivals.
const Steady = time.Duration(1<<63 - 1)

// Rate returns the bytes counted between from and to and their rate.
//
// In steady state it takes them between the first change at or after from
// and the last change at or before to. That span is only trusted when
// neither end of the window waited longer than maxEdge for a change: after
// a stall, a few arrivals close together would otherwise pass for the rate
// of the whole window. Then, and when fewer than two changes fall in the
// window, it is the growth of the counter over the whole window.
func (m *Meter) Rate(from, to time.Time, maxEdge time.Duration) (int64, float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, j := m.span(from, to)
	if i < len(m.samples) && j > i {
		a, z := m.samples[i], m.samples[j]
		if a.t.Sub(from) <= maxEdge && to.Sub(z.t) <= maxEdge {
			return z.v - a.v, float64(z.v-a.v) / z.t.Sub(a.t).Seconds()
		}
	}
	n := m.growthLocked(from, to)
	return n, float64(n) / to.Sub(from).Seconds()
}

// Growth returns how much the counter grew between from and to, from the
// last value known at each instant (for shares, where a frame more or
// less is part of the answer).
func (m *Meter) Growth(from, to time.Time) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.growthLocked(from, to)
}

// span returns the first sample at or after from and the last at or
// before to.
func (m *Meter) span(from, to time.Time) (int, int) {
	cmp := func(s sample, t time.Time) int { return s.t.Compare(t) }
	i, _ := slices.BinarySearchFunc(m.samples, from, cmp)
	j, found := slices.BinarySearchFunc(m.samples, to, cmp)
	if !found {
		j--
	}
	return i, j
}

func (m *Meter) growthLocked(from, to time.Time) int64 {
	return m.atLocked(to) - m.atLocked(from)
}

// atLocked is the counter's last value known at t.
func (m *Meter) atLocked(t time.Time) int64 {
	i, found := slices.BinarySearchFunc(m.samples, t, func(s sample, t time.Time) int { return s.t.Compare(t) })
	if found {
		return m.samples[i].v
	}
	if i == 0 {
		return 0
	}
	return m.samples[i-1].v
}

// Poll samples f into m every interval until ctx ends.
func Poll(ctx context.Context, m *Meter, interval time.Duration, f func() int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.Set(f())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
