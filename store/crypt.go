package store

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// Encryption at rest: every passphrase is stretched with scrypt (N=2^15,
// r=8, p=1) and the store's random 32-byte salt into an AES-256 key. Values
// are sealed with AES-256-GCM under the first passphrase's key, with the
// storage key as additional data so a sealed value cannot be moved to another
// key unnoticed. A sealed payload starts with a 4-byte key id (derived from
// the key, not the passphrase) so a value is opened with the right key among
// several, which is how passphrases are rotated: put the new one first, keep
// the old ones after it.
const (
	keyIDLen    = 4
	nonceLen    = 12
	gcmTagLen   = 16
	sealedExtra = keyIDLen + nonceLen + gcmTagLen
	saltLen     = 32
	scryptN     = 1 << 15
)

type sealKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// keyring holds the derived keys; keys[0] seals new values.
type keyring struct {
	keys []sealKey
}

func newKeyring(passphrases []string, salt []byte) (*keyring, error) {
	kr := &keyring{}
	for i, p := range passphrases {
		if p == "" {
			return nil, fmt.Errorf("%w: passphrase %d is empty", ErrInvalid, i+1)
		}
		raw, err := scrypt.Key([]byte(p), salt, scryptN, 8, 1, 32)
		if err != nil {
			return nil, fmt.Errorf("derive key from passphrase %d: %w", i+1, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("aes key from passphrase %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("gcm from passphrase %d: %w", i+1, err)
		}
		mac := hmac.New(sha256.New, raw)
		mac.Write([]byte("kura key id"))
		var k sealKey
		copy(k.id[:], mac.Sum(nil))
		k.aead = aead
		kr.keys = append(kr.keys, k)
	}
	return kr, nil
}

func (kr *keyring) seal(plain, aad []byte) ([]byte, error) {
	k := kr.keys[0]
	out := make([]byte, keyIDLen+nonceLen, keyIDLen+nonceLen+len(plain)+gcmTagLen)
	copy(out, k.id[:])
	if _, err := rand.Read(out[keyIDLen:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return k.aead.Seal(out, out[keyIDLen:], plain, aad), nil
}

func (kr *keyring) open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealedExtra {
		return nil, fmt.Errorf("%w: sealed value of %d bytes is too short", ErrCorrupt, len(sealed))
	}
	for _, k := range kr.keys {
		if !bytes.Equal(k.id[:], sealed[:keyIDLen]) {
			continue
		}
		plain, err := k.aead.Open(nil, sealed[keyIDLen:keyIDLen+nonceLen], sealed[keyIDLen+nonceLen:], aad)
		if err != nil {
			return nil, fmt.Errorf("%w: sealed value failed authentication", ErrCorrupt)
		}
		return plain, nil
	}
	return nil, ErrWrongPassphrase
}

func newSalt() ([]byte, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	return salt, nil
}

// ReadPassphraseFile reads passphrases from a file, one per line. Blank lines
// and lines starting with '#' are skipped; surrounding spaces are kept, since
// they may be part of a passphrase, but a trailing '\r' is not. The first
// passphrase encrypts; all of them decrypt.
func ReadPassphraseFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("passphrase file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("passphrase file %s: no passphrase in it", path)
	}
	return out, nil
}
