package ldapsync

import (
	"strconv"
	"strings"
)

// BindReason says why a bind failed, as far as the directory tells. The
// client is only ever told not-authorized; the reason goes to the log.
type BindReason string

// Reasons. Active Directory returns result code 49 (invalidCredentials)
// for all of them and puts a sub-code in the diagnostic message
// ("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error,
// data 52e, v4563"); other directories give no sub-code.
const (
	ReasonWrongPassword      BindReason = "wrong password"                          // 52e
	ReasonNoSuchUser         BindReason = "no such user"                            // 525
	ReasonNotPermittedNow    BindReason = "logon not permitted at this time"        // 530
	ReasonNotPermittedHere   BindReason = "logon not permitted from this computer"  // 531
	ReasonPasswordExpired    BindReason = "password expired"                        // 532
	ReasonAccountDisabled    BindReason = "account disabled"                        // 533
	ReasonAccountExpired     BindReason = "account expired"                         // 701
	ReasonMustChangePassword BindReason = "user must change password"               // 773
	ReasonAccountLocked      BindReason = "account locked out"                      // 775
	ReasonInvalidCredentials BindReason = "invalid credentials (no sub-code)"       // not AD, or AD without data
	ReasonUnknownSubCode     BindReason = "invalid credentials (unknown sub-code)"  // a sub-code not listed here
	ReasonNotLoggedOn        BindReason = "invalid credentials (logon type denied)" // 569
)

var adSubCodes = map[uint32]BindReason{
	0x52e: ReasonWrongPassword,
	0x525: ReasonNoSuchUser,
	0x530: ReasonNotPermittedNow,
	0x531: ReasonNotPermittedHere,
	0x532: ReasonPasswordExpired,
	0x533: ReasonAccountDisabled,
	0x569: ReasonNotLoggedOn,
	0x701: ReasonAccountExpired,
	0x773: ReasonMustChangePassword,
	0x775: ReasonAccountLocked,
}

// maxSubCodeDigits bounds the hex digits read after "data ": AD's codes
// are Win32 error numbers, at most 8 hex digits.
const maxSubCodeDigits = 8

// ParseADSubCode finds the sub-code in an Active Directory bind diagnostic
// message: the hex number after "data ", up to a comma, a space or the end.
// It reports false when there is none.
func ParseADSubCode(diagnostic string) (uint32, bool) {
	rest := diagnostic
	for {
		i := strings.Index(rest, "data ")
		if i < 0 {
			return 0, false
		}
		// "data" must start a word: not "metadata ".
		if i > 0 && isWordByte(rest[i-1]) {
			rest = rest[i+5:]
			continue
		}
		rest = rest[i+5:]
		n := 0
		for n < len(rest) && n <= maxSubCodeDigits && isHex(rest[n]) {
			n++
		}
		if n == 0 || n > maxSubCodeDigits || (n < len(rest) && rest[n] != ',' && rest[n] != ' ' && rest[n] != 0) {
			continue
		}
		code, err := strconv.ParseUint(rest[:n], 16, 32)
		if err != nil {
			continue
		}
		return uint32(code), true
	}
}

// BindReasonOf maps a diagnostic message of a failed bind (result code 49)
// to a reason.
func BindReasonOf(diagnostic string) (BindReason, uint32) {
	code, ok := ParseADSubCode(diagnostic)
	if !ok {
		return ReasonInvalidCredentials, 0
	}
	if r, known := adSubCodes[code]; known {
		return r, code
	}
	return ReasonUnknownSubCode, code
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isWordByte(c byte) bool {
	return isHex(c) || 'g' <= c && c <= 'z' || 'G' <= c && c <= 'Z' || c == '_'
}
