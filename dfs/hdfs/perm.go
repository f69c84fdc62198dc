package hdfs

import (
	"strconv"
	"strings"
)

// Action is a set of the read, write and execute rights: Hadoop's FsAction,
// whose ordinal is the three permission bits.
type Action uint8

// The eight actions, named as Hadoop's FsAction enum.
const (
	ActionNone         Action = 0
	ActionExecute      Action = 1
	ActionWrite        Action = 2
	ActionWriteExecute Action = 3
	ActionRead         Action = 4
	ActionReadExecute  Action = 5
	ActionReadWrite    Action = 6
	ActionAll          Action = 7
)

// Implies reports whether a grants every right in b (FsAction.implies).
func (a Action) Implies(b Action) bool { return a&b == b }

// String returns the FsAction constant's name ("READ_EXECUTE"), as it
// appears in AccessControlException messages ("access=WRITE").
func (a Action) String() string {
	switch a & 7 {
	case ActionNone:
		return "NONE"
	case ActionExecute:
		return "EXECUTE"
	case ActionWrite:
		return "WRITE"
	case ActionWriteExecute:
		return "WRITE_EXECUTE"
	case ActionRead:
		return "READ"
	case ActionReadExecute:
		return "READ_EXECUTE"
	case ActionReadWrite:
		return "READ_WRITE"
	default:
		return "ALL"
	}
}

// Symbol returns the action as "rwx", "r-x", "---" (FsAction.SYMBOL).
func (a Action) Symbol() string {
	b := []byte("---")
	if a&ActionRead != 0 {
		b[0] = 'r'
	}
	if a&ActionWrite != 0 {
		b[1] = 'w'
	}
	if a&ActionExecute != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// FsPermission is an HDFS permission: the nine rwx bits for owner, group and
// others plus the sticky bit (01000), as Hadoop's FsPermission.toShort. HDFS
// has no setuid/setgid bits.
type FsPermission uint16

// Permission masks and HDFS's defaults.
const (
	// PermMask keeps the bits an FsPermission may hold.
	PermMask FsPermission = 0o1777
	// StickyBit restricts deleting and renaming a directory's children to
	// their owner, the directory's owner and the superuser.
	StickyBit FsPermission = 0o1000
	// DirDefault is FsPermission.getDirDefault (before the umask).
	DirDefault FsPermission = 0o777
	// FileDefault is FsPermission.getFileDefault (before the umask).
	FileDefault FsPermission = 0o666
	// DefaultUmask is fs.permissions.umask-mode's default, 022.
	DefaultUmask FsPermission = 0o022
	// WebHDFSDirDefault is what WebHDFS MKDIRS gives a directory created
	// without a permission parameter (no umask is applied).
	WebHDFSDirDefault FsPermission = 0o755
	// WebHDFSFileDefault is what WebHDFS CREATE gives a file created without
	// a permission parameter (no umask is applied).
	WebHDFSFileDefault FsPermission = 0o644
)

// User returns the owner's rights.
func (p FsPermission) User() Action { return Action(p>>6) & 7 }

// Group returns the group's rights.
func (p FsPermission) Group() Action { return Action(p>>3) & 7 }

// Other returns the rights of everyone else.
func (p FsPermission) Other() Action { return Action(p) & 7 }

// Sticky reports whether the sticky bit is set.
func (p FsPermission) Sticky() bool { return p&StickyBit != 0 }

// NewFsPermission builds a permission from its parts.
func NewFsPermission(user, group, other Action, sticky bool) FsPermission {
	p := FsPermission(user&7)<<6 | FsPermission(group&7)<<3 | FsPermission(other&7)
	if sticky {
		p |= StickyBit
	}
	return p
}

// String returns the symbolic form `hdfs dfs -ls` prints after the type
// character: "rwxr-xr-x"; with the sticky bit the last character is 't'
// (others may execute) or 'T' (FsPermission.toString).
func (p FsPermission) String() string {
	s := p.User().Symbol() + p.Group().Symbol() + p.Other().Symbol()
	if p.Sticky() {
		if p.Other().Implies(ActionExecute) {
			s = s[:8] + "t"
		} else {
			s = s[:8] + "T"
		}
	}
	return s
}

// Octal returns the octal form WebHDFS puts in FileStatus.permission:
// "755", "644", "1777", "0" (JsonUtil: String.format("%o", perm.toShort())).
func (p FsPermission) Octal() string {
	return strconv.FormatUint(uint64(p&PermMask), 8)
}

// ApplyUmask removes the umask's bits, as FsPermission.applyUMask does; like
// Hadoop, the result never has the sticky bit.
func (p FsPermission) ApplyUmask(umask FsPermission) FsPermission {
	return p &^ umask & 0o777
}

// ParseOctal parses an octal permission as WebHDFS's permission parameter
// does: octal digits (leading zeros allowed) of a value at most 01777.
// Errors are IllegalArgumentExceptions.
func ParseOctal(s string) (FsPermission, error) {
	if s == "" || len(s) > 16 {
		return 0, ErrIllegalArgument.New(`Failed to parse "` + s + `" as a radix-8 short integer.`)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return 0, ErrIllegalArgument.New(`Failed to parse "` + s + `" as a radix-8 short integer.`)
		}
	}
	v, err := strconv.ParseUint(s, 8, 64)
	if err != nil || v > uint64(PermMask) {
		return 0, ErrIllegalArgument.New("Invalid parameter range: permission = " + s + " > 1777")
	}
	return FsPermission(v), nil
}

// ParseSymbolic parses the symbolic form: nine characters "rwxr-xr-x", the
// last 't' or 'T' for the sticky bit; or ten with a leading type character
// ('-', 'd' or 'l') as `hdfs dfs -ls` prints them ("drwxrwxrwt"). Every
// position must hold its letter or '-' (stricter than
// FsPermission.valueOf, so that String(ParseSymbolic(s)) == s).
func ParseSymbolic(s string) (FsPermission, error) {
	if len(s) == 10 {
		switch s[0] {
		case '-', 'd', 'l':
			s = s[1:]
		default:
			return 0, ErrIllegalArgument.New("invalid permission " + strconv.Quote(s))
		}
	}
	if len(s) != 9 {
		return 0, ErrIllegalArgument.New("invalid permission " + strconv.Quote(s))
	}
	const letters = "rwxrwxrwx"
	var p FsPermission
	for i := 0; i < 9; i++ {
		bit := FsPermission(1) << (8 - i)
		switch c := s[i]; {
		case c == letters[i]:
			p |= bit
		case c == '-':
		case i == 8 && c == 't':
			p |= bit | StickyBit
		case i == 8 && c == 'T':
			p |= StickyBit
		default:
			return 0, ErrIllegalArgument.New("invalid permission " + strconv.Quote(s))
		}
	}
	return p, nil
}

// ParsePermission parses either form: octal when s is all digits, symbolic
// otherwise.
func ParsePermission(s string) (FsPermission, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return ParseOctal(s)
	}
	return ParseSymbolic(s)
}

// modeSpec is the result of Hadoop's PermissionParser: per class (sticky,
// user, group, others) an operator ('+', '-', '=') and a mode (rwx bits;
// 8 stands for 'X').
type modeSpec struct {
	symbolic bool
	op       [4]byte
	mode     [4]int
}

// combine is PermissionParser.combineModes.
func (m modeSpec) combine(existing int, exeOK bool) int {
	seg := func(op byte, mode, existing int, exeOK bool) int {
		capX := false
		if mode&8 != 0 {
			capX = true
			mode = mode&^8 | 1
		}
		switch op {
		case '+':
			mode |= existing
		case '-':
			mode = ^mode & existing
		}
		if capX && !exeOK && mode&1 != 0 && existing&1 == 0 {
			mode &^= 1
		}
		return mode
	}
	return seg(m.op[0], m.mode[0], existing>>9, false)<<9 |
		seg(m.op[1], m.mode[1], (existing>>6)&7, exeOK)<<6 |
		seg(m.op[2], m.mode[2], (existing>>3)&7, exeOK)<<3 |
		seg(m.op[3], m.mode[3], existing&7, exeOK)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// parseOctalSpec matches ^\s*[+]?(prefix)([0-7]{3})\s*$ where prefix is
// [01]? for chmod and 0* for a umask.
func parseOctalSpec(s string, umask bool) (modeSpec, bool) {
	s = trimSpace(s)
	s = strings.TrimPrefix(s, "+")
	if len(s) < 3 {
		return modeSpec{}, false
	}
	prefix, digits := s[:len(s)-3], s[len(s)-3:]
	for i := 0; i < 3; i++ {
		if digits[i] < '0' || digits[i] > '7' {
			return modeSpec{}, false
		}
	}
	sticky := 0
	if umask {
		if strings.Trim(prefix, "0") != "" {
			return modeSpec{}, false
		}
	} else {
		switch prefix {
		case "", "0":
		case "1":
			sticky = 1
		default:
			return modeSpec{}, false
		}
	}
	m := modeSpec{op: [4]byte{'=', '=', '=', '='}}
	m.mode = [4]int{sticky, int(digits[0] - '0'), int(digits[1] - '0'), int(digits[2] - '0')}
	return m, true
}

// parseSymbolicSpec implements PermissionParser.applyNormalPattern over
// \G\s*([ugoa]*)([+=-]+)([rwxXt]+)([,\s]*)\s* (for a umask: [rwx]* and no
// 'X' or 't'). As in Hadoop, a later clause replaces (does not add to) an
// earlier clause's mode for the same class.
func parseSymbolicSpec(s string, umask bool) (modeSpec, bool) {
	m := modeSpec{symbolic: true, op: [4]byte{'+', '+', '+', '+'}}
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for clause := 0; ; clause++ {
		skipSpace()
		var user, group, others bool
		for i < len(s) && strings.IndexByte("ugoa", s[i]) >= 0 {
			switch s[i] {
			case 'u':
				user = true
			case 'g':
				group = true
			case 'o':
				others = true
			}
			i++
		}
		start := i
		for i < len(s) && strings.IndexByte("+=-", s[i]) >= 0 {
			i++
		}
		if i == start {
			return modeSpec{}, false
		}
		op := s[i-1]
		mode, sticky := 0, false
		start = i
		permChars := "rwxXt"
		if umask {
			permChars = "rwx"
		}
		for i < len(s) && strings.IndexByte(permChars, s[i]) >= 0 {
			switch s[i] {
			case 'r':
				mode |= 4
			case 'w':
				mode |= 2
			case 'x':
				mode |= 1
			case 'X':
				mode |= 8
			case 't':
				sticky = true
			}
			i++
		}
		if !umask && i == start {
			return modeSpec{}, false
		}
		if !user && !group && !others {
			user, group, others = true, true, true
		}
		if user {
			m.op[1], m.mode[1] = op, mode
		}
		if group {
			m.op[2], m.mode[2] = op, mode
		}
		if others {
			m.op[3], m.mode[3] = op, mode
			m.op[0], m.mode[0] = op, 0
			if sticky {
				m.mode[0] = 1
			}
		}
		comma := false
		for i < len(s) && (s[i] == ',' || isSpace(s[i])) {
			if s[i] == ',' {
				comma = true
			}
			i++
		}
		skipSpace()
		if i >= len(s) {
			return m, true
		}
		if !comma {
			return modeSpec{}, false
		}
	}
}

// Chmod applies a mode as `hdfs dfs -chmod` does (ChmodParser): an octal
// mode of three digits with an optional sticky digit ("755", "1777"; a
// three-digit mode clears the sticky bit), or symbolic clauses
// "[ugoa]*[+-=][rwxXt]+" separated by commas ("u+x,go-w", "+t", "a=rX").
// 'X' adds execute only to directories and to files someone may already
// execute. The error is an IllegalArgumentException naming the mode.
func Chmod(mode string, current FsPermission, isDir bool) (FsPermission, error) {
	m, ok := parseSymbolicSpec(mode, false)
	if !ok {
		m, ok = parseOctalSpec(mode, false)
	}
	if !ok {
		return 0, ErrIllegalArgument.New(mode)
	}
	existing := int(current & PermMask)
	exeOK := isDir || existing&0o111 != 0
	return FsPermission(m.combine(existing, exeOK)) & PermMask, nil
}

// ParseUmask parses fs.permissions.umask-mode as UmaskParser does: octal
// ("022", "0022"; no sticky digit) or symbolic, where the symbolic form
// names the rights to keep ("u=rwx,g=rx,o=" is the umask 027).
func ParseUmask(s string) (FsPermission, error) {
	m, ok := parseSymbolicSpec(s, true)
	if !ok {
		m, ok = parseOctalSpec(s, true)
	}
	if !ok {
		return 0, ErrIllegalArgument.New("Unable to parse configuration fs.permissions.umask-mode with value " + s + " as octal or symbolic umask.")
	}
	v := m.combine(0, false)
	if m.symbolic {
		v = ^v & 0o777
	}
	return FsPermission(v) & 0o777, nil
}
