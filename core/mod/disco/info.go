package disco

import (
	"kontor.im/kontor/core/caps"
	"kontor.im/kontor/core/stanza"
)

// The disco#info data types live in core/caps (the pep module verifies
// clients' capabilities with them too); these names keep this package's
// API whole.
type (
	// Identity is a disco#info identity.
	Identity = caps.Identity
	// Info is a disco#info result.
	Info = caps.Info
)

// ErrIllFormed is wrapped by the errors of ParseInfo and Info.Ver.
var ErrIllFormed = caps.ErrIllFormed

// ParseInfo reads a disco#info <query/> element.
func ParseInfo(el *stanza.Element) (Info, error) { return caps.ParseInfo(el) }
