package namespace

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// DefaultResolveCacheSize is Config.ResolveCacheSize's default: the entries
// of HopsFS's resolving cache.
const DefaultResolveCacheSize = 100_000

// rcKey names one path component: a name in a directory.
type rcKey struct {
	parent int64
	name   string
}

type rcEntry struct {
	key rcKey
	id  int64
}

// resolveCache is HopsFS's resolving cache: (parent id, name) -> inode id,
// least recently used entries evicted first. It is a hint only: resolve
// validates every entry against the rows it reads in its transaction, so a
// stale entry (the inode renamed or deleted, possibly through another
// namenode) costs a fallback to step-by-step resolution, never a wrong
// answer, and no invalidation between namenodes is needed. A nil
// *resolveCache is a disabled cache. Safe for concurrent use.
type resolveCache struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *rcEntry, most recent at the front
	byKey map[rcKey]*list.Element
	byID  map[int64]*list.Element

	hits, misses, stale atomic.Int64
}

// newResolveCache returns a cache of at most size entries (nil when size
// is 0 or less: disabled).
func newResolveCache(size int) *resolveCache {
	if size <= 0 {
		return nil
	}
	return &resolveCache{max: size, lru: list.New(), byKey: map[rcKey]*list.Element{}, byID: map[int64]*list.Element{}}
}

// get returns the cached id of name in parent.
func (c *resolveCache) get(parent int64, name string) (int64, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[rcKey{parent, name}]
	if !ok {
		return 0, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*rcEntry).id, true
}

// put records that name in parent is inode id.
func (c *resolveCache) put(parent int64, name string, id int64) {
	if c == nil {
		return
	}
	k := rcKey{parent, name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[k]; ok {
		ent := e.Value.(*rcEntry)
		if ent.id == id {
			c.lru.MoveToFront(e)
			return
		}
		c.remove(e)
	}
	if e, ok := c.byID[id]; ok { // the inode was known under another name
		c.remove(e)
	}
	e := c.lru.PushFront(&rcEntry{key: k, id: id})
	c.byKey[k] = e
	c.byID[id] = e
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

// evictKey drops the entry for name in parent.
func (c *resolveCache) evictKey(parent int64, name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[rcKey{parent, name}]; ok {
		c.remove(e)
	}
}

// evictID drops the entry of inode id (deleted or renamed).
func (c *resolveCache) evictID(id int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[id]; ok {
		c.remove(e)
	}
}

// remove unlinks e; c.mu is held.
func (c *resolveCache) remove(e *list.Element) {
	ent := c.lru.Remove(e).(*rcEntry)
	delete(c.byKey, ent.key)
	delete(c.byID, ent.id)
}

// len returns the number of entries.
func (c *resolveCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// ResolveCacheStats counts the resolving cache's work since the namespace
// was made: Hits are path components validated from the cache, Misses
// components resolved step by step, Stale cached entries found wrong (and
// evicted) by validation.
type ResolveCacheStats struct {
	Entries             int
	Hits, Misses, Stale int64
}

// ResolveCacheStats returns the resolving cache's counters (zeros when the
// cache is disabled).
func (ns *Namespace) ResolveCacheStats() ResolveCacheStats {
	c := ns.rcache
	if c == nil {
		return ResolveCacheStats{}
	}
	return ResolveCacheStats{Entries: c.len(), Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load()}
}
