package dnsproxy

import (
	"sync"
	"time"
)

// Handle answers pkt the way the server answers a packet read from UDP
// (tcp false) or TCP, but synchronously; nil means no reply (dropped).
func (s *Server) Handle(pkt []byte, tcp bool) []byte {
	reply, q, drop := s.begin(pkt, tcp, time.Now())
	if drop != dropNone {
		s.stats.drops[drop].Add(1)
		return nil
	}
	if reply != nil {
		return reply
	}
	var (
		wg  sync.WaitGroup
		out []byte
	)
	s.dispatch(q, &wg, func(b []byte) { out = b })
	wg.Wait()
	return out
}
