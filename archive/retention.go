package archive

import (
	"context"
	"fmt"
	"time"
)

// RetentionClass is how long a kind of message is kept. Its name is stored
// with the data key (one per owner, month and class), so that a whole
// month of a class can be destroyed at once when it has expired.
type RetentionClass struct {
	// Name: 1 to 32 of a-z, 0-9, '-', '_'. "offline" is reserved for the
	// sealer of offline messages.
	Name string
	// Keep is how long after its time a message is kept; zero or negative
	// keeps it forever.
	Keep time.Duration
}

// RetentionInput is what a retention decision sees of a message: its
// metadata, never its content.
type RetentionInput struct {
	Owner     string
	With      string
	Outgoing  bool
	Encrypted bool // end-to-end encrypted
	Time      time.Time
}

// RetentionDecider chooses the retention class of each archived message.
// The policy engine implements it (decision point archive.retain); without
// one, every message gets the configured default class. It is called from
// the archive's flusher, never in the stanza path. When it fails, or returns
// an invalid class, the default class is used and the error logged.
type RetentionDecider interface {
	Retention(ctx context.Context, in RetentionInput) (RetentionClass, error)
}

// FixedRetention gives every message the same class.
type FixedRetention RetentionClass

// Retention returns the class.
func (f FixedRetention) Retention(context.Context, RetentionInput) (RetentionClass, error) {
	return RetentionClass(f), nil
}

// HoldChecker tells whether an owner's archive is under legal hold: purge
// skips held owners entirely (their messages and data keys stay). nil means
// no holds. An error counts as held: purge never deletes what it is not
// sure it may.
type HoldChecker interface {
	Held(ctx context.Context, owner string) (bool, error)
}

// offlineClass is the class of the data keys that seal offline messages.
const offlineClass = "offline"

// DefaultClassName names the configured default class.
const DefaultClassName = "standard"

// Validate checks the class's name.
func (c RetentionClass) Validate() error {
	if c.Name == offlineClass {
		return fmt.Errorf("archive: retention class name %q is reserved", c.Name)
	}
	if !validClassName(c.Name) {
		return fmt.Errorf("archive: retention class name %q: want 1 to 32 of a-z, 0-9, '-', '_'", c.Name)
	}
	return nil
}

func validClassName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
