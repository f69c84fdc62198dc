package namenode

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kura-dev/kura/dfs/election"
)

// Status is the JSON body of GET /status on the namenode's HTTP port: the
// namenode's addresses and its view of the datanodes. The view is this
// namenode's own (each namenode hears from every datanode, so the views of
// several namenodes agree up to a heartbeat).
type Status struct {
	// HTTPAddr and RPCAddr are the namenode's addresses (RPCAddr "" when
	// the datanode protocol is off).
	HTTPAddr string `json:"httpAddr"`
	RPCAddr  string `json:"rpcAddr"`
	// Backend is the metadata database's backend ("sqlite", "postgres").
	Backend string `json:"backend"`
	// UptimeSeconds is the time since the namenode started.
	UptimeSeconds float64 `json:"uptimeSeconds"`
	// DeadAfterSeconds is how long without a heartbeat makes a datanode
	// dead (0 when the datanode protocol is off).
	DeadAfterSeconds float64 `json:"deadAfterSeconds"`
	// Live and Dead count the datanodes.
	Live int `json:"live"`
	Dead int `json:"dead"`
	// Datanodes lists every datanode the namenode knows, live and dead,
	// by data address.
	Datanodes []DatanodeInfo `json:"datanodes"`
	// Election is the namenode's view of the leader election.
	Election election.State `json:"election"`
	// Replication is the leader's replication check (zeros on a namenode
	// that does not lead, or without the datanode protocol).
	Replication ReplicationInfo `json:"replication"`
}

// ReplicationInfo is the replication check in Status
// (dnmanager.ReplicationStatus).
type ReplicationInfo struct {
	// UnderReplicated counts the blocks the last complete scan found with
	// fewer finalized replicas on live datanodes than their replication
	// (and at least one).
	UnderReplicated int `json:"underReplicated"`
	// Missing counts the blocks known to have no finalized replica on a
	// live datanode (HDFS's MissingBlocks): every replica is on dead
	// datanodes, or corrupt. `kura dfs fsck` names them.
	Missing int `json:"missing"`
	// Swept reports whether the leader's sweep of the datanodes that are
	// not live has ended this term: from then on Missing is complete.
	Swept bool `json:"swept"`
	// Pending counts blocks with a copy queued and still given time.
	Pending int `json:"pending"`
	// Queued counts the copies queued since the namenode started.
	Queued int64 `json:"queued"`
	// Scans counts complete scans; LastScan is when the last one ended
	// (omitted before the first).
	Scans    int64      `json:"scans"`
	LastScan *time.Time `json:"lastScan,omitempty"`
}

// DatanodeInfo is one datanode in Status.
type DatanodeInfo struct {
	StorageID string `json:"storageId"`
	DataAddr  string `json:"dataAddr"`
	HTTPAddr  string `json:"httpAddr,omitempty"`
	Hostname  string `json:"hostname"`
	Version   string `json:"version,omitempty"`
	Live      bool   `json:"live"`
	// Capacity, Used, NonDFSUsed and Remaining are bytes, from the last
	// heartbeat.
	Capacity   int64 `json:"capacity"`
	Used       int64 `json:"used"`
	NonDFSUsed int64 `json:"nonDfsUsed"`
	Remaining  int64 `json:"remaining"`
	Blocks     int64 `json:"blocks"`
	Xceivers   int32 `json:"xceivers"`
	// LastHeartbeatSeconds is the age of the last registration or
	// heartbeat.
	LastHeartbeatSeconds float64 `json:"lastHeartbeatSeconds"`
}

// Status returns the namenode's status, as GET /status serves it.
func (n *Namenode) Status() Status {
	now := time.Now()
	st := Status{
		HTTPAddr:      n.HTTPAddr(),
		RPCAddr:       n.RPCAddr(),
		Backend:       n.Backend(),
		UptimeSeconds: now.Sub(n.start).Seconds(),
		Datanodes:     []DatanodeInfo{},
		Election:      n.el.State(),
	}
	if n.dnm != nil {
		st.DeadAfterSeconds = n.dnm.DeadInterval().Seconds()
		r := n.dnm.Replication()
		st.Replication = ReplicationInfo{UnderReplicated: r.UnderReplicated, Missing: r.Missing, Swept: r.Swept, Pending: r.Pending, Queued: r.Queued, Scans: r.Scans}
		if !r.LastScan.IsZero() {
			last := r.LastScan
			st.Replication.LastScan = &last
		}
	}
	for _, d := range n.Datanodes() {
		if d.Live {
			st.Live++
		} else {
			st.Dead++
		}
		st.Datanodes = append(st.Datanodes, DatanodeInfo{
			StorageID: d.StorageID, DataAddr: d.DataAddr, HTTPAddr: d.HTTPAddr,
			Hostname: d.Hostname, Version: d.SoftwareVersion, Live: d.Live,
			Capacity: d.Capacity, Used: d.Used, NonDFSUsed: d.NonDFSUsed, Remaining: d.Remaining,
			Blocks: d.Blocks, Xceivers: d.Xceivers,
			LastHeartbeatSeconds: max(0, now.Sub(d.LastSeen).Seconds()),
		})
	}
	return st
}

func (n *Namenode) serveStatus(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(n.Status(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
