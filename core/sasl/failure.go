package sasl

import "strings"

// Failure conditions of RFC 6120 §6.5.
const (
	ConditionAborted              = "aborted"
	ConditionAccountDisabled      = "account-disabled"
	ConditionCredentialsExpired   = "credentials-expired"
	ConditionEncryptionRequired   = "encryption-required"
	ConditionIncorrectEncoding    = "incorrect-encoding"
	ConditionInvalidAuthzid       = "invalid-authzid"
	ConditionInvalidMechanism     = "invalid-mechanism"
	ConditionMalformedRequest     = "malformed-request"
	ConditionMechanismTooWeak     = "mechanism-too-weak"
	ConditionNotAuthorized        = "not-authorized"
	ConditionTemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is a SASL failure condition of RFC 6120 §6.5 with optional text.
// Condition and Text are what the client is told. SCRAMError (the RFC 5802
// §7 server-error-value, such as "invalid-proof") and the wrapped cause are
// for the server's log: RFC 6120's <failure/> has no place for the first,
// and the second may say whether an account exists.
type Failure struct {
	Condition  string
	Text       string
	SCRAMError string
	cause      error
}

// Error describes the failure for a log, including its cause. It is not
// meant for the client.
func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("sasl: ")
	b.WriteString(f.Condition)
	if f.Text != "" {
		b.WriteString(": ")
		b.WriteString(f.Text)
	}
	if f.SCRAMError != "" {
		b.WriteString(" (e=")
		b.WriteString(f.SCRAMError)
		b.WriteString(")")
	}
	if f.cause != nil {
		b.WriteString(": ")
		b.WriteString(f.cause.Error())
	}
	return b.String()
}

// Unwrap returns the cause, such as ErrUnknownUser or a backend error.
func (f *Failure) Unwrap() error { return f.cause }

// RFC 5802 §7 server-error-values that this package reports.
const (
	scramInvalidEncoding         = "invalid-encoding"
	scramExtensionsNotSupported  = "extensions-not-supported"
	scramInvalidProof            = "invalid-proof"
	scramChannelBindingsMismatch = "channel-bindings-dont-match"
	scramServerDoesSupportCB     = "server-does-support-channel-binding"
	scramCBNotSupported          = "channel-binding-not-supported"
	scramUnsupportedCBType       = "unsupported-channel-binding-type"
	scramInvalidUsernameEncoding = "invalid-username-encoding"
	scramOtherError              = "other-error"
)

func malformed(scramErr, text string) *Failure {
	return &Failure{Condition: ConditionMalformedRequest, Text: text, SCRAMError: scramErr}
}

func notAuthorized(scramErr string, cause error) *Failure {
	return &Failure{Condition: ConditionNotAuthorized, SCRAMError: scramErr, cause: cause}
}

func temporary(cause error) *Failure {
	return &Failure{Condition: ConditionTemporaryAuthFailure, SCRAMError: scramOtherError, cause: cause}
}
