package store

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// changeJSON is the JSON form of a change, one line per change, as `kura kv
// watch` prints it and plugins receive it. Byte strings that are valid UTF-8
// appear as strings under their name; others are base64 under name+"_b64".
// A CAS integer's value appears as a number under "int".
type changeJSON struct {
	Seq       uint64  `json:"seq"`
	Op        Op      `json:"op"`
	Time      string  `json:"time"`
	Key       string  `json:"key,omitempty"`
	KeyB64    string  `json:"key_b64,omitempty"`
	Subkey    string  `json:"subkey,omitempty"`
	SubkeyB64 string  `json:"subkey_b64,omitempty"`
	Value     *string `json:"value,omitempty"`
	ValueB64  string  `json:"value_b64,omitempty"`
	Int       *uint64 `json:"int,omitempty"`
	Type      string  `json:"type,omitempty"`
	Expires   string  `json:"expires,omitempty"`
	Encrypted bool    `json:"encrypted,omitempty"`
	Sealed    bool    `json:"sealed,omitempty"`
}

func splitBytes(b []byte, text, b64 *string) {
	if b == nil {
		return
	}
	if utf8.Valid(b) {
		*text = string(b)
		return
	}
	*b64 = base64.StdEncoding.EncodeToString(b)
}

// MarshalJSON encodes the change as one JSON object (no newline).
func (c Change) MarshalJSON() ([]byte, error) {
	j := changeJSON{Seq: c.Seq, Op: c.Op, Time: c.Time.UTC().Format(time.RFC3339Nano), Encrypted: c.Attrs.Encrypted, Sealed: c.Sealed}
	splitBytes(c.Key, &j.Key, &j.KeyB64)
	splitBytes(c.Subkey, &j.Subkey, &j.SubkeyB64)
	if c.Attrs.Type != TypeBytes && c.Value != nil && len(c.Value) <= 8 {
		v := decodeUint(c.Value)
		j.Int = &v
	} else if c.Value != nil {
		var text string
		splitBytes(c.Value, &text, &j.ValueB64)
		if j.ValueB64 == "" {
			j.Value = &text
		}
	}
	if c.Value != nil || c.Sealed {
		j.Type = c.Attrs.Type.String()
	}
	if !c.Attrs.Expires.IsZero() {
		j.Expires = c.Attrs.Expires.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(j)
}
