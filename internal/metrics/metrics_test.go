package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestServe(t *testing.T) {
	var n atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), []Metric{
		{Name: "kura_test_things_total", Help: "things", Counter: true, Value: func() float64 { return float64(n.Load()) }},
		{Name: "kura_test_level", Help: "level", Value: func() float64 { return 7 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Store(42)
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"kura_test_things_total 42", "kura_test_level 7", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, err := Serve(ctx, "127.0.0.1:0", nil, []Metric{{Name: "bad name", Value: func() float64 { return 0 }}}); err == nil {
		t.Error("an invalid metric name was accepted")
	}
}
