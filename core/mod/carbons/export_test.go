package carbons

// StripPrivate is stripPrivate for the external tests.
var StripPrivate = stripPrivate
