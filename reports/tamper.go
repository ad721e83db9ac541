package reports

import (
	"errors"

	"kontor.im/kontor/core/audit"
)

func errorsIsTampered(err error) bool { return errors.Is(err, audit.ErrTampered) }
