package dnmanager

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"

	"github.com/kura-dev/kura/dfs/namespace"
)

// candidate is a datanode placement may choose.
type candidate struct {
	storageID, addr string
	weight          int64
	local           bool
}

// ChooseTargets chooses up to req.Replication live datanodes for a new
// block (namespace.Placement; the policy is in the package documentation).
// It reads only the in-memory view and has no side effects.
func (m *Manager) ChooseTargets(_ context.Context, req namespace.PlacementRequest) ([]namespace.Target, error) {
	return m.choose(req.Replication, req.BlockSize, req.ClientMachine, req.Exclude), nil
}

// choose picks n targets; see ChooseTargets.
func (m *Manager) choose(n int, blockSize int64, clientMachine string, exclude []string) []namespace.Target {
	if n <= 0 {
		return nil
	}
	now := m.cfg.Clock()
	var cands []candidate
	m.mu.Lock()
	for id, nd := range m.nodes {
		if !m.liveLocked(nd, now) || slices.Contains(exclude, id) {
			continue
		}
		if nd.usageKnown && nd.st.Remaining < blockSize {
			continue
		}
		cands = append(cands, candidate{
			storageID: id, addr: nd.st.DataAddr, weight: max(nd.st.Remaining, 1),
			local: clientMachine != "" && (nd.st.Hostname == clientMachine || hostOf(nd.st.DataAddr) == clientMachine),
		})
	}
	m.mu.Unlock()
	// Map iteration order is random but not uniform: sort, then draw.
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.storageID < b.storageID {
			return -1
		}
		if a.storageID > b.storageID {
			return 1
		}
		return 0
	})
	out := make([]namespace.Target, 0, min(n, len(cands)))
	take := func(i int) {
		out = append(out, namespace.Target{StorageID: cands[i].storageID, Addr: cands[i].addr})
		cands = slices.Delete(cands, i, i+1)
	}
	if i := slices.IndexFunc(cands, func(c candidate) bool { return c.local }); i >= 0 {
		take(i)
	}
	for len(out) < n && len(cands) > 0 {
		var total float64
		for _, c := range cands {
			total += float64(c.weight)
		}
		r := rand.Float64() * total
		i := 0
		for ; i < len(cands)-1; i++ {
			r -= float64(cands[i].weight)
			if r < 0 {
				break
			}
		}
		take(i)
	}
	return out
}

// hostOf returns the host of a host:port address (addr when it has none).
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
