package webhdfs

import (
	"testing"
	"time"
)

// TestChooseDatanode checks the redirect's choice: fresh holders first,
// then fresh others, then stale holders, then stale others; datanodes
// without HTTP or excluded never.
func TestChooseDatanode(t *testing.T) {
	now := time.Unix(1000, 0)
	fresh, stale := now.Add(-time.Second), now.Add(-time.Minute)
	dn := func(id string, seen time.Time) DatanodeHTTP {
		return DatanodeHTTP{StorageID: id, DataAddr: id + ":9866", HTTPAddr: id + ":9864", LastSeen: seen}
	}
	noHTTP := DatanodeHTTP{StorageID: "nohttp", DataAddr: "nohttp:9866", LastSeen: fresh}
	all := []DatanodeHTTP{dn("a", fresh), dn("b", fresh), dn("c", stale), dn("d", stale), noHTTP}
	// pick reports the candidates it was offered and takes the last one.
	var offered int
	last := func(n int) int { offered = n; return n - 1 }
	for _, c := range []struct {
		name    string
		dns     []DatanodeHTTP
		held    []string
		exclude []string
		want    string // storage id, "" for none
		among   int    // candidates offered
	}{
		{"create: any fresh", all, nil, nil, "b", 2},
		{"fresh holder", all, []string{"a", "c"}, nil, "a", 1},
		{"stale holder loses to a fresh other", all, []string{"c"}, nil, "b", 2},
		{"holder without HTTP", all, []string{"nohttp"}, nil, "b", 2},
		{"excluded by HTTP and data address", all, []string{"a"}, []string{"a:9864", "b:9866"}, "d", 2},
		{"only stale: holder first", all, []string{"d"}, []string{"a:9864", "b:9864"}, "d", 1},
		{"only stale others", all, nil, []string{"a:9864", "b:9864"}, "d", 2},
		{"none left", all, nil, []string{"a:9864", "b:9864", "c:9864", "d:9864"}, "", 0},
		{"no HTTP at all", []DatanodeHTTP{noHTTP}, nil, nil, "", 0},
		{"none", nil, nil, nil, "", 0},
	} {
		held := map[string]bool{}
		for _, h := range c.held {
			held[h] = true
		}
		offered = 0
		got, ok := chooseDatanode(c.dns, held, c.exclude, now, 9*time.Second, last)
		if ok != (c.want != "") || got.StorageID != c.want || offered != c.among {
			t.Errorf("%s: got %q (ok %v) among %d, want %q among %d", c.name, got.StorageID, ok, offered, c.want, c.among)
		}
	}
}
