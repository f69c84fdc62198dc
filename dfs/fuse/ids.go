package dfsfuse

import (
	"os/user"
	"strconv"
	"sync"
	"time"
)

// Identity lookups are cached for idCacheFor; a cache that reaches
// idCacheMax entries starts afresh.
const (
	idCacheFor = time.Minute
	idCacheMax = 4096
	// nobodyID is the uid and gid of a name without a local id when the
	// system has no "nobody" user or "nogroup" group.
	nobodyID = 65534
)

// ttlCache is a small map whose entries expire.
type ttlCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

// get returns k's value, computing it with load (outside the lock) when
// missing or expired.
func (c *ttlCache[K, V]) get(k K, load func(K) V) V {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v
	}
	v := load(k)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= idCacheMax {
		c.m = make(map[K]ttlEntry[V])
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(idCacheFor)}
	c.mu.Unlock()
	return v
}

// idMapper translates between HDFS's owner and group names and local
// uids and gids, through os/user with a cache.
type idMapper struct {
	nobodyUID, nobodyGID uint32

	uids      ttlCache[string, uint32] // user name -> uid
	gids      ttlCache[string, uint32] // group name -> gid
	userNames ttlCache[uint32, string] // uid -> user name
	grpNames  ttlCache[uint32, string] // gid -> group name
}

// newIDMapper looks up the system's nobody user and nogroup group.
func newIDMapper() *idMapper {
	m := &idMapper{nobodyUID: nobodyID, nobodyGID: nobodyID}
	if u, err := user.Lookup("nobody"); err == nil {
		if id, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			m.nobodyUID = uint32(id)
		}
	}
	for _, name := range []string{"nogroup", "nobody"} {
		if g, err := user.LookupGroup(name); err == nil {
			if id, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				m.nobodyGID = uint32(id)
				break
			}
		}
	}
	return m
}

// parseID reads a decimal id; ok is false for anything else.
func parseID(s string) (uint32, bool) {
	id, err := strconv.ParseUint(s, 10, 32)
	return uint32(id), err == nil
}

// uid returns the local uid of the HDFS owner name: the local user's of
// that name, else the number the name spells, else nobody's.
func (m *idMapper) uid(name string) uint32 {
	return m.uids.get(name, func(name string) uint32 {
		if u, err := user.Lookup(name); err == nil {
			if id, ok := parseID(u.Uid); ok {
				return id
			}
		}
		if id, ok := parseID(name); ok {
			return id
		}
		return m.nobodyUID
	})
}

// gid returns the local gid of the HDFS group name, as uid does.
func (m *idMapper) gid(name string) uint32 {
	return m.gids.get(name, func(name string) uint32 {
		if g, err := user.LookupGroup(name); err == nil {
			if id, ok := parseID(g.Gid); ok {
				return id
			}
		}
		if id, ok := parseID(name); ok {
			return id
		}
		return m.nobodyGID
	})
}

// userName returns the local user name of uid, or the number itself when
// it has none.
func (m *idMapper) userName(uid uint32) string {
	return m.userNames.get(uid, func(uid uint32) string {
		s := strconv.FormatUint(uint64(uid), 10)
		if u, err := user.LookupId(s); err == nil && u.Username != "" {
			return u.Username
		}
		return s
	})
}

// groupName returns the local group name of gid, or the number itself
// when it has none.
func (m *idMapper) groupName(gid uint32) string {
	return m.grpNames.get(gid, func(gid uint32) string {
		s := strconv.FormatUint(uint64(gid), 10)
		if g, err := user.LookupGroupId(s); err == nil && g.Name != "" {
			return g.Name
		}
		return s
	})
}
