package session

// WarmWait is warmWait for the external tests.
var WarmWait = &warmWait

// InlineAfter is inlineAfter for the external tests.
var InlineAfter = &inlineAfter
