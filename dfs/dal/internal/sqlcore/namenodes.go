package sqlcore

import (
	"context"
	"fmt"

	"github.com/kura-dev/kura/dfs/dal"
)

// ListNamenodes implements dal.Tx.
func (t *Tx) ListNamenodes(ctx context.Context) ([]*dal.Namenode, error) {
	const op = "list namenodes"
	rows, err := t.c.Query(ctx, `SELECT id, counter, rpc_address, http_address FROM le_descriptors ORDER BY id`)
	if err != nil {
		return nil, t.d.wrap(op, err)
	}
	defer rows.Close()
	var out []*dal.Namenode
	for rows.Next() {
		var n dal.Namenode
		if err := rows.Scan(&n.ID, &n.Counter, &n.RPCAddress, &n.HTTPAddress); err != nil {
			return nil, t.d.wrap(op, err)
		}
		out = append(out, &n)
	}
	if err := rows.Err(); err != nil {
		return nil, t.d.wrap(op, err)
	}
	return out, nil
}

// PutNamenode implements dal.Tx.
func (t *Tx) PutNamenode(ctx context.Context, n *dal.Namenode) error {
	return t.exec(ctx, `INSERT INTO le_descriptors (id, counter, rpc_address, http_address) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET counter = excluded.counter, rpc_address = excluded.rpc_address,
		http_address = excluded.http_address`, []any{n.ID, n.Counter, n.RPCAddress, n.HTTPAddress}, false,
		t.wrapped(fmt.Sprintf("put namenode %d", n.ID)))
}

// DeleteNamenode implements dal.Tx.
func (t *Tx) DeleteNamenode(ctx context.Context, id int64) error {
	return t.execOne(ctx, fmt.Sprintf("delete namenode %d", id), `DELETE FROM le_descriptors WHERE id = $1`, id)
}
