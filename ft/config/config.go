// Package config reads ft's YAML configuration: how a mount queues and ships
// (destination, fsync policy, queue bounds) and, by path, which files
// transfer and how (rules). Every error names the file, the line and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole ft configuration file.
type Config struct {
	Mount MountConfig `yaml:"mount"`
	Serve ServeConfig `yaml:"serve"`
	// Rules are tried in order; the first whose path matches decides. A
	// path no rule matches follows Default.
	Rules   []Rule `yaml:"rules"`
	Default Rule   `yaml:"default"`

	file string
}

// MountConfig is the sender side.
type MountConfig struct {
	To           string   `yaml:"to"`            // receiver host:port (default destination)
	Queue        string   `yaml:"queue"`         // queue directory
	Sync         string   `yaml:"sync"`          // always | interval | never
	SyncInterval Duration `yaml:"sync_interval"` // with sync: interval
	QueueMax     Size     `yaml:"queue_max"`     // bound on queued bytes
	QueueFull    string   `yaml:"queue_full"`    // block | drop-oldest
	KeepLocal    *bool    `yaml:"keep_local"`    // default for rules
}

// ServeConfig is the receiver side.
type ServeConfig struct {
	Listen      string `yaml:"listen"`
	Out         string `yaml:"out"`
	Layout      string `yaml:"layout"`       // path | host | unified
	UnifiedName string `yaml:"unified_name"` // with layout: unified
	Format      string `yaml:"format"`       // "" (raw), json, or a template
	TimeLayout  string `yaml:"time_layout"`
	NoSync      bool   `yaml:"no_sync"`
}

// Rule says what happens to the files whose relative path matches.
type Rule struct {
	// Path is a glob on the slash-separated path relative to the mount
	// point ("*.log", "app/*.log"); a pattern ending in "/" matches every
	// file under that directory ("audit/"); "**" matches any path.
	Path      string `yaml:"path"`
	Transfer  *bool  `yaml:"transfer"`   // default true
	Mode      string `yaml:"mode"`       // text (default) | binary
	KeepLocal *bool  `yaml:"keep_local"` // default: mount.keep_local, else true
	MaxLine   Size   `yaml:"max_line"`   // longest record; longer ones follow over_long
	OverLong  string `yaml:"over_long"`  // split (default) | drop

	line int
}

// Decision is a rule resolved for one path.
type Decision struct {
	Transfer  bool
	Binary    bool
	KeepLocal bool
	MaxLine   int
	DropLong  bool
}

// Load reads and validates a configuration file.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(file, data)
}

// Parse validates configuration bytes; file names them in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := c.validate(&root); err != nil {
		return nil, err
	}
	return c, nil
}

// lineOf returns the line of the value at a key path in the document.
func lineOf(root *yaml.Node, keys ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					n, line, found = n.Content[i+1], n.Content[i].Line, true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

func (c *Config) errAt(root *yaml.Node, keyPath string, keys []any, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %s", c.file, lineOf(root, keys...), keyPath, fmt.Sprintf(format, args...))
}

func oneOf(v string, allowed ...string) bool {
	if v == "" {
		return true
	}
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func (c *Config) validate(root *yaml.Node) error {
	m := c.Mount
	if !oneOf(m.Sync, "always", "interval", "never") {
		return c.errAt(root, "mount.sync", []any{"mount", "sync"}, "%q is not one of always, interval, never", m.Sync)
	}
	if !oneOf(m.QueueFull, "block", "drop-oldest") {
		return c.errAt(root, "mount.queue_full", []any{"mount", "queue_full"}, "%q is not one of block, drop-oldest", m.QueueFull)
	}
	if m.To != "" && !strings.Contains(m.To, ":") {
		return c.errAt(root, "mount.to", []any{"mount", "to"}, "%q is not a host:port address", m.To)
	}
	if m.SyncInterval < 0 {
		return c.errAt(root, "mount.sync_interval", []any{"mount", "sync_interval"}, "must not be negative")
	}
	s := c.Serve
	if !oneOf(s.Layout, "path", "host", "unified") {
		return c.errAt(root, "serve.layout", []any{"serve", "layout"}, "%q is not one of path, host, unified", s.Layout)
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		r.line = lineOf(root, "rules", i)
		if err := c.validateRule(root, fmt.Sprintf("rules[%d]", i), []any{"rules", i}, r, true); err != nil {
			return err
		}
	}
	return c.validateRule(root, "default", []any{"default"}, &c.Default, false)
}

func (c *Config) validateRule(root *yaml.Node, name string, keys []any, r *Rule, needPath bool) error {
	at := func(key string) []any { return append(append([]any(nil), keys...), key) }
	if needPath && r.Path == "" {
		return c.errAt(root, name+".path", keys, "a rule needs a path (a glob such as \"*.log\" or a directory such as \"audit/\")")
	}
	if r.Path != "" {
		if strings.HasPrefix(r.Path, "/") {
			return c.errAt(root, name+".path", at("path"), "%q must be relative to the mount point", r.Path)
		}
		if _, err := path.Match(strings.TrimSuffix(r.Path, "/"), ""); err != nil {
			return c.errAt(root, name+".path", at("path"), "%q is not a valid glob: %v", r.Path, err)
		}
	}
	if !oneOf(r.Mode, "text", "binary") {
		return c.errAt(root, name+".mode", at("mode"), "%q is not one of text, binary", r.Mode)
	}
	if !oneOf(r.OverLong, "split", "drop") {
		return c.errAt(root, name+".over_long", at("over_long"), "%q is not one of split, drop", r.OverLong)
	}
	if r.MaxLine < 0 || r.MaxLine > 64<<20 {
		return c.errAt(root, name+".max_line", at("max_line"), "%d is out of range (1 byte to 64 MiB)", r.MaxLine)
	}
	return nil
}

// Decide resolves the rule for a slash-separated path relative to the
// mount point.
func (c *Config) Decide(rel string) Decision {
	r := &c.Default
	for i := range c.Rules {
		if Match(c.Rules[i].Path, rel) {
			r = &c.Rules[i]
			break
		}
	}
	keep := true
	if c.Mount.KeepLocal != nil {
		keep = *c.Mount.KeepLocal
	}
	if r.KeepLocal != nil {
		keep = *r.KeepLocal
	}
	return Decision{
		Transfer:  r.Transfer == nil || *r.Transfer,
		Binary:    r.Mode == "binary",
		KeepLocal: keep,
		MaxLine:   int(r.MaxLine),
		DropLong:  r.OverLong == "drop",
	}
}

// Match reports whether a rule's path pattern matches rel: "**" matches
// everything, a pattern ending in "/" matches every path under that
// directory, any other pattern is a path.Match glob on the whole path, or,
// when it has no "/", on the file name alone.
func Match(pattern, rel string) bool {
	switch {
	case pattern == "**":
		return true
	case strings.HasSuffix(pattern, "/"):
		dir := strings.TrimSuffix(pattern, "/")
		for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
			if ok, _ := path.Match(dir, d); ok {
				return true
			}
		}
		return false
	case !strings.Contains(pattern, "/"):
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	ok, _ := path.Match(pattern, rel)
	return ok
}

// Duration is a time.Duration written as "200ms", "5s".
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 200ms, 5s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written as "65536", "64KiB", "1GiB", "512MB".
type Size int64

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "123", "64KiB", "10MB", "1GiB" (KB/MB/GB are powers of
// 1000, KiB/MiB/GiB of 1024; k/m/g/K/M/G alone mean KiB/MiB/GiB).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	var v int64
	if _, err := fmt.Sscanf(num, "%d", &v); err != nil || fmt.Sprint(v) != num || v < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 65536, 64KiB, 1GiB)", s)
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v * mult, nil
}

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
