package client

import (
	"context"
	"fmt"
	"iter"
	"math"

	"github.com/kura-dev/kura/dfs/hdfs"
	"github.com/kura-dev/kura/proto/dfspb"
)

// ListOption configures ListIter.
type ListOption func(*listConfig)

// listConfig is what the ListOptions set.
type listConfig struct {
	pageSize int
}

// WithPageSize makes ListIter ask the namenode for n entries at a time.
// The namenode caps a page at its own limit (namespace.Config.ListLimit,
// HDFS's dfs.ls.limit: 1000 by default); n <= 0 asks for that limit, which
// is also the default.
func WithPageSize(n int) ListOption {
	return func(c *listConfig) { c.pageSize = n }
}

// ListIter returns the entries of the directory path in name (byte)
// order, as List does, but fetches them from the namenode one page at a
// time (ListRequest.start_after after the last name of the page before),
// so that only one page is held however large the directory is:
//
//	for st, err := range c.ListIter(ctx, "/logs", client.WithPageSize(500)) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(st.Name, st.Length)
//	}
//
// Nothing is fetched until the sequence is ranged over, and each range
// lists anew from the start. Stopping the range early (break, return)
// stops the fetching: no page after the current one is asked for. When
// path is a file, the sequence yields the file itself (with its name), as
// List does.
//
// An error ends the sequence: it is yielded once, with a nil status. An
// error of the first page is the namenode's exception as List returns it
// (errors.Is(err, hdfs.ErrFileNotFound) for a missing path,
// hdfs.ErrAccessControl without READ_EXECUTE on the directory); an error of
// a later page is wrapped with the path and the name the page starts
// after. ctx bounds each page's call.
//
// The listing is not a snapshot: as HDFS's DirectoryListing iterator, each
// page is read in its own namenode transaction and starts after the last
// name seen, by name order, whether or not that entry still exists (the
// namenode continues with the next name that sorts after it). So no entry
// is yielded twice; entries created or deleted behind the cursor are not
// seen, those ahead of it are, and an entry renamed within the directory
// meanwhile may show under both names or neither. When the directory is
// deleted or renamed away between two pages, the sequence ends with the
// namenode's FileNotFoundException (HDFS's iterator throws
// FileNotFoundException too); when it was replaced by a file, with a
// PathIsNotDirectoryException (hdfs.ErrPathIsNotDirectory). A directory
// renamed onto path in between is listed on from the same name, as HDFS
// does (pages resolve path anew).
func (c *Client) ListIter(ctx context.Context, path string, opts ...ListOption) iter.Seq2[*FileStatus, error] {
	var cfg listConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(yield func(*FileStatus, error) bool) {
		after := ""
		for first := true; ; first = false {
			resp, err := c.listPage(ctx, path, after, cfg.pageSize)
			if err == nil && !first {
				err = c.checkPage(ctx, path, after, resp)
			}
			if err != nil {
				if !first {
					err = fmt.Errorf("list %s: page after %q: %w", path, after, err)
				}
				yield(nil, err)
				return
			}
			for _, e := range resp.Entries {
				if !yield(statusOf(e), nil) {
					return
				}
			}
			if !resp.HasMore || len(resp.Entries) == 0 {
				return
			}
			after = resp.Entries[len(resp.Entries)-1].Name
		}
	}
}

// listPage asks the namenodes for the entries of path after after.
func (c *Client) listPage(ctx context.Context, path, after string, limit int) (*dfspb.ListResponse, error) {
	if limit < 0 {
		limit = 0
	}
	return call(ctx, c, func(ctx context.Context, nn dfspb.ClientProtocolClient) (*dfspb.ListResponse, error) {
		return nn.List(ctx, &dfspb.ListRequest{Path: path, StartAfter: after, Limit: int32(min(limit, math.MaxInt32)), User: c.cfg.User})
	})
}

// checkPage checks a page after the first: its entries must sort after
// after. The namenode answers a path that has become a file with the file
// itself (its name, however it sorts): that ends the listing with
// PathIsNotDirectoryException rather than yielding the file as an entry.
// A lone file entry with path's own name is ambiguous (a directory /a may
// hold a file a), so path is statted to tell.
func (c *Client) checkPage(ctx context.Context, path, after string, resp *dfspb.ListResponse) error {
	if len(resp.Entries) == 0 {
		return nil
	}
	e := resp.Entries[0]
	if len(resp.Entries) == 1 && !e.IsDir && !resp.HasMore && e.Name == hdfs.Base(path) {
		if e.Name <= after {
			return notADirectory(path)
		}
		st, err := c.Stat(ctx, path)
		if err != nil {
			return err
		}
		if !st.IsDir && st.FileID == e.FileId {
			return notADirectory(path)
		}
		return nil
	}
	for _, e := range resp.Entries {
		if e.Name <= after {
			return hdfs.ErrIO.Errorf("namenode listed %q, which does not sort after %q", e.Name, after)
		}
		after = e.Name
	}
	return nil
}

// notADirectory is the error of a directory replaced by a file while it
// was listed.
func notADirectory(path string) error {
	return hdfs.ErrPathIsNotDirectory.Errorf("`%s': Is not a directory (it was replaced by a file while being listed)", path)
}
