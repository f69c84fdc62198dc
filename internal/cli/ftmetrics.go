package cli

import (
	"github.com/kura-dev/kura/ft/agent"
	"github.com/kura-dev/kura/ft/serve"
	"github.com/kura-dev/kura/internal/metrics"
)

// ftMountMetrics are what `kura ft mount --metrics` exports.
func ftMountMetrics(a *agent.Agent) []metrics.Metric {
	st := func() agent.Stats { return a.Stats() }
	c := func(name, help string, v func(agent.Stats) uint64) metrics.Metric {
		return metrics.Metric{Name: name, Help: help, Counter: true, Value: func() float64 { return float64(v(st())) }}
	}
	g := func(name, help string, v func(agent.Stats) float64) metrics.Metric {
		return metrics.Metric{Name: name, Help: help, Value: func() float64 { return v(st()) }}
	}
	return []metrics.Metric{
		c("kura_ft_mount_writes_total", "write() calls to files that transfer", func(s agent.Stats) uint64 { return s.Mount.Writes }),
		c("kura_ft_mount_bytes_total", "bytes those writes carried", func(s agent.Stats) uint64 { return s.Mount.Bytes }),
		c("kura_ft_mount_records_total", "records queued", func(s agent.Stats) uint64 { return s.Mount.Records }),
		c("kura_ft_mount_emit_errors_total", "writes failed with EIO because the queue refused them", func(s agent.Stats) uint64 { return s.Mount.EmitErrors }),
		c("kura_ft_mount_overlong_split_total", "lines longer than max_line, split", func(s agent.Stats) uint64 { return s.Mount.OverLongSplit }),
		c("kura_ft_mount_overlong_dropped_total", "lines longer than max_line, dropped", func(s agent.Stats) uint64 { return s.Mount.OverLongDropped }),
		g("kura_ft_queue_pending_bytes", "bytes queued and not yet acknowledged", func(s agent.Stats) float64 { return float64(s.Queue.PendingBytes) }),
		g("kura_ft_queue_pending_records", "records queued and not yet acknowledged", func(s agent.Stats) float64 { return float64(s.Queue.PendingRecords) }),
		c("kura_ft_queue_dropped_records_total", "records dropped by queue_full: drop-oldest", func(s agent.Stats) uint64 { return s.Queue.DroppedRecords }),
		c("kura_ft_queue_recovered_bytes_total", "torn or corrupt queue bytes cut off at start", func(s agent.Stats) uint64 { return uint64(s.Queue.RecoveredBytes) }),
		c("kura_ft_queue_corrupt_frames_total", "damaged queue frames met while reading", func(s agent.Stats) uint64 { return s.Queue.Corrupt }),
		g("kura_ft_ship_connected", "1 while connected to the receiver", func(s agent.Stats) float64 {
			if s.Ship.Connected {
				return 1
			}
			return 0
		}),
		c("kura_ft_ship_records_acked_total", "records the receiver acknowledged", func(s agent.Stats) uint64 { return s.Ship.RecordsAcked }),
		c("kura_ft_ship_batches_sent_total", "batches sent (again after a reconnect)", func(s agent.Stats) uint64 { return s.Ship.BatchesSent }),
		c("kura_ft_ship_failures_total", "failed connections and broken sessions", func(s agent.Stats) uint64 { return s.Ship.Failures }),
	}
}

// ftServeMetrics are what `kura ft serve --metrics` exports.
func ftServeMetrics(srv *serve.Server) []metrics.Metric {
	c := func(name, help string, v func(serve.Stats) uint64) metrics.Metric {
		return metrics.Metric{Name: name, Help: help, Counter: true, Value: func() float64 { return float64(v(srv.Stats())) }}
	}
	return []metrics.Metric{
		{Name: "kura_ft_serve_connections", Help: "sender connections open now", Value: func() float64 { return float64(srv.Stats().Connections) }},
		c("kura_ft_serve_records_total", "records written and committed", func(s serve.Stats) uint64 { return s.Records }),
		c("kura_ft_serve_bytes_total", "output bytes written and committed", func(s serve.Stats) uint64 { return s.Bytes }),
		c("kura_ft_serve_batches_total", "batches written and committed", func(s serve.Stats) uint64 { return s.Batches }),
		c("kura_ft_serve_duplicates_total", "records dropped as already written", func(s serve.Stats) uint64 { return s.Duplicates }),
		c("kura_ft_serve_write_errors_total", "write groups rolled back (disk full, I/O errors)", func(s serve.Stats) uint64 { return s.WriteErrors }),
		c("kura_ft_serve_rejected_total", "connections closed for bad input", func(s serve.Stats) uint64 { return s.Rejected }),
		c("kura_ft_serve_commits_total", "state commits", func(s serve.Stats) uint64 { return s.Commits }),
	}
}
