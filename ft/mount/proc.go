package mount

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kura-dev/kura/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	id, parent int
	dev        uint64
	mountPoint string
	fstype     string
}

func readMountinfo() ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(data), nil
}

// parseMountinfo parses proc(5)'s mountinfo format:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(data []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 7 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		var e mountEntry
		e.id, _ = strconv.Atoi(f[0])
		e.parent, _ = strconv.Atoi(f[1])
		if maj, min, ok := strings.Cut(f[2], ":"); ok {
			a, _ := strconv.ParseUint(maj, 10, 32)
			b, _ := strconv.ParseUint(min, 10, 32)
			e.dev = unix.Mkdev(uint32(a), uint32(b))
		}
		e.mountPoint = mountinfo.Unescape(f[4])
		e.fstype = f[sep+1]
		out = append(out, e)
	}
	return out
}

// topMount returns the uppermost mount on path: the one no other mount on
// the same path is stacked on.
func topMount(mounts []mountEntry, path string) (mountEntry, bool) {
	var at []mountEntry
	for _, e := range mounts {
		if e.mountPoint == path {
			at = append(at, e)
		}
	}
	for i := len(at) - 1; i >= 0; i-- {
		covered := false
		for _, o := range at {
			if o.parent == at[i].id {
				covered = true
				break
			}
		}
		if !covered {
			return at[i], true
		}
	}
	return mountEntry{}, false
}

// tgidCache maps thread ids to thread group ids. Entries expire after
// tgidTTL, so a reused tid is resolved again.
type tgidCache struct {
	mu sync.Mutex
	m  map[uint32]tgidEntry
}

type tgidEntry struct {
	tgid uint32
	at   int64
}

const (
	tgidTTL     = int64(2 * time.Second)
	tgidMaxSize = 4096
)

// get returns the tgid of tid (0 if it can not be found). now is the
// current Unix time in ns.
func (c *tgidCache) get(tid uint32, now int64) uint32 {
	if tid == 0 {
		return 0
	}
	c.mu.Lock()
	e, ok := c.m[tid]
	c.mu.Unlock()
	if ok && now-e.at < tgidTTL {
		return e.tgid
	}
	tgid := readTgid(tid)
	c.mu.Lock()
	if len(c.m) >= tgidMaxSize {
		for k, v := range c.m {
			if now-v.at >= tgidTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= tgidMaxSize {
			clear(c.m)
		}
	}
	c.m[tid] = tgidEntry{tgid, now}
	c.mu.Unlock()
	return tgid
}

// readTgid reads the "Tgid:" line of /proc/<tid>/status.
func readTgid(tid uint32) uint32 {
	var pb [32]byte
	p := append(pb[:0], "/proc/"...)
	p = strconv.AppendUint(p, uint64(tid), 10)
	p = append(p, "/status"...)
	fd, err := unix.Open(string(p), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if k <= 0 || err != nil {
			break
		}
		n += k
	}
	b := buf[:n]
	i := bytes.Index(b, []byte("\nTgid:"))
	if i < 0 {
		return 0
	}
	b = bytes.TrimLeft(b[i+6:], " \t")
	v := uint64(0)
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + uint64(c-'0')
	}
	return uint32(v)
}
