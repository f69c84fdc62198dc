package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kura-dev/kura/dfs/dal/daltest"
	nnpkg "github.com/kura-dev/kura/dfs/namenode"
)

// status reads a namenode's GET /status.
func status(t *testing.T, n *namenode) (nnpkg.Status, error) {
	t.Helper()
	code, body, err := call("GET", strings.TrimSuffix(n.base, "/webhdfs/v1")+nnpkg.StatusPath)
	if err != nil {
		return nnpkg.Status{}, err
	}
	if code != 200 {
		t.Fatalf("%s /status: %d %s", n.name, code, body)
	}
	var st nnpkg.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("%s /status: %v: %s", n.name, err, body)
	}
	return st, nil
}

// TestLeaderFailover: two namenode processes on one PostgreSQL database
// elect the first as leader; SIGKILL it, and the second takes the lead
// once the first's counter stood still for --election-dead-after, then
// drops the dead namenode's row.
func TestLeaderFailover(t *testing.T) {
	meta := daltest.PostgresURL(t)
	fast := []string{"--election-period", "100ms", "--election-dead-after", "1s"}
	nn1 := startNamenode(t, "nn1", meta, fast...)
	nn2 := startNamenode(t, "nn2", meta, fast...)

	var id1 int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		s1, err1 := status(t, nn1)
		s2, err2 := status(t, nn2)
		if err1 == nil && err2 == nil && s1.Election.IsLeader && !s2.Election.IsLeader &&
			s2.Election.Leader == s1.Election.Self && len(s2.Election.Members) == 2 {
			id1 = s1.Election.Self
			if m := s2.Election.Members[0]; m.ID != id1 || m.HTTPAddress != s1.HTTPAddr || m.RPCAddress != s1.RPCAddr || !m.Alive {
				t.Fatalf("nn2's view of nn1: %+v, want id %d at %s / %s, alive", m, id1, s1.HTTPAddr, s1.RPCAddr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agreement on nn1 as leader: nn1 %+v (%v), nn2 %+v (%v)", s1.Election, err1, s2.Election, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := nn1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-nn1.done
	killed := time.Now()
	for {
		s2, err := status(t, nn2)
		if err != nil {
			t.Fatal(err)
		}
		if s2.Election.IsLeader && len(s2.Election.Members) == 1 {
			if took := time.Since(killed); took < time.Second {
				t.Fatalf("nn2 led %v after the kill, before the dead-after time", took)
			}
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("nn2 did not take the lead (and drop nn1's row) within 20s: %+v", s2.Election)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
