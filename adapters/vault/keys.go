package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
)

// ErrWrongPassword means the password (or recovery key) does not unwrap the
// storage's data key. Nothing was read or changed.
var ErrWrongPassword = errors.New("wrong password for this storage")

// ErrPasswordRequired means the storage is encrypted and no password was
// given.
var ErrPasswordRequired = errors.New("this storage is password-protected: give its password")

// KDF are the argon2id parameters a password is stretched with. They are
// recorded in the storage so that stronger defaults later do not lock out
// old storages.
type KDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF follows RFC 9106's second recommendation (64 MiB, 3 passes).
var DefaultKDF = KDF{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}

// wrappedKey is the data key sealed under a key-encryption key.
type wrappedKey struct {
	Salt  []byte `json:"salt,omitempty"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

const keyAAD = "mailvault storage data key v1"

func (k KDF) derive(password, salt []byte) []byte {
	return argon2.IDKey(password, salt, k.Time, k.MemoryKiB, k.Threads, 32)
}

func seal(kek, plain []byte, aad string) (nonce, box []byte, err error) {
	gcm, err := newGCM(kek)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, gcm.Seal(nil, nonce, plain, []byte(aad)), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func wrapWithPassword(k KDF, password, dataKey []byte) (wrappedKey, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return wrappedKey{}, err
	}
	nonce, box, err := seal(k.derive(password, salt), dataKey, keyAAD)
	return wrappedKey{Salt: salt, Nonce: nonce, Box: box}, err
}

func (w wrappedKey) unwrap(kek []byte) ([]byte, error) {
	gcm, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != gcm.NonceSize() {
		return nil, fmt.Errorf("the storage's key record is damaged")
	}
	key, err := gcm.Open(nil, w.Nonce, w.Box, []byte(keyAAD))
	if err != nil {
		return nil, ErrWrongPassword
	}
	return key, nil
}

// recoveryEncoding prints a recovery key in groups a person can copy.
var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newRecoveryKey returns 32 random bytes and their printed form.
func newRecoveryKey() ([]byte, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	s := recoveryEncoding.EncodeToString(raw)
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:min(i+4, len(s))])
	}
	return raw, strings.Join(groups, "-"), nil
}

// parseRecoveryKey accepts the printed form with or without dashes and
// spaces, in any case.
func parseRecoveryKey(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "", "\n", "", "\r", "", "\t", "").Replace(s))
	raw, err := recoveryEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("that is not a mailvault recovery key (52 characters in groups of 4)")
	}
	return raw, nil
}

// recoveryKEK: a recovery key is 256 random bits, so it needs no stretching.
func recoveryKEK(raw []byte) []byte {
	return subkey(raw, "mailvault recovery key-encryption key")
}

// subkey derives a purpose-bound key from the data key.
func subkey(dataKey []byte, purpose string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, dataKey, nil, []byte(purpose)), out); err != nil {
		panic(err) // hkdf cannot fail for 32 bytes
	}
	return out
}
