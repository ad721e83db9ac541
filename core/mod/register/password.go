package register

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"kontor.im/kontor/core/account"

	"golang.org/x/text/secure/precis"

	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

// Defaults of PasswordPolicy.
const (
	// DefaultMinPasswordLength is what NIST SP 800-63B §5.1.1.2 sets as the
	// minimum for passwords a user chooses.
	DefaultMinPasswordLength = 8
)

// maxPasswordBytes bounds a password. SASL PLAIN carries it, with the
// username, in one message of at most sasl.MaxMessageSize bytes; 1 KiB
// leaves room for the rest.
const maxPasswordBytes = 1024

// maxMinPasswordLength bounds min_password_length, to catch typos.
const maxMinPasswordLength = 128

// PasswordPolicy is what a new password must satisfy and how its
// credentials are derived. It is shared by password changes (the module)
// and registrations (Registrar).
type PasswordPolicy struct {
	// MinLength is the fewest characters (Unicode code points, after the
	// PRECIS OpaqueString preparation that SASL applies).
	MinLength int `mapstructure:"min_password_length"`
}

// DefaultPasswordPolicy returns the defaults.
func DefaultPasswordPolicy() PasswordPolicy {
	return PasswordPolicy{
		MinLength: DefaultMinPasswordLength,
	}
}

// Validate checks the bounds.
func (p *PasswordPolicy) Validate() error {
	if p.MinLength < 1 || p.MinLength > maxMinPasswordLength {
		return fmt.Errorf("register: min_password_length must be between 1 and %d, got %d", maxMinPasswordLength, p.MinLength)
	}
	return nil
}

func notAcceptable(text string) stanza.Error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: text}
}

// check returns a not-acceptable stanza.Error if password may not be used
// by the account whose localpart is username.
func (p *PasswordPolicy) check(username, password string) error {
	if password == "" {
		return notAcceptable("a password is required")
	}
	if len(password) > maxPasswordBytes {
		return notAcceptable(fmt.Sprintf("the password must not be longer than %d bytes", maxPasswordBytes))
	}
	prepared, err := precis.OpaqueString.String(password)
	if err != nil {
		return notAcceptable("the password contains characters that are not allowed")
	}
	if utf8.RuneCountInString(prepared) < p.MinLength {
		return notAcceptable(fmt.Sprintf("the password must have at least %d characters", p.MinLength))
	}
	if strings.EqualFold(prepared, username) {
		return notAcceptable("the password must not be the username")
	}
	return nil
}

// credentials derives the SCRAM credentials of a password that check
// accepted. The iteration count is core/account's, the one every account
// shares: the SASL server announces it for unknown users too, so a count
// that differed here would tell which accounts exist.
func (p *PasswordPolicy) credentials(password string) ([]storage.SCRAMCredential, error) {
	return account.Credentials(password)
}
