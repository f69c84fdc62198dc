package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/kura-dev/kura/kv/lincheck"
)

func perKeyTiming(t *testing.T, rec *lincheck.Recorder) {
	ops := rec.Operations()
	byKey := map[string][]porcupine.Operation{}
	for _, op := range ops {
		k := op.Input.(lincheck.Input).Key
		byKey[k] = append(byKey[k], op)
	}
	for k, kops := range byKey {
		unk := 0
		for _, op := range kops {
			if op.Output.(lincheck.Output).Unknown {
				unk++
			}
		}
		start := time.Now()
		res := porcupine.CheckOperationsTimeout(lincheck.Model(), kops, 30*time.Second)
		t.Logf("key %s: %d ops (%d unknown): %v in %v", k, len(kops), unk, res, time.Since(start).Round(time.Millisecond))
		if res != porcupine.Ok {
			f, _ := os.CreateTemp("", "hist-"+strings.ReplaceAll(k, "/", "_")+"-*.jsonl")
			enc := json.NewEncoder(f)
			for _, op := range kops {
				enc.Encode(map[string]any{"c": op.ClientId, "call": op.Call, "ret": op.Return, "in": op.Input, "out": op.Output})
			}
			f.Close()
			t.Logf("dumped to %s", f.Name())
		}
	}
}
