package dnsproxy

import (
	"container/list"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// key names one cached answer: the question name in lower case with its
// trailing dot, and the question type (A or AAAA).
type key struct {
	name  string
	qtype dnsmessage.Type
}

// entry is the outcome of resolving a key: NOERROR with addresses (none
// for a name without an address of that family), NXDOMAIN or SERVFAIL.
// SERVFAIL is never cached.
type entry struct {
	rcode   dnsmessage.RCode
	addrs   []netip.Addr
	expires time.Time
}

// cache is a fixed-size LRU of entries that expire. It is not safe for
// concurrent use; the Server guards it with its mutex.
type cache struct {
	size  int
	order *list.List // of *cacheItem, most recently used first
	items map[key]*list.Element
}

type cacheItem struct {
	k key
	e entry
}

func newCache(size int) *cache {
	return &cache{size: size, order: list.New(), items: make(map[key]*list.Element)}
}

// get returns the entry for k if it has not expired at now.
func (c *cache) get(k key, now time.Time) (entry, bool) {
	el, ok := c.items[k]
	if !ok {
		return entry{}, false
	}
	it := el.Value.(*cacheItem)
	if !now.Before(it.e.expires) {
		c.order.Remove(el)
		delete(c.items, k)
		return entry{}, false
	}
	c.order.MoveToFront(el)
	return it.e, true
}

// put stores e for k, evicting the least recently used entries beyond
// the size.
func (c *cache) put(k key, e entry) {
	if el, ok := c.items[k]; ok {
		el.Value.(*cacheItem).e = e
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&cacheItem{k: k, e: e})
	for c.order.Len() > c.size {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.items, el.Value.(*cacheItem).k)
	}
}
