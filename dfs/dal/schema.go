package dal

import (
	"fmt"
	"strings"
)

// Dialect names a SQL dialect the schema is written for.
type Dialect string

const (
	// DialectSQLite is SQLite 3.35 or newer (RETURNING, partial indexes).
	DialectSQLite Dialect = "sqlite"
	// DialectPostgres is PostgreSQL 13 or newer and PostgreSQL-wire databases.
	DialectPostgres Dialect = "postgres"
)

// Migration is one step of the schema's history. A store applies, at open
// and in one transaction, every migration whose Version is above the
// database's recorded schema version (variables.schema_version, 0 for an
// empty database), in order, then records the last version applied.
type Migration struct {
	// Version is the schema version the migration produces (1, 2, ...).
	Version int
	// Name says what the migration does.
	Name string
	// Statements returns the SQL statements of the migration for dialect d,
	// each one statement without a trailing semicolon.
	Statements func(d Dialect) []string
}

// Migrations returns the schema's migrations in version order; its last
// element's Version is LatestSchemaVersion.
func Migrations() []Migration {
	return []Migration{
		{Version: 1, Name: "initial schema: inodes, blocks, replicas, leases, variables", Statements: schemaV1},
		{Version: 2, Name: "inodes.children: a directory's stored number of entries", Statements: schemaV2},
		{Version: 3, Name: "le_descriptors: namenodes in leader election; blocks.recovery_id", Statements: schemaV3},
	}
}

// LatestSchemaVersion is the newest schema version this binary knows.
func LatestSchemaVersion() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// CheckSchemaVersion returns a *SchemaVersionError when a database at schema
// version found cannot be used by a binary knowing versions up to known.
func CheckSchemaVersion(found, known int) error {
	if found > known {
		return &SchemaVersionError{Found: found, Known: known}
	}
	return nil
}

// ValidateMigrations checks that ms is non-empty, numbered 1, 2, 3, ... and
// that every migration has statements.
func ValidateMigrations(ms []Migration) error {
	if len(ms) == 0 {
		return fmt.Errorf("dal: no schema migrations")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("dal: migration %d (%q) has version %d, want %d", i, m.Name, m.Version, i+1)
		}
		if m.Statements == nil {
			return fmt.Errorf("dal: migration %d (%q) has no statements", m.Version, m.Name)
		}
	}
	return nil
}

// schemaV1 is the initial schema, following HopsFS's tables. Tables a later
// issue adds, in later migrations, following HopsFS:
//
//   - quota (inode_id PK: namespace quota, space quota, namespace and space
//     counts) and quota_updates ((inode_id, id) PK: namespace and space
//     deltas applied asynchronously by the leader, leaves first);
//   - on_going_sub_tree_ops ((partition_id, path) PK: namenode id, op
//     name, start time) with subtree_lock_owner / subtree_locked columns on
//     inodes, for subtree operations;
//   - the under-construction, corrupt, excess, invalidated,
//     under-replicated and pending replica tables, each keyed by inode_id.
func schemaV1(d Dialect) []string {
	// Names compare byte-wise on both backends: SQLite's default BINARY
	// collation, PostgreSQL's "C" collation (rather than the database's
	// locale), so paged listings agree.
	collateC, withoutRowID, nowMillis := "", " WITHOUT ROWID", "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
	if d == DialectPostgres {
		collateC, withoutRowID, nowMillis = ` COLLATE "C"`, "", "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
	}
	r := strings.NewReplacer("{C}", collateC, "{WR}", withoutRowID, "{NOW}", nowMillis)
	stmts := []string{
		`CREATE TABLE variables (
			name TEXT{C} PRIMARY KEY,
			value BIGINT NOT NULL
		){WR}`,

		// A directory's number of entries (inodes.children) is added by
		// migration 2.
		`CREATE TABLE inodes (
			partition_id BIGINT NOT NULL,
			parent_id BIGINT NOT NULL,
			name TEXT{C} NOT NULL,
			id BIGINT NOT NULL,
			is_dir BOOLEAN NOT NULL,
			permission INTEGER NOT NULL,
			owner TEXT NOT NULL,
			group_name TEXT NOT NULL,
			mtime BIGINT NOT NULL,
			atime BIGINT NOT NULL,
			size BIGINT NOT NULL DEFAULT 0,
			replication SMALLINT NOT NULL DEFAULT 0,
			block_size BIGINT NOT NULL DEFAULT 0,
			under_construction BOOLEAN NOT NULL DEFAULT FALSE,
			client_name TEXT NOT NULL DEFAULT '',
			client_machine TEXT NOT NULL DEFAULT '',
			symlink TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (partition_id, parent_id, name),
			CONSTRAINT inodes_id_key UNIQUE (id)
		){WR}`,
		// The root's children are spread over hashed partitions; this
		// partial index serves their listing.
		`CREATE INDEX inodes_root_children ON inodes (parent_id, name) WHERE parent_id = 1`,

		`CREATE TABLE blocks (
			inode_id BIGINT NOT NULL REFERENCES inodes (id) ON DELETE CASCADE,
			block_id BIGINT NOT NULL,
			idx INTEGER NOT NULL,
			num_bytes BIGINT NOT NULL,
			generation_stamp BIGINT NOT NULL,
			state SMALLINT NOT NULL,
			PRIMARY KEY (inode_id, block_id)
		){WR}`,
		`CREATE TABLE block_lookup (
			block_id BIGINT PRIMARY KEY,
			inode_id BIGINT NOT NULL,
			FOREIGN KEY (inode_id, block_id) REFERENCES blocks (inode_id, block_id) ON DELETE CASCADE
		){WR}`,

		`CREATE TABLE replicas (
			inode_id BIGINT NOT NULL,
			block_id BIGINT NOT NULL,
			storage_id TEXT{C} NOT NULL,
			state SMALLINT NOT NULL,
			PRIMARY KEY (inode_id, block_id, storage_id),
			FOREIGN KEY (inode_id, block_id) REFERENCES blocks (inode_id, block_id) ON DELETE CASCADE
		){WR}`,
		`CREATE INDEX replicas_storage ON replicas (storage_id, block_id)`,

		`CREATE TABLE leases (
			holder TEXT{C} PRIMARY KEY,
			last_renewal BIGINT NOT NULL
		){WR}`,
		`CREATE INDEX leases_last_renewal ON leases (last_renewal)`,
		`CREATE TABLE lease_paths (
			inode_id BIGINT PRIMARY KEY REFERENCES inodes (id) ON DELETE CASCADE,
			holder TEXT{C} NOT NULL REFERENCES leases (holder) ON DELETE CASCADE,
			path TEXT NOT NULL
		){WR}`,
		`CREATE INDEX lease_paths_holder ON lease_paths (holder)`,

		// Counters: the last id handed out. Block ids and generation stamps
		// start where HDFS starts them (sequential block ids above 2^30,
		// stamps above 1000).
		`INSERT INTO variables (name, value) VALUES ('inode_id', 1), ('block_id', 1073741824), ('generation_stamp', 1000)`,
		// The root directory: id 1, parent 0, rwxr-xr-x, owned by root in
		// HDFS's default superuser group; the namespace may change owner and
		// mode when it formats the file system.
		`INSERT INTO inodes (partition_id, parent_id, name, id, is_dir, permission, owner, group_name, mtime, atime)
			VALUES (0, 0, '', 1, TRUE, 493, 'root', 'supergroup', {NOW}, {NOW})`,
	}
	for i, s := range stmts {
		stmts[i] = r.Replace(s)
	}
	return stmts
}

// schemaV2 stores a directory's number of entries in its row
// (inodes.children), as HDFS keeps it in memory, so that the
// max-directory-items limit and a status's childrenNum cost no count over
// the directory's entries. Every operation that adds or removes an entry
// already locks and updates the parent's row (its modification time), so
// keeping the count there adds no row lock. The count is backfilled for
// existing directories in the same migration: the root's children sit in
// hashed partitions (the partial index inodes_root_children serves them),
// every other directory's children in the partition named by its id.
func schemaV2(Dialect) []string {
	return []string{
		`ALTER TABLE inodes ADD COLUMN children BIGINT NOT NULL DEFAULT 0`,
		`UPDATE inodes SET children = CASE
			WHEN id = 1 THEN (SELECT count(*) FROM inodes c WHERE c.parent_id = 1)
			ELSE (SELECT count(*) FROM inodes c WHERE c.partition_id = inodes.id AND c.parent_id = inodes.id)
		END
		WHERE is_dir`,
	}
}

// schemaV3 adds HopsFS's leader election: a row per namenode taking part
// (le_descriptors: id, a counter it advances every round, its addresses),
// the counter that hands out namenode ids and the one that serialises the
// rounds. It also adds blocks.recovery_id, the stamp a block recovery is
// giving a block's replicas, kept apart from the block's own stamp until
// the recovery commits (0: none).
func schemaV3(Dialect) []string {
	return []string{
		`ALTER TABLE blocks ADD COLUMN recovery_id BIGINT NOT NULL DEFAULT 0`,
		`CREATE TABLE le_descriptors (
			id BIGINT PRIMARY KEY,
			counter BIGINT NOT NULL,
			rpc_address TEXT NOT NULL,
			http_address TEXT NOT NULL
		)`,
		`INSERT INTO variables (name, value) VALUES ('namenode_id', 0), ('election_round', 0)`,
	}
}
