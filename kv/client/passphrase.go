package client

import "context"

// Passphrases. A cluster whose nodes run with --passphrase-file seals the
// values it stores with the nodes' passphrases, whatever the client sends.
// A client may also send its own (Config.Passphrases for every call, or
// WithPassphrases for the calls made with a context): the node that
// receives the call seals the values it writes with the first one and
// opens the values it reads with any of them, as the local engine does
// with Options.Passphrases, and errors are the same: reading a value
// sealed with passphrases without any is store.ErrNeedPassphrase, with
// none that sealed it store.ErrWrongPassphrase. A call's passphrases
// replace the nodes' for that call. They travel to the node in the
// request (use a network you trust, as for the values themselves) and are
// never stored: not in the cluster's logs, snapshots or data files.
// Rotation is as in the local engine: put the new passphrase first and
// keep the old ones after it.

type passphrasesKey struct{}

// WithPassphrases returns a context under which the client's calls send
// passphrases instead of Config.Passphrases (none: the calls send none).
func WithPassphrases(ctx context.Context, passphrases ...string) context.Context {
	return context.WithValue(ctx, passphrasesKey{}, append([]string{}, passphrases...))
}

// passphrases returns the passphrases a call with ctx sends.
func (c *Client) passphrases(ctx context.Context) []string {
	if p, ok := ctx.Value(passphrasesKey{}).([]string); ok {
		return p
	}
	return c.cfg.Passphrases
}
