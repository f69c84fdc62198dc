package blockstore

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The benchmarks write and read a 64 MiB block through the store and, in
// the same iteration, the same bytes through a plain os.File (write+fsync,
// read): the ceiling. They report both rates and their ratio:
//
//	go test -run '^$' -bench . -benchtime 5x ./dfs/blockstore

const benchBlock = 64 << 20

type pair struct{ store, plain time.Duration }

func (p *pair) report(b *testing.B) {
	mb := float64(benchBlock) * float64(b.N) / (1 << 20)
	b.ReportMetric(mb/p.store.Seconds(), "store-MB/s")
	b.ReportMetric(mb/p.plain.Seconds(), "ceiling-MB/s")
	b.ReportMetric(p.plain.Seconds()/p.store.Seconds(), "ratio")
}

func benchStore(b *testing.B) *Store {
	s, err := Open(b.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// plainWrite writes data to path in pieces of chunk bytes and fsyncs.
func plainWrite(b *testing.B, path string, data []byte, chunk int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	for p := data; len(p) > 0; p = p[min(chunk, len(p)):] {
		if _, err := f.Write(p[:min(chunk, len(p))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

func BenchmarkWrite(b *testing.B) {
	data := randBytes(1, benchBlock)
	for _, mode := range []string{"Write", "WritePacket"} {
		b.Run(mode, func(b *testing.B) {
			s := benchStore(b)
			var packets, crcs [][]byte
			if mode == "WritePacket" {
				packets, crcs = packetize(0, data, 64<<10)
			}
			plain := filepath.Join(b.TempDir(), "plain")
			var t pair
			b.SetBytes(benchBlock)
			b.ResetTimer()
			for i := range b.N {
				id := uint64(i + 1)
				start := time.Now()
				w, err := s.Create(ctx, id, 1)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "Write" {
					for p := data; len(p) > 0; p = p[64<<10:] {
						if _, err := w.Write(p[:64<<10]); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					for j := range packets {
						if err := w.WritePacket(packets[j], crcs[j]); err != nil {
							b.Fatal(err)
						}
					}
				}
				if _, err := w.Finalize(ctx); err != nil {
					b.Fatal(err)
				}
				t.store += time.Since(start)

				start = time.Now()
				plainWrite(b, plain, data, 64<<10)
				t.plain += time.Since(start)

				b.StopTimer()
				s.Delete(ctx, id)
				os.Remove(plain)
				b.StartTimer()
			}
			t.report(b)
		})
	}
}

func BenchmarkRead(b *testing.B) {
	data := randBytes(1, benchBlock)
	s := benchStore(b)
	w, err := s.Create(ctx, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	if _, err := w.Finalize(ctx); err != nil {
		b.Fatal(err)
	}
	plain := filepath.Join(b.TempDir(), "plain")
	plainWrite(b, plain, data, 1<<20)
	buf := make([]byte, 64<<10)
	crcs := make([]byte, 64<<10/512*4)

	for _, mode := range []string{"Read", "ReadPacket"} {
		b.Run(mode, func(b *testing.B) {
			var t pair
			b.SetBytes(benchBlock)
			for range b.N {
				// Both read from the page cache: the difference is the
				// store's checksum work.
				start := time.Now()
				r, err := s.NewReader(ctx, 1)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "Read" {
					readThrough(b, r, buf)
				} else {
					for off := int64(0); ; {
						n, err := r.ReadPacket(off, buf, crcs)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						off += int64(n)
					}
				}
				r.Close()
				t.store += time.Since(start)

				start = time.Now()
				f, err := os.Open(plain)
				if err != nil {
					b.Fatal(err)
				}
				readThrough(b, f, buf)
				f.Close()
				t.plain += time.Since(start)
			}
			t.report(b)
		})
	}
}

// readThrough reads r to its end in reads of len(buf) bytes.
func readThrough(b *testing.B, r io.Reader, buf []byte) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if total != benchBlock {
		b.Fatalf("read %d bytes, want %d", total, benchBlock)
	}
}
