// Package serve is ft's receiver (K2HFTFUSESVR's "file" role): it accepts
// wire connections from senders and relays and appends every record they
// carry to output files under one directory, exactly once, and acknowledges
// a batch only when everything in it is durably written.
//
// # Output
//
// Layout chooses the file a record goes to: PerPath (OUT/path, every host
// writing the same relative path appends to the same file, K2HFTFUSESVR's
// default), PerHost (OUT/HOST/path) or Unified (every record to
// OUT/UnifiedName, K2HFTFUSESVR's FILE_UNIFY). Format chooses the bytes: raw
// (a text record plus "\n", a binary record as it is), "json" (one object
// per record with every attribute) or a template (see ValidateFormat).
//
// Record paths come from the network and are checked before anything is
// written: a path that is absolute, has an empty, "." or ".." component, a
// NUL, an over-long component or (PerPath) would land in the receiver's
// state directory makes the receiver answer Error naming it and close the
// connection. In PerHost layout the host name becomes one path component:
// "/" and NUL become "_", an empty name becomes "_", and ".", ".." or a name
// beginning with ".kura-serve" get a "_" prefix.
//
// # Exactly once, across crashes
//
// One writer goroutine owns all output files and the state. Connections
// parse and check batches and queue them to it; it takes everything queued
// (a group), and for the group:
//
//  1. drops what was already written: the state keeps, per sender id (the
//     chunk's, not the connection's: a relay carries many), the highest
//     sequence number written; a chunk or the head of a chunk at or below it
//     is counted as duplicates and skipped;
//  2. prepares every output file the group touches: opens it (a bounded LRU
//     of open descriptors, O_APPEND), notices rotation (the path no longer
//     names the open file, the file is gone, or its size differs from its
//     committed length), and if any touched file is new to the state or was
//     rotated, durably commits the state with that file's current size as its
//     committed length BEFORE writing to it (the "intent" commit; rare);
//  3. appends the formatted records;
//  4. fsyncs the touched files and the directories of files it created
//     (unless NoSync);
//  5. durably commits the state: per sender the highest sequence written,
//     per output file its length. The state is written to
//     OUT/.kura-serve/state.tmp, fsynced, renamed over OUT/.kura-serve/state,
//     and the directory is fsynced;
//  6. only then acknowledges the batches, each connection's in its order.
//
// So at every instant the state on disk says, for every file the receiver
// may have appended to since, the length up to which its content matches
// the sequence numbers in the same state. On start (New) every file in the
// state is cut back to its committed length: the tail beyond it holds
// records that were never acknowledged and that the sender will send again.
// A file shorter than its committed length, or gone, was rotated by the
// operator: that is logged and its length forgotten (never extended). A file
// the state does not name was never written by this receiver since the last
// commit (step 2 names every file before it is written), so it is left alone.
//
// A write error (disk full included) in a group is never acknowledged: the
// touched files are truncated back to their committed lengths, the
// connections whose batches failed get wire Error ("disk full: ..." for
// ENOSPC) and are closed (and so is any other connection in the group that
// carries the same sender ids, so that no later record of a sender is
// written before an earlier one that failed), the rest of the group is
// retried, and the receiver keeps serving. Senders reconnect, resend what was
// not acknowledged, and the sequence numbers drop what was written.
//
// With NoSync the receiver skips every fsync (files, directories and state):
// exactly-once output still survives the receiver process dying, since the
// page cache does, but not the machine losing power.
//
// The state also bounds itself: files not touched for a long while are
// dropped from it (at most 4096 are kept; dropping a file whose content is
// all committed is safe, it is named again before it is next written).
// Sender ids are kept for ever, 24 bytes each.
//
// A lock file (OUT/.kura-serve/lock, flock) keeps a second receiver off the
// same directory.
package serve
