package daemon

import (
	"sync"
	"sync/atomic"
)

// gate is the global limit on concurrent client connections, shared by the
// forwards and the SOCKS5 server.
type gate struct {
	mu       sync.Mutex
	active   int64
	limit    int64
	rejected atomic.Uint64
}

// Admit takes a slot if one is free. release gives it back; calling it
// more than once is harmless.
func (g *gate) Admit() (release func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limit > 0 && g.active >= g.limit {
		g.rejected.Add(1)
		return nil, false
	}
	g.active++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.active--
			g.mu.Unlock()
		})
	}, true
}

// SetLimit changes the limit; connections above a lowered limit stay.
func (g *gate) SetLimit(n int) {
	g.mu.Lock()
	g.limit = int64(n)
	g.mu.Unlock()
}

func (g *gate) counts() (active, limit int64, rejected uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active, g.limit, g.rejected.Load()
}
