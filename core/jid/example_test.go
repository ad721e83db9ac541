package jid_test

import (
	"errors"
	"fmt"

	"kontor.im/kontor/core/jid"
)

func ExampleParse() {
	j, err := jid.Parse("Juliet@EXAMPLE.com./Balcony")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j, j.Local(), j.Domain(), j.Resource())
	fmt.Println(j.Bare(), j.DomainJID(), j == jid.MustParse("juliet@example.com/Balcony"))

	_, err = jid.Parse("@example.com")
	fmt.Println(err, errors.Is(err, jid.ErrMalformed))
	// Output:
	// juliet@example.com/Balcony juliet example.com Balcony
	// juliet@example.com example.com true
	// jid: malformed localpart: empty before '@' true
}
