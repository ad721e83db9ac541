package disco

import (
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	many := make([]string, maxAddresses+1)
	for i := range many {
		many[i] = "mailto:a@example.com"
	}
	tests := []struct {
		name    string
		c       ContactAddresses
		wantErr string
	}{
		{"none", ContactAddresses{}, ""},
		{"good", ContactAddresses{Abuse: []string{"mailto:abuse@example.com", "xmpp:abuse@example.com"}, Status: []string{"https://status.example.com"}, Support: []string{"https://example.com/support"}}, ""},
		{"relative", ContactAddresses{Admin: []string{"admin@example.com"}}, "contact_addresses.admin[0]"},
		{"empty", ContactAddresses{Sales: []string{""}}, "contact_addresses.sales[0]"},
		{"scheme only", ContactAddresses{Security: []string{"https:"}}, "not an absolute URI"},
		{"space", ContactAddresses{Feedback: []string{"mailto:a@example.com b"}}, "white space"},
		{"too long", ContactAddresses{Abuse: []string{"mailto:" + strings.Repeat("a", maxAddressSize)}}, "1 to 1024 bytes"},
		{"too many", ContactAddresses{Abuse: many}, "more than 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{ContactAddresses: tt.c}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "disco: ")):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
